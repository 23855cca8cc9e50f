"""The JAX networks built from specs (NumPyro backend): :class:`JaxMLP` and :class:`JaxConv`.

Equinox is used because ``numpyro.contrib.module.eqx_module(name, net)`` registers an already
built network exactly as ``pyro.module(name, net)`` does, so model code is identical on both
backends; Flax's ``flax_module`` needs an ``input_shape`` and separate mutable state. Equinox
layers take one example, so the networks ``vmap`` them over every leading dimension
(examples, particles, enumerated labels).

Examples
--------
>>> from probvae.networks import ConvSpec, Head, Input
>>> net = build(ConvSpec((Input("x", 64),), (Head("loc", 2),), (1, 8, 8), channels=(4,)), 0)
>>> net(jnp.zeros((3, 64)))[0].shape
(3, 2)
"""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import (POSITIVE_FLOOR, TRIL_OFF_DIAGONAL, ConvSpec, Input, MADESpec, MLPSpec, UserSpec,
               tril_positions)

__all__ = ["JaxMLP", "JaxConv", "JaxMADE", "JaxUserNet", "build"]

_ACT = {"relu": jax.nn.relu, "tanh": jnp.tanh, "elu": jax.nn.elu,
        "gelu": lambda h: jax.nn.gelu(h, approximate=False),
        "softplus": jax.nn.softplus, "silu": jax.nn.silu}
_OUT = {
    "identity": lambda h: h,
    "positive": lambda h: jax.nn.softplus(h) + POSITIVE_FLOOR,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
}


def _join(values, inputs):
    """The inputs one-hot coded where asked, broadcast over their leading dims, concatenated."""
    if len(values) != len(inputs):
        raise ValueError(f"network expects {len(inputs)} inputs ({[i.name for i in inputs]}), "
                         f"got {len(values)}")
    parts = []
    for value, inp in zip(values, inputs):
        value = jnp.asarray(value)
        if inp.kind == "one_hot" and not jnp.issubdtype(value.dtype, jnp.floating):
            value = jax.nn.one_hot(value, inp.size)
        parts.append(value)
    lead = jnp.broadcast_shapes(*(p.shape[:-1] for p in parts))
    return jnp.concatenate([jnp.broadcast_to(p, lead + p.shape[-1:]) for p in parts], axis=-1)


def _tril(entries, size):
    """A lower-triangular (..., size, size) factor filled row by row from ``entries``, its
    diagonal through ``positive``, the rest times ``TRIL_OFF_DIAGONAL``."""
    rows, cols, diag = tril_positions(size)
    # ``positive`` on the ``size`` diagonal entries only (a where over all of them computes
    # it, and its derivative, for every entry: twice the fill's cost at latent 40)
    on = np.flatnonzero(diag)
    entries = (TRIL_OFF_DIAGONAL * entries).at[..., on].set(
        _OUT["positive"](entries[..., on]), indices_are_sorted=True, unique_indices=True)
    # unique, sorted positions: the gradient is a gather (a plain ``set`` may see repeats and
    # adds a scatter of ids and a scatter-add to its derivative)
    return jnp.zeros(entries.shape[:-1] + (size, size), entries.dtype).at[
        ..., rows, cols].set(entries, indices_are_sorted=True, unique_indices=True)


def _heads(out, heads):
    """Split the last axis into the heads, each through its output transform."""
    result, start = [], 0
    for hd in heads:
        h = out[..., start:start + hd.width]
        start += hd.width
        result.append(hd.bound * jnp.tanh(h / hd.bound) if hd.transform == "bounded"
                      else _tril(h, hd.size) if hd.transform == "tril"
                      else _OUT[hd.transform](h))
    return tuple(result)


def _per_example(fn, h, width):
    """``fn`` on each row of ``h`` (..., width), vmapped over all leading dims."""
    lead = h.shape[:-1]
    out = jax.vmap(fn)(h.reshape(-1, width))
    return out.reshape(lead + out.shape[1:])


def _dense(sizes, key):
    keys = jax.random.split(key, len(sizes) - 1)
    return [eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)]


def _run_dense(layers, act, h, last_act=False):
    for i, layer in enumerate(layers):
        h = layer(h)
        if i < len(layers) - 1 or last_act:
            h = act(h)
    return h


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
        self.layers = _dense([spec.in_size, *[int(w) for w in spec.hidden], spec.out_size], key)
        self.spec = spec

    def __call__(self, *inputs):
        h = _join(inputs, self.spec.inputs)
        act = _ACT[self.spec.activation]
        out = _per_example(lambda v: _run_dense(self.layers, act, v), h, h.shape[-1])
        return _heads(out, self.spec.heads)


