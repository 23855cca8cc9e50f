"""Pyro's ``kl_divergence(MultivariateNormal, Independent(Normal, 1))`` in closed form (see
:mod:`probvae.distributions.kl_common`): registered on import.

Examples
--------
>>> import pyro.distributions as dist, torch
>>> from torch.distributions import kl_divergence
>>> q = dist.MultivariateNormal(torch.zeros(2), scale_tril=torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
>>> p = dist.Normal(torch.zeros(2), 1.0).to_event(1)
>>> round(float(kl_divergence(q, p)), 4)
1.3069
"""
from __future__ import annotations

import torch
from torch.distributions import Independent, MultivariateNormal, Normal
from torch.distributions.kl import register_kl

from .kl_common import mvn_diagonal_kl


@register_kl(MultivariateNormal, Independent)
def _kl_mvn_diagonal(q, p):
    base = p.base_dist
    if p.reinterpreted_batch_ndims != 1 or not isinstance(base, Normal):
        raise NotImplementedError
    return mvn_diagonal_kl(q.loc, q.scale_tril, base.loc, base.scale, torch.log)
