"""The JAX network built from an :class:`~probvae.networks.MLPSpec` (NumPyro backend).

Equinox is used because ``numpyro.contrib.module.eqx_module(name, net)`` registers an already
built network exactly as ``pyro.module(name, net)`` does, so model code is identical on both
backends; Flax's ``flax_module`` needs an ``input_shape`` and separate mutable state.
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import POSITIVE_FLOOR, MLPSpec

_ACT = {"relu": jax.nn.relu, "tanh": jnp.tanh, "elu": jax.nn.elu, "gelu": lambda h: jax.nn.gelu(h, approximate=False),
        "softplus": jax.nn.softplus, "silu": jax.nn.silu}
_OUT = {
    "identity": lambda h: h,
    "positive": lambda h: jax.nn.softplus(h) + POSITIVE_FLOOR,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
}


class JaxMLP(eqx.Module):
    """MLP with named inputs and heads; accepts any extra leading dimensions.

    Examples
    --------
    >>> from probvae.networks import MLPSpec, Input, Head
    >>> net = JaxMLP(MLPSpec((Input("x", 4),), (8,), (Head("loc", 2),)), jax.random.PRNGKey(0))
    >>> net(jnp.zeros((3, 4)))[0].shape
    (3, 2)
    """

    layers: list
    spec: MLPSpec = eqx.field(static=True)

    def __init__(self, spec: MLPSpec, key):
        sizes = [spec.in_size, *[int(w) for w in spec.hidden], spec.out_size]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = [eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)]
        self.spec = spec

    def _one(self, h):
        act = _ACT[self.spec.activation]
        for layer in self.layers[:-1]:
            h = act(layer(h))
        return self.layers[-1](h)

    def __call__(self, *inputs):
        if len(inputs) != len(self.spec.inputs):
            raise ValueError(f"network expects {len(self.spec.inputs)} inputs "
                             f"({[i.name for i in self.spec.inputs]}), got {len(inputs)}")
        parts = []
        for value, inp in zip(inputs, self.spec.inputs):
            value = jnp.asarray(value)
            if inp.kind == "one_hot" and not jnp.issubdtype(value.dtype, jnp.floating):
                value = jax.nn.one_hot(value, inp.size)
            parts.append(value)
        lead = jnp.broadcast_shapes(*(p.shape[:-1] for p in parts))
        h = jnp.concatenate([jnp.broadcast_to(p, lead + p.shape[-1:]) for p in parts], axis=-1)
        out = jax.vmap(self._one)(h.reshape(-1, h.shape[-1])).reshape(lead + (-1,))
        bounds, start = [], 0
        for hd in self.spec.heads:
            bounds.append((start, start + hd.size))
            start += hd.size
        return tuple(hd.bound * jnp.tanh(out[..., a:b] / hd.bound) if hd.transform == "bounded"
                     else _OUT[hd.transform](out[..., a:b])
                     for hd, (a, b) in zip(self.spec.heads, bounds))


def build(spec: MLPSpec, seed: int) -> JaxMLP:
    """Build a :class:`JaxMLP` with weights drawn from ``seed``.

    The layers' weights and biases are drawn with NumPy, uniform in +-1/sqrt(fan_in) (the
    default of ``eqx.nn.Linear`` and ``torch.nn.Linear``), into the structure Equinox would
    build: nothing is compiled to make a network, which is most of a cold start otherwise.

    Examples
    --------
    >>> from probvae.networks import MLPSpec, Input, Head
    >>> net = build(MLPSpec((Input("x", 4),), (8,), (Head("loc", 2),)), seed=0)
    >>> net.layers[0].weight.shape
    (8, 4)
    """
    abstract = jax.eval_shape(lambda: JaxMLP(spec, jax.random.PRNGKey(0)))
    leaves, treedef = jax.tree_util.tree_flatten(abstract)
    rng = np.random.default_rng(seed)
    values, bound = [], None
    for leaf in leaves:                     # each layer: weight (out, in), then bias (out,)
        if len(leaf.shape) == 2:
            bound = 1.0 / np.sqrt(leaf.shape[1])
        values.append(jnp.asarray(rng.uniform(-bound, bound, leaf.shape).astype(leaf.dtype)))
    return jax.tree_util.tree_unflatten(treedef, values)
