"""``DiagonalNormalMixture`` for Pyro: ``MixtureSameFamily`` with a matmul ``log_prob``.

Examples
--------
>>> import torch
>>> m = DiagonalNormalMixture(torch.zeros(3), torch.zeros(3, 2), torch.ones(3, 2))
>>> tuple(m.expand([5]).batch_shape), tuple(m.sample().shape)
((5,), (2,))
"""
from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import ExpandedDistribution

from .mixture_common import MixtureLogProb

__all__ = ["DiagonalNormalMixture"]


class DiagonalNormalMixture(MixtureLogProb, dist.MixtureSameFamily):
    """A mixture of K diagonal Gaussians: weights ``softmax(logits)`` (K,), means ``loc`` and
    scales ``scale`` (K, D). Samples, means and marginals as ``MixtureSameFamily``; the
    log-density by two matmuls (see :mod:`probvae.distributions.mixture_common`)."""

    _dist = dist
    _asarray = staticmethod(torch.as_tensor)
    _log = staticmethod(torch.log)
    _where = staticmethod(torch.where)

    def _arange(self, k):
        return torch.arange(k, device=self._loc.device)

    @staticmethod
    def _logsumexp(x):
        return torch.logsumexp(x, dim=-1)

    @staticmethod
    def _log_softmax(x):
        return torch.log_softmax(x, dim=-1)

    def expand(self, batch_shape, _instance=None):
        """Plates expand the mixture around it, so ``log_prob`` keeps the matmul path."""
        return ExpandedDistribution(self, batch_shape)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return super().log_prob(value)
