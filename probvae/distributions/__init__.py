"""Probability distributions missing from the supported backends.

Each module is for one library (``*_jax`` and ``continuous_bernoulli`` for NumPyro, ``*_torch``
for Pyro) and is imported by that backend alone, so the Pyro path never imports JAX and the
NumPyro path never imports torch; ``ContinuousBernoulli`` loads on first use.

Examples
--------
>>> import jax.numpy as jnp
>>> from probvae.distributions import ContinuousBernoulli
>>> d = ContinuousBernoulli(logits=jnp.zeros(3))
>>> [round(float(v), 3) for v in d.mean]
[0.5, 0.5, 0.5]
"""

__all__ = ["ContinuousBernoulli"]


def __getattr__(name):
    if name == "ContinuousBernoulli":        # NumPyro's: imports JAX, so only on first use
        from .continuous_bernoulli import ContinuousBernoulli
        return ContinuousBernoulli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
