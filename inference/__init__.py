"""Objectives, training loops, evaluation, prediction and checkpoints."""
from . import objectives
from .checkpoint import load, save
from .evaluate import evaluate, log_weights
from .fit import fit
from .generate import decode, interpolate, synthesize, traverse
from .predict import encode, predict, reconstruct, sample
from .result import FitResult

__all__ = ["objectives", "fit", "FitResult", "evaluate", "log_weights", "sample", "encode",
           "reconstruct", "predict", "decode", "interpolate", "traverse", "synthesize", "save",
           "load"]
