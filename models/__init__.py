"""Model/guide pairs built from probvae's parts; each runs on both backends.

Examples
--------
>>> from probvae.models import VAE, SSVAE
>>> VAE(input_dim=64).backend, SSVAE(input_dim=64, num_classes=10).num_classes
('numpyro', 10)
"""
from .adgm import ADGM
from .base import CustomModel, Model
from .contract import Contract, Site
from .hvae import HVAE
from .ssvae import SSVAE
from .vae import VAE

__all__ = ["Model", "CustomModel", "Contract", "Site", "VAE", "SSVAE", "ADGM", "HVAE"]
