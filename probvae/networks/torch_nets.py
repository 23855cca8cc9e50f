"""The torch networks built from specs (Pyro backend): :class:`TorchMLP` and :class:`TorchConv`.

Examples
--------
>>> from probvae.networks import ConvSpec, Head, Input
>>> net = build(ConvSpec((Input("x", 64),), (Head("loc", 2),), (1, 8, 8), channels=(4,)), 0)
>>> net(torch.zeros(3, 64))[0].shape
torch.Size([3, 2])
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import (POSITIVE_FLOOR, TRIL_OFF_DIAGONAL, ConvSpec, Input, MADESpec, MLPSpec, UserSpec,
               tril_positions)

__all__ = ["TorchMLP", "TorchConv", "TorchMADE", "TorchUserNet", "build"]

_ACT = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU,
        "softplus": nn.Softplus, "silu": nn.SiLU}
_OUT = {
    "identity": lambda h: h,
    "positive": lambda h: F.softplus(h) + POSITIVE_FLOOR,
    "softplus": F.softplus,
    "sigmoid": torch.sigmoid,
}


def _join(values, inputs):
    """The inputs one-hot coded where asked, broadcast over their leading dims, concatenated."""
    if len(values) != len(inputs):
        raise ValueError(f"network expects {len(inputs)} inputs ({[i.name for i in inputs]}), "
                         f"got {len(values)}")
    parts = []
    for value, inp in zip(values, inputs):
        if inp.kind == "one_hot" and not value.is_floating_point():
            value = F.one_hot(value.long(), inp.size).to(torch.get_default_dtype())
        parts.append(value)
    lead = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
    return torch.cat([p.expand(lead + p.shape[-1:]) for p in parts], dim=-1)


def _tril(entries, size):
    """A lower-triangular (..., size, size) factor filled row by row from ``entries``, its
    diagonal through ``positive``, the rest times ``TRIL_OFF_DIAGONAL``."""
    rows, cols, diag = tril_positions(size)
    # ``positive`` on the diagonal entries only; index_copy into the flattened matrix (half
    # the time of a where over all entries and an indexed assignment, forward and backward)
    on = torch.as_tensor(np.flatnonzero(diag), device=entries.device)
    flat = torch.as_tensor(rows * size + cols, device=entries.device)
    entries = (TRIL_OFF_DIAGONAL * entries).index_copy(-1, on, _OUT["positive"](entries[..., on]))
    out = entries.new_zeros(entries.shape[:-1] + (size * size,)).index_copy(-1, flat, entries)
    return out.view(entries.shape[:-1] + (size, size))


def _heads(out, heads):
    chunks = torch.split(out, [hd.width for hd in heads], dim=-1)
    return tuple(hd.bound * torch.tanh(c / hd.bound) if hd.transform == "bounded"
                 else _tril(c, hd.size) if hd.transform == "tril"
                 else _OUT[hd.transform](c) for hd, c in zip(heads, chunks))


def _dense(sizes, activation, last_act=False):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_act:
            layers.append(_ACT[activation]())
    return nn.Sequential(*layers)


class TorchMLP(nn.Module):
    """MLP with named inputs and heads; accepts any extra leading dimensions.

    Examples
    --------
    >>> from probvae.networks import MLPSpec, Input, Head
    >>> net = TorchMLP(MLPSpec((Input("x", 4),), (8,), (Head("loc", 2),)))
    >>> net(torch.zeros(3, 4))[0].shape
    torch.Size([3, 2])
    """

    def __init__(self, spec: MLPSpec):
        super().__init__()
        self.spec = spec
        self.net = _dense([spec.in_size, *[int(w) for w in spec.hidden], spec.out_size],
                          spec.activation)

    def forward(self, *inputs):
        return _heads(self.net(_join(inputs, self.spec.inputs)), self.spec.heads)


class TorchConv(nn.Module):
    """Convolutional encoder or decoder from a :class:`~probvae.networks.ConvSpec`.

    Examples
    --------
    >>> from probvae.networks import ConvSpec, Head, Input
    >>> spec = ConvSpec((Input("z", 2),), (Head("logits", 64),), (1, 8, 8), channels=(4,),
    ...                 role="decoder")
    >>> TorchConv(spec)(torch.zeros(5, 2))[0].shape
    torch.Size([5, 64])
    """

    def __init__(self, spec: ConvSpec):
        super().__init__()
        self.spec = spec
        c = spec.image_shape[0]
        pad, out_pad = spec.padding
        k = int(spec.kernel)
        act = _ACT[spec.activation]
        flat = spec.channels[-1] * spec.grid[0] * spec.grid[1]
        layers = []
        if spec.role == "encoder":
            chans = (c, *spec.channels)
            for a, b in zip(chans[:-1], chans[1:]):
                layers += [nn.Conv2d(a, b, k, stride=2, padding=pad), act()]
            self.convs = nn.Sequential(*layers)
            extra = spec.in_size - spec.inputs[0].size
            self.dense = _dense([flat + extra, *spec.hidden, spec.out_size], spec.activation)
        else:
            chans = (*spec.channels[::-1], c * len(spec.heads))
            for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
                layers.append(nn.ConvTranspose2d(a, b, k, stride=2, padding=pad,
                                                 output_padding=out_pad))
                if i < len(chans) - 2:
                    layers.append(act())
            self.convs = nn.Sequential(*layers)
            self.dense = _dense([spec.in_size, *spec.hidden, flat], spec.activation,
                                last_act=True)

    def forward(self, *inputs):
        spec = self.spec
        if len(inputs) != len(spec.inputs):
            raise ValueError(f"network expects {len(spec.inputs)} inputs "
                             f"({[i.name for i in spec.inputs]}), got {len(inputs)}")
        if spec.role == "encoder":
            image = inputs[0]
            lead = image.shape[:-1]
            feats = self.convs(image.reshape((-1,) + tuple(spec.image_shape)))
            feats = feats.reshape(lead + (-1,))
            h = feats if len(inputs) == 1 else _join(
                (feats, *inputs[1:]), (Input("features", feats.shape[-1]), *spec.inputs[1:]))
            return _heads(self.dense(h), spec.heads)
        h = _join(inputs, spec.inputs)
        lead = h.shape[:-1]
        img = self.convs(self.dense(h).reshape((-1, spec.channels[-1]) + spec.grid))
        c = spec.image_shape[0]
        out = torch.cat([img[:, j * c:(j + 1) * c].reshape(img.shape[0], -1)
                         for j in range(len(spec.heads))], dim=-1)
        return _heads(out.reshape(lead + (-1,)), spec.heads)


class TorchMADE(nn.Module):
    """A masked autoencoder with a context input (:class:`~probvae.networks.MADESpec`):
    ``(z, context) -> (mean, log_scale)``, one inverse autoregressive flow step's network.

    ``permutation`` is the order in which an inverse fills ``z`` in (Pyro's
    ``AffineAutoregressive`` reads it).

    Examples
    --------
    >>> from probvae.networks import MADESpec
    >>> net = TorchMADE(MADESpec(3, 2, (8,)))
    >>> [o.shape for o in net(torch.zeros(4, 3), torch.zeros(4, 2))]
    [torch.Size([4, 3]), torch.Size([4, 3])]
    """

    def __init__(self, spec: MADESpec):
        super().__init__()
        self.spec = spec
        sizes = [spec.dim + spec.context_dim, *[int(w) for w in spec.hidden], 2 * spec.dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for i, mask in enumerate(spec.masks()):
            self.register_buffer(f"mask{i}", torch.as_tensor(mask))
        self.register_buffer("permutation", torch.as_tensor(spec.permutation))
        self.act = _ACT[spec.activation]()

    def forward(self, z, context=None):
        spec = self.spec
        if spec.context_dim:
            lead = torch.broadcast_shapes(z.shape[:-1], context.shape[:-1])
            h = torch.cat([z.expand(lead + z.shape[-1:]),
                           context.expand(lead + context.shape[-1:])], dim=-1)
        else:
            h = z
        for i, layer in enumerate(self.layers):
            h = F.linear(h, layer.weight * getattr(self, f"mask{i}"), layer.bias)
            if i < len(self.layers) - 1:
                h = self.act(h)
        return h[..., :spec.dim], h[..., spec.dim:]


class TorchUserNet(nn.Module):
    """A user's torch module in a model's place (:class:`~probvae.networks.UserSpec`): its
    inputs batch-first, one argument per input (one-hot inputs coded as floats), any extra
    leading dims flattened into the batch and restored on the outputs, which come back as one
    tensor per head, checked.

    It holds a copy of the module (``module``), registered with ``pyro.module`` by the model
    as any network is: its parameters are named ``"<role>$$$module.<name>"``.

    Examples
    --------
    >>> from probvae.networks import Head, Input, UserSpec
    >>> spec = UserSpec(nn.Linear(2, 3), (Input("z", 2),), (Head("logits", 3),), "decoder",
    ...                 "torch")
    >>> TorchUserNet(spec)(torch.zeros(4, 5, 2))[0].shape
    torch.Size([4, 5, 3])
    """

    def __init__(self, spec: UserSpec):
        super().__init__()
        self.spec = spec
        self.module = copy.deepcopy(spec.module)

    def forward(self, *inputs):
        spec = self.spec
        if len(inputs) != len(spec.inputs):
            raise ValueError(f"network expects {len(spec.inputs)} inputs "
                             f"({[i.name for i in spec.inputs]}), got {len(inputs)}")
        parts = []
        for value, inp in zip(inputs, spec.inputs):
            if inp.kind == "one_hot" and not value.is_floating_point():
                value = F.one_hot(value.long(), inp.size).to(torch.get_default_dtype())
            parts.append(value)
        lead = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
        flat = [p.expand(lead + p.shape[-1:]).reshape(-1, p.shape[-1]) for p in parts]
        outs = spec.outputs(spec.call(self.module, flat, False), (flat[0].shape[0],))
        return tuple(o.reshape(lead + hd.shape) for o, hd in zip(outs, spec.heads))


def _user(spec: UserSpec) -> TorchUserNet:
    """The wrapped module, checked by one call on a few examples (shapes and supports)."""
    if spec.library != "torch":
        raise TypeError(f"the {spec.role} is an {spec.library} module ({spec.label}), which "
                        "trains on backend='numpyro'; on backend='pyro' give a torch "
                        "nn.Module, or make the model with backend='numpyro'")
    net = TorchUserNet(spec)
    rng = np.random.default_rng(0)
    probe = [torch.as_tensor(rng.integers(0, i.size, 3)) if i.kind == "one_hot" else
             torch.as_tensor(rng.random((3, i.size)), dtype=torch.get_default_dtype())
             for i in spec.inputs]
    training = net.training
    net.eval()                  # (nothing learned from the probe: batch norm's statistics)
    try:
        with torch.no_grad():
            spec.check_values([o.cpu().numpy() for o in net(*probe)])
    finally:
        net.train(training)
    return net


_CLASSES = {MLPSpec: TorchMLP, ConvSpec: TorchConv, MADESpec: TorchMADE, UserSpec: _user}


def build(spec, seed: int) -> nn.Module:
    """Build the network for ``spec`` with weights drawn from ``seed`` (global RNG untouched).

    Examples
    --------
    >>> from probvae.networks import MLPSpec, Input, Head
    >>> net = build(MLPSpec((Input("x", 4),), (8,), (Head("loc", 2),)), seed=0)
    """
    cls = _CLASSES.get(type(spec))
    if cls is None:
        raise TypeError(f"no torch network for {type(spec).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(spec)
