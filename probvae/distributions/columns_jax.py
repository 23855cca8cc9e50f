"""A table row as one NumPyro distribution: one distribution per column over slices of x.

Examples
--------
>>> import jax.numpy as jnp
>>> import numpyro.distributions as nd
>>> d = Columns([(1, "value", nd.Normal(jnp.zeros(2), 1.0)),
...              (3, "category", nd.Categorical(logits=jnp.zeros((2, 3))))])
>>> d.event_shape, d.batch_shape
((4,), (2,))
>>> [round(float(v), 3) for v in d.log_prob(jnp.array([[0.0, 1, 0, 0], [0.0, 0, 0, 1]]))]
[-2.018, -2.018]
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from numpyro.distributions import Distribution, constraints

from .columns_common import ColumnParts

__all__ = ["Columns"]


class Columns(ColumnParts, Distribution):
    """Independent columns over consecutive slices of the last axis of ``x``.

    Parameters
    ----------
    parts : list of (width, kind, distribution)
        ``kind="value"``: one feature scored by ``distribution`` (batch shape ``(..., N)``);
        ``kind="category"``: ``width`` one-hot features scored by a ``Categorical``.
    masks : list of bool arrays (..., N), optional
        Per column, True where observed; a masked column adds nothing.
    """

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self, parts, masks=None, validate_args=None):
        width = self._set_parts(parts, masks)
        batch = jnp.broadcast_shapes(*(d.batch_shape for _, _, d in self.parts))
        super().__init__(batch_shape=batch, event_shape=(width,), validate_args=False)

    def log_prob(self, value):
        total = 0.0
        for start, width, kind, d, mask in self._slices():
            v = value[..., start:start + width]
            lp = d.log_prob(jnp.argmax(v, axis=-1) if kind == "category" else v[..., 0])
            total = total + (lp if mask is None else jnp.where(mask, lp, 0.0))
        return total

    def sample(self, key, sample_shape=()):
        out = []
        for (_, width, kind, d, _), k in zip(self._slices(),
                                              jax.random.split(key, len(self.parts))):
            s = d.sample(k, sample_shape)
            out.append(jax.nn.one_hot(s, width) if kind == "category"
                       else s[..., None].astype(jnp.float32))
        shape = tuple(sample_shape) + self.batch_shape
        return jnp.concatenate([jnp.broadcast_to(o, shape + o.shape[-1:]) for o in out], -1)

    @property
    def mean(self):
        out = [d.probs if kind == "category" else d.mean[..., None]
               for _, _, kind, d, _ in self._slices()]
        return jnp.concatenate([jnp.broadcast_to(o, self.batch_shape + o.shape[-1:])
                                for o in out], -1)
