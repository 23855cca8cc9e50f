"""Likelihoods p(x|z) by name or instance.

A likelihood says which output heads the decoder needs (``heads``), builds the observation
distribution from ``bk.dist`` (``distribution``), and checks data against its support once,
before training (``check``), so bad data fails with a clear message instead of a NaN loss.

=========================  ====================  ======================================
name                       data                  decoder heads
=========================  ====================  ======================================
``bernoulli``              binary {0, 1}         logits
``continuous_bernoulli``   [0, 1]                logits
``gaussian``               real                  loc (scale fixed or learned per dim)
``laplace``                real                  loc (scale fixed or learned per dim)
``beta``                   [0, 1] (clipped)      two concentrations
``poisson``                counts 0, 1, 2, ...   rate
``negative_binomial``      counts 0, 1, 2, ...   total_count, logits
=========================  ====================  ======================================

Examples
--------
>>> from probvae import likelihoods
>>> likelihoods.get("gaussian", scale=0.1)
Gaussian(scale=0.1, min_scale=0.01)

The base class and the registry are in :mod:`.base`, the per-value likelihoods in
:mod:`.elementwise`, and the table likelihood (one per column) in :mod:`.columns`.
"""
from __future__ import annotations

from .base import Likelihood, get, names, register, to_config
# registration order is the order names() lists: the per-value likelihoods, then the table
from .elementwise import (Bernoulli, Beta, ContinuousBernoulli, Gaussian, Laplace,  # isort: skip
                          NegativeBinomial, Poisson)
from .columns import Columns  # isort: skip

__all__ = ["Likelihood", "Bernoulli", "ContinuousBernoulli", "Gaussian", "Laplace", "Beta",
           "Poisson", "NegativeBinomial", "Columns", "get", "names", "register", "to_config"]
