"""NumPyro's ``kl_divergence(MultivariateNormal, Independent(Normal, 1))`` in closed form (see
:mod:`probvae.distributions.kl_common`): registered on import.

Examples
--------
>>> import numpyro.distributions as nd, jax.numpy as jnp
>>> q = nd.MultivariateNormal(jnp.zeros(2), scale_tril=jnp.array([[2.0, 0.0], [1.0, 1.0]]))
>>> p = nd.Normal(jnp.zeros(2), 1.0).to_event(1)
>>> round(float(nd.kl_divergence(q, p)), 4)
1.3069
"""
from __future__ import annotations

import jax.numpy as jnp
import numpyro.distributions as nd
from numpyro.distributions.kl import kl_divergence

from .kl_common import mvn_diagonal_kl


@kl_divergence.register(nd.MultivariateNormal, nd.Independent)
def _kl_mvn_diagonal(q, p):
    base = p.base_dist
    while isinstance(base, nd.ExpandedDistribution):      # Normal(0, 1).expand(...): the
        base = base.base_dist                              # parameters broadcast as they are
    if p.reinterpreted_batch_ndims != 1 or type(base) is not nd.Normal:
        raise NotImplementedError
    return mvn_diagonal_kl(q.loc, q.scale_tril, base.loc, base.scale, jnp.log)
