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
from . import backends, data, diagnostics, likelihoods, networks, plots, priors
from . import models  # noqa: E402  (models build on the parts above)
from . import inference  # noqa: E402  (inference builds on models)
from . import anomaly, features  # noqa: E402  (scikit-learn estimators build on inference)
from .inference import (FitResult, decode, encode, evaluate, fit, interpolate, load, objectives,
                        predict, reconstruct, sample, save, synthesize, traverse)

__all__ = ["backends", "data", "diagnostics", "likelihoods", "networks", "plots", "priors", "models",
           "inference", "anomaly", "features", "objectives", "fit", "FitResult", "evaluate",
           "sample", "encode", "reconstruct", "predict", "decode", "interpolate", "traverse",
           "synthesize", "save", "load"]
__version__ = "0.1.0"
