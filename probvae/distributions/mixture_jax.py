"""``DiagonalNormalMixture`` for NumPyro: ``MixtureSameFamily`` with a matmul ``log_prob``.

Examples
--------
>>> import numpy as np
>>> m = DiagonalNormalMixture(np.zeros(3, np.float32), np.zeros((3, 2), np.float32),
...                           np.ones((3, 2), np.float32))
>>> m.batch_shape, m.event_shape, m.sample(__import__("jax").random.PRNGKey(0)).shape
((), (2,), (2,))
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from .mixture_common import MixtureLogProb

__all__ = ["DiagonalNormalMixture"]


class DiagonalNormalMixture(MixtureLogProb, dist.MixtureSameFamily):
    """A mixture of K diagonal Gaussians: weights ``softmax(logits)`` (K,), means ``loc`` and
    scales ``scale`` (K, D). Samples, means and marginals as ``MixtureSameFamily``; the
    log-density by two matmuls (see :mod:`probvae.distributions.mixture_common`)."""

    pytree_data_fields = ("_logits", "_loc", "_scale")
    _dist = dist
    _asarray = staticmethod(jnp.asarray)
    _log = staticmethod(jnp.log)
    _arange = staticmethod(jnp.arange)
    _where = staticmethod(jnp.where)

    @staticmethod
    def _logsumexp(x):
        return jax.nn.logsumexp(x, axis=-1)

    @staticmethod
    def _log_softmax(x):
        return jax.nn.log_softmax(x, axis=-1)
