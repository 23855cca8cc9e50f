"""Model/guide pairs built from probvae's parts; each runs on both backends.

Examples
--------
>>> from probvae.models import VAE
>>> VAE(input_dim=64).backend
'numpyro'
"""
from .base import CustomModel, Model
from .vae import VAE

__all__ = ["Model", "CustomModel", "VAE"]
