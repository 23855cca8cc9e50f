"""probvae: variational autoencoders as Pyro and NumPyro probabilistic programs.

Examples
--------
>>> import probvae as pv
>>> data = pv.data.load("digits", seed=0)
>>> vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,), backend="numpyro")
>>> res = pv.fit(vae, data.train, epochs=1, progress=False)
>>> pv.sample(res, n=4, seed=1).shape
(4, 64)
"""
# the layers, bottom up: the parts, then models, inference, and the applications on top
from . import backends, batch, data, likelihoods, networks, outputs, plots, posteriors, priors
from . import models
from . import inference
from .applications import diagnostics
from .inference import (FitResult, decode, encode, evaluate, fit, interpolate, load, objectives,
                        predict, reconstruct, sample, save, synthesize, traverse)

__all__ = ["backends", "batch", "outputs", "data", "diagnostics", "likelihoods", "networks",
           "plots", "posteriors", "priors", "models", "inference", "anomaly", "features", "objectives", "fit", "FitResult", "evaluate",
           "sample", "encode", "reconstruct", "predict", "decode", "interpolate", "traverse",
           "synthesize", "impute", "save", "load"]
__version__ = "0.1.0"

#: the scikit-learn estimators (in ``applications/``): loaded on first use (``pv.anomaly``,
#: ``pv.features``, ``pv.impute``), so that ``import probvae`` does not import scikit-learn
_LAZY = {"anomaly": "anomaly", "features": "features", "impute": "imputation"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return importlib.import_module(f"{__name__}.applications.{_LAZY[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
