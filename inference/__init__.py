"""Objectives, training loops, evaluation, prediction, imputation and checkpoints.

The layer's own order, bottom up: ``result``, ``inputs`` (input checks) and ``scoring``
(importance weights and the helpers built on them); ``objectives`` and the per-backend loops;
then ``fit``, ``predict``, ``evaluate``, ``generate``, ``impute`` and ``checkpoint``.

Examples
--------
>>> from probvae import inference
>>> inference.objectives.get("iwae").name, callable(inference.fit)
('iwae', True)
"""
from . import objectives
from .checkpoint import load, save
from .evaluate import evaluate
from .fit import fit
from .generate import decode, interpolate, synthesize, traverse
from .impute import impute
from .predict import encode, predict, reconstruct, sample
from .result import FitResult
from .scoring import log_weights

__all__ = ["objectives", "fit", "FitResult", "evaluate", "log_weights", "sample", "encode",
           "reconstruct", "predict", "decode", "interpolate", "traverse", "synthesize",
           "impute", "save", "load"]
