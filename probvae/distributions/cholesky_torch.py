"""``CholeskyNormal`` for Pyro: ``pyro.distributions.MultivariateNormal(loc, scale_tril=...)``
under the name both backends give the ``full_rank`` posterior (NumPyro's scores its own draws
without a solve, :mod:`.cholesky_jax`; Pyro has no place to keep a draw's noise, and its
full-rank step is within the cost it is held to without it).

Examples
--------
>>> import torch
>>> q = CholeskyNormal(torch.zeros(2), torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
>>> q.event_shape, round(float(q.log_prob(torch.zeros(2))), 4)
(torch.Size([2]), -2.531)
"""
from __future__ import annotations

import pyro.distributions as dist

__all__ = ["CholeskyNormal"]


class CholeskyNormal(dist.MultivariateNormal):
    """``MultivariateNormal(loc, scale_tril=scale_tril)``."""

    def __init__(self, loc, scale_tril, validate_args=None):
        super().__init__(loc, scale_tril=scale_tril, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(CholeskyNormal, _instance)
        return super().expand(batch_shape, _instance=new)