def _taps(x, k_h, k_w, stride, out_h, out_w):
    """The ``k_h * k_w`` shifted (and strided) views of a padded channels-last ``(H, W, C)``
    image that a convolution's taps see, joined along the channels: ``(out_h, out_w,
    k_h * k_w * C)``, tap by tap."""
    return jnp.concatenate([x[a:a + stride * (out_h - 1) + 1:stride,
                              b:b + stride * (out_w - 1) + 1:stride]
                            for a in range(k_h) for b in range(k_w)], axis=-1)


def _conv_by_taps(x, weight, stride, pad_h, pad_w, out_h, out_w):
    """A correlation of a channels-last ``(H, W, C)`` image with an ``(O, C, k_h, k_w)``
    kernel as one matrix product over the taps: ``(out_h, out_w, O)`` (see
    :func:`_downsample_x2`)."""
    o, c, k_h, k_w = weight.shape
    x = jnp.pad(x, (pad_h, pad_w, (0, 0)))
    w = jnp.transpose(weight, (2, 3, 1, 0)).reshape(k_h * k_w * c, o)   # tap by tap, as _taps
    return _taps(x, k_h, k_w, stride, out_h, out_w) @ w


def _bias(conv):
    return 0.0 if conv.bias is None else conv.bias.reshape(1, 1, -1)


