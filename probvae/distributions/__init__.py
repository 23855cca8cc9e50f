"""Probability distributions missing from the supported backends.

Examples
--------
>>> import jax.numpy as jnp
>>> d = ContinuousBernoulli(logits=jnp.zeros(3))
>>> [round(float(v), 3) for v in d.mean]
[0.5, 0.5, 0.5]
"""

from .continuous_bernoulli import ContinuousBernoulli

__all__ = ["ContinuousBernoulli"]
