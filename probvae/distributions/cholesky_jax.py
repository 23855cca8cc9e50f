"""``CholeskyNormal`` for NumPyro: a ``MultivariateNormal(loc, scale_tril)`` whose draws keep
their noise, so the ELBO scores a draw without a triangular solve.

A draw is ``z = loc + L eps`` with ``eps ~ Normal(0, I)``; its log density is
``log Normal(eps; 0, I) - sum(log diag L)``. NumPyro keeps what
``sample_with_intermediates`` returns beside the draw and hands it back to ``log_prob``
(as it does for a ``TransformedDistribution``), so the guide's log q(z|x) costs a sum instead
of ``MultivariateNormal.log_prob``'s solve and its gradient's second solve. A value that was not
drawn here (given, conditioned, or replayed without intermediates) is scored by
``MultivariateNormal.log_prob``; both give the same value and the same total gradient (``eps``
does not depend on the parameters). The posterior ``full_rank`` is this distribution; on
Pyro it is ``pyro.distributions.MultivariateNormal`` (see :mod:`.cholesky_torch`).

Examples
--------
>>> import jax, jax.numpy as jnp
>>> q = CholeskyNormal(jnp.zeros(2), jnp.array([[2.0, 0.0], [1.0, 1.0]]))
>>> z, noise = q.sample_with_intermediates(jax.random.PRNGKey(0))
>>> bool(jnp.allclose(q.log_prob(z, noise), q.log_prob(z)))
True
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpyro.distributions as nd
from jax import random

__all__ = ["CholeskyNormal"]


class CholeskyNormal(nd.MultivariateNormal):
    """``MultivariateNormal(loc, scale_tril=scale_tril)`` that scores its own draws from their
    noise (no triangular solve); same draws from the same key, same densities."""

    def __init__(self, loc, scale_tril, *, validate_args=None):
        super().__init__(loc, scale_tril=scale_tril, validate_args=validate_args)

    def sample_with_intermediates(self, key, sample_shape=()):
        eps = random.normal(key, shape=sample_shape + self.batch_shape + self.event_shape)
        z = self.loc + jnp.squeeze(jnp.matmul(self.scale_tril, eps[..., None]), axis=-1)
        return z, [eps]

    def log_prob(self, value, intermediates=None):
        if not intermediates:
            return super().log_prob(value)
        eps = intermediates[0]
        size = self.event_shape[-1]
        # the diagonal as a strided slice of the flattened factor: its derivative is a pad
        # (jnp.diagonal's is a scatter-add, a mask's a product over the whole matrix)
        tril = self.scale_tril
        diagonal = tril.reshape(tril.shape[:-2] + (size * size,))[..., ::size + 1]
        return (-0.5 * jnp.sum(eps * eps, axis=-1) - jnp.sum(jnp.log(diagonal), axis=-1)
                - 0.5 * size * math.log(2 * math.pi))