def _downsample_x2(conv, h, padding: int):
    """``conv`` of an ``eqx.nn.Conv2d`` of stride 2 (every encoder layer of :class:`JaxConv`)
    on a channels-last ``(H, W, C)`` image, as a matrix product over the kernel's taps.

    NumPyro's training loop runs an epoch as one ``lax.scan`` of steps, the weights carried
    from step to step. There XLA's CPU backend computes a convolution's weight gradient about
    30 times slower than in a lone step (a conv encoder's fwd + bwd: 11.4 s for 16 steps of
    batch 128 in a scan, 0.38 s as 16 calls), and a conv VAE's epoch took 18x Pyro's. Written as
    shifted views and a matrix product, its gradients are matrix products and pads, which the
    scan runs at full speed (0.49 s channels-last; 0.78 s channels-first, which needs the views
    transposed for the product). The same weights and outputs as the layer (a test).
    """
    k = conv.weight.shape[-1]
    out_h, out_w = ((n + 2 * padding - k) // 2 + 1 for n in h.shape[:2])
    return _conv_by_taps(h, conv.weight, 2, (padding, padding), (padding, padding),
                         out_h, out_w) + _bias(conv)


def _upsample_x2(conv, h, padding: int):
    """``conv`` of an ``eqx.nn.ConvTranspose2d`` of stride 2 that doubles height and width
    exactly (every decoder layer of :class:`JaxConv`) on a channels-last ``(H, W, C)`` image,
    as four stride-1 correlations, one per output phase, interleaved, each a matrix product
    over its taps.

    Output pixel ``(2m + r, 2n + c)`` only meets the kernel taps of parity ``(P - r, P - c)``
    (``P = k - 1 - padding``), so each phase correlates the undilated input with a quarter of
    the kernel. XLA's CPU backend has no fast path for a transposed convolution (a
    convolution of the input dilated with zeros) and, inside the training loop's scan, none
    for a convolution's weight gradient (:func:`_downsample_x2`): a conv decoder's fwd + bwd
    over 16 steps took 6.0 s as eqx's layer, 1.0 s so. The same weights and outputs as the
    layer (a test compares them).
    """
    w = conv.weight                                   # (out, in, k, k), used as a correlation
    k = w.shape[-1]
    full = k - 1 - padding
    hh, ww, _ = h.shape
    phases = []
    for r in range(2):
        a0 = (full - r) % 2
        lo_h = (full - r - a0) // 2
        row = []
        for c in range(2):
            b0 = (full - c) % 2
            lo_w = (full - c - b0) // 2
            sub = w[:, :, a0::2, b0::2]
            row.append(_conv_by_taps(h, sub, 1, (lo_h, sub.shape[2] - 1 - lo_h),
                                     (lo_w, sub.shape[3] - 1 - lo_w), hh, ww))
        phases.append(jnp.stack(row, axis=2))         # (H, W, 2, out): column phases
    y = jnp.stack(phases, axis=1)                     # (H, 2, W, 2, out): row phases
    return y.reshape(2 * hh, 2 * ww, -1) + _bias(conv)


class JaxConv(eqx.Module):
    """Convolutional encoder or decoder from a :class:`~probvae.networks.ConvSpec`.

    The encoder computes its image features once per image, then joins the other inputs
    (broadcast over their leading dims, e.g. the 10 enumerated labels of M2).

    Examples
    --------
    >>> from probvae.networks import ConvSpec, Head, Input
    >>> spec = ConvSpec((Input("z", 2),), (Head("logits", 64),), (1, 8, 8), channels=(4,),
    ...                 role="decoder")
    >>> JaxConv(spec, jax.random.PRNGKey(0))(jnp.zeros((5, 2)))[0].shape
    (5, 64)
    """

    convs: list
    dense: list
    spec: ConvSpec = eqx.field(static=True)

    def __init__(self, spec: ConvSpec, key):
        k_conv, k_dense = jax.random.split(key)
        c = spec.image_shape[0]
        pad, out_pad = spec.padding
        k = int(spec.kernel)
        flat = spec.channels[-1] * spec.grid[0] * spec.grid[1]
        if spec.role == "encoder":
            chans = (c, *spec.channels)
            keys = jax.random.split(k_conv, len(chans) - 1)
            self.convs = [eqx.nn.Conv2d(a, b, k, stride=2, padding=pad, key=kk)
                          for a, b, kk in zip(chans[:-1], chans[1:], keys)]
            extra = spec.in_size - spec.inputs[0].size
            self.dense = _dense([flat + extra, *spec.hidden, spec.out_size], k_dense)
        else:
            chans = (*spec.channels[::-1], c * len(spec.heads))
            keys = jax.random.split(k_conv, len(chans) - 1)
            self.convs = [eqx.nn.ConvTranspose2d(a, b, k, stride=2, padding=pad,
                                                 output_padding=out_pad, key=kk)
                          for a, b, kk in zip(chans[:-1], chans[1:], keys)]
            self.dense = _dense([spec.in_size, *spec.hidden, flat], k_dense)
        self.spec = spec

    def _features(self, image):
        act = _ACT[self.spec.activation]
        h = jnp.transpose(image.reshape(self.spec.image_shape), (1, 2, 0))   # channels last
        for conv in self.convs:
            h = act(_downsample_x2(conv, h, self.spec.padding[0]))
        return jnp.transpose(h, (2, 0, 1)).reshape(-1)       # flattened as (C, H, W)

    def _image(self, h):
        spec, act = self.spec, _ACT[self.spec.activation]
        h = _run_dense(self.dense, act, h, last_act=True)
        h = jnp.transpose(h.reshape((spec.channels[-1],) + spec.grid), (1, 2, 0))
        for i, conv in enumerate(self.convs):
            h = _upsample_x2(conv, h, spec.padding[0])
            if i < len(self.convs) - 1:
                h = act(h)
        h = jnp.transpose(h, (2, 0, 1))                     # back to (C, H, W)
        c = spec.image_shape[0]
        return jnp.concatenate([h[j * c:(j + 1) * c].reshape(-1)
                                for j in range(len(spec.heads))])

    def __call__(self, *inputs):
        spec = self.spec
        act = _ACT[spec.activation]
        if len(inputs) != len(spec.inputs):
            raise ValueError(f"network expects {len(spec.inputs)} inputs "
                             f"({[i.name for i in spec.inputs]}), got {len(inputs)}")
        if spec.role == "encoder":
            image = jnp.asarray(inputs[0])
            feats = _per_example(self._features, image, image.shape[-1])
            h = _join((feats, *inputs[1:]),
                      (Input("features", feats.shape[-1]), *spec.inputs[1:]))
            out = _per_example(lambda v: _run_dense(self.dense, act, v), h, h.shape[-1])
        else:
            h = _join(inputs, spec.inputs)
            out = _per_example(self._image, h, h.shape[-1])
        return _heads(out, spec.heads)


class JaxMADE(eqx.Module):
    """A masked autoencoder with a context input (:class:`~probvae.networks.MADESpec`):
    ``(z, context) -> (mean, log_scale)``, one inverse autoregressive flow step's network.

    The masks are constants made from the spec (not parameters), the same as the torch
    network's.

    Examples
    --------
    >>> from probvae.networks import MADESpec
    >>> net = JaxMADE(MADESpec(3, 2, (8,)), jax.random.PRNGKey(0))
    >>> [o.shape for o in net(jnp.zeros((4, 3)), jnp.zeros((4, 2)))]
    [(4, 3), (4, 3)]
    """

    layers: list
    spec: MADESpec = eqx.field(static=True)

    def __init__(self, spec: MADESpec, key):
        self.layers = _dense([spec.dim + spec.context_dim, *[int(w) for w in spec.hidden],
                              2 * spec.dim], key)
        self.spec = spec

    def __call__(self, z, context=None):
        spec = self.spec
        z = jnp.asarray(z)
        if spec.context_dim:
            context = jnp.asarray(context)
            lead = jnp.broadcast_shapes(z.shape[:-1], context.shape[:-1])
            h = jnp.concatenate([jnp.broadcast_to(z, lead + z.shape[-1:]),
                                 jnp.broadcast_to(context, lead + context.shape[-1:])], axis=-1)
        else:
            h = z
        act = _ACT[spec.activation]
        for i, (layer, mask) in enumerate(zip(self.layers, spec.masks())):
            h = h @ (layer.weight * mask).T + layer.bias
            if i < len(self.layers) - 1:
                h = act(h)
        return h[..., :spec.dim], h[..., spec.dim:]


class JaxUserNet(eqx.Module):
    """A user's Equinox module in a model's place (:class:`~probvae.networks.UserSpec`):
    called on one example, one argument per input (one-hot inputs coded as floats), and
    vmapped over every leading dim (examples, particles, enumerated labels); its outputs come
    back as one array per head, checked.

    ``eqx_module`` registers it as any network is: the module's floating-point arrays are the
    parameters ``"<role>$params"`` (``.module.<field>`` inside).

    Examples
    --------
    >>> from probvae.networks import Head, Input, UserSpec
    >>> spec = UserSpec(eqx.nn.Linear(2, 3, key=jax.random.PRNGKey(0)), (Input("z", 2),),
    ...                 (Head("logits", 3),), "decoder", "equinox")
    >>> JaxUserNet(spec)(jnp.zeros((4, 5, 2)))[0].shape
    (4, 5, 3)
    """

    module: eqx.Module
    spec: UserSpec = eqx.field(static=True)

    def __init__(self, spec: UserSpec):
        self.module = spec.module
        self.spec = spec

    def __call__(self, *inputs):
        spec = self.spec
        if len(inputs) != len(spec.inputs):
            raise ValueError(f"network expects {len(spec.inputs)} inputs "
                             f"({[i.name for i in spec.inputs]}), got {len(inputs)}")
        parts = []
        for value, inp in zip(inputs, spec.inputs):
            value = jnp.asarray(value)
            if inp.kind == "one_hot" and not jnp.issubdtype(value.dtype, jnp.floating):
                value = jax.nn.one_hot(value, inp.size)
            parts.append(value)
        lead = jnp.broadcast_shapes(*(p.shape[:-1] for p in parts))
        flat = [jnp.broadcast_to(p, lead + p.shape[-1:]).reshape(-1, p.shape[-1])
                for p in parts]
        outs = jax.vmap(lambda *rows: spec.outputs(spec.call(self.module, rows, True), ()))(*flat)
        return tuple(o.reshape(lead + hd.shape) for o, hd in zip(outs, spec.heads))


def _user(spec: UserSpec) -> JaxUserNet:
    """The wrapped module, checked by one call on a few examples (shapes and supports)."""
    if spec.library != "equinox":
        raise TypeError(f"the {spec.role} is a {spec.library} module ({spec.label}), which "
                        "trains on backend='pyro'; on backend='numpyro' give an Equinox "
                        "module (eqx.Module), or make the model with backend='pyro'")
    net = JaxUserNet(spec)
    rng = np.random.default_rng(0)
    probe = [rng.integers(0, i.size, 3).astype(np.int32) if i.kind == "one_hot" else
             rng.random((3, i.size)).astype(np.float32) for i in spec.inputs]
    spec.check_values([np.asarray(o) for o in net(*probe)])
    return net


_CLASSES = {MLPSpec: JaxMLP, ConvSpec: JaxConv, MADESpec: JaxMADE}


def build(spec, seed: int):
    """Build the network for ``spec`` with weights drawn from ``seed``.

    Weights and biases are drawn with NumPy, uniform in +-1/sqrt(fan_in) (the default of
    Equinox's and torch's layers), into the structure Equinox builds: nothing is compiled to
    make a network, which is most of a cold start otherwise.

    Examples
    --------
    >>> from probvae.networks import MLPSpec, Input, Head
    >>> net = build(MLPSpec((Input("x", 4),), (8,), (Head("loc", 2),)), seed=0)
    >>> net.layers[0].weight.shape
    (8, 4)
    """
    if isinstance(spec, UserSpec):
        return _user(spec)
    cls = _CLASSES.get(type(spec))
    if cls is None:
        raise TypeError(f"no JAX network for {type(spec).__name__}")
    abstract = jax.eval_shape(lambda: cls(spec, jax.random.PRNGKey(0)))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    rng = np.random.default_rng(seed)
    values, bound = [], 1.0
    for path, leaf in leaves:                   # each layer: its weight, then its bias
        if jax.tree_util.keystr(path[-1:]).endswith("weight"):
            bound = 1.0 / np.sqrt(np.prod(leaf.shape[1:]))
        values.append(jax.device_put(rng.uniform(-bound, bound, leaf.shape).astype(leaf.dtype)))
    return jax.tree_util.tree_unflatten(treedef, values)
