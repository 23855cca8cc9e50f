"""A table row as one Pyro distribution: one distribution per column over slices of x.

Examples
--------
>>> import pyro.distributions as dist
>>> d = Columns([(1, "value", dist.Normal(torch.zeros(2), 1.0)),
...              (3, "category", dist.Categorical(logits=torch.zeros(2, 3)))])
>>> tuple(d.event_shape), tuple(d.batch_shape)
((4,), (2,))
>>> [round(float(v), 3) for v in d.log_prob(torch.tensor([[0.0, 1, 0, 0], [0.0, 0, 0, 1]]))]
[-2.018, -2.018]
"""
from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution, constraints
from torch.nn import functional as F

from .columns_common import ColumnParts

__all__ = ["Columns"]


class Columns(ColumnParts, TorchDistribution):
    """Independent columns over consecutive slices of the last axis of ``x`` (see the NumPyro
    twin in :mod:`probvae.distributions.columns_jax` for the parameters)."""

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self, parts, masks=None, validate_args=None):
        width = self._set_parts(parts, masks)
        batch = torch.broadcast_shapes(*(d.batch_shape for _, _, d in self.parts))
        super().__init__(batch_shape=batch, event_shape=torch.Size([width]),
                         validate_args=False)

    def log_prob(self, value):
        total = 0.0
        for start, width, kind, d, mask in self._slices():
            v = value[..., start:start + width]
            lp = d.log_prob(v.argmax(-1) if kind == "category" else v[..., 0])
            total = total + (lp if mask is None else torch.where(mask, lp, lp.new_zeros(())))
        return total

    def sample(self, sample_shape=torch.Size()):
        out = []
        for _, width, kind, d, _ in self._slices():
            s = d.sample(sample_shape)
            out.append(F.one_hot(s, width).to(torch.get_default_dtype()) if kind == "category"
                       else s[..., None].to(torch.get_default_dtype()))
        shape = torch.Size(sample_shape) + self.batch_shape
        return torch.cat([o.expand(shape + o.shape[-1:]) for o in out], -1)

    @property
    def mean(self):
        out = [d.probs if kind == "category" else d.mean[..., None]
               for _, _, kind, d, _ in self._slices()]
        return torch.cat([o.expand(self.batch_shape + o.shape[-1:]) for o in out], -1)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        parts = [(w, kind, d.expand(batch_shape)) for w, kind, d in self.parts]
        masks = [None if m is None else m.expand(batch_shape) for m in self.masks]
        return Columns(parts, masks)
