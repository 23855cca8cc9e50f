"""The torch network built from an :class:`~probvae.networks.MLPSpec` (Pyro backend)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import POSITIVE_FLOOR, MLPSpec

_ACT = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU,
        "softplus": nn.Softplus, "silu": nn.SiLU}
_OUT = {
    "identity": lambda h: h,
    "positive": lambda h: F.softplus(h) + POSITIVE_FLOOR,
    "softplus": F.softplus,
    "sigmoid": torch.sigmoid,
}


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
        layers, prev = [], spec.in_size
        for width in spec.hidden:
            layers += [nn.Linear(prev, int(width)), _ACT[spec.activation]()]
            prev = int(width)
        layers.append(nn.Linear(prev, spec.out_size))
        self.net = nn.Sequential(*layers)

    def forward(self, *inputs):
        if len(inputs) != len(self.spec.inputs):
            raise ValueError(f"network expects {len(self.spec.inputs)} inputs "
                             f"({[i.name for i in self.spec.inputs]}), got {len(inputs)}")
        parts = []
        for value, inp in zip(inputs, self.spec.inputs):
            if inp.kind == "one_hot" and not value.is_floating_point():
                value = F.one_hot(value.long(), inp.size).to(torch.get_default_dtype())
            parts.append(value)
        lead = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
        h = torch.cat([p.expand(lead + p.shape[-1:]) for p in parts], dim=-1)
        out = self.net(h)
        chunks = torch.split(out, [hd.size for hd in self.spec.heads], dim=-1)
        return tuple(hd.bound * torch.tanh(c / hd.bound) if hd.transform == "bounded"
                     else _OUT[hd.transform](c) for hd, c in zip(self.spec.heads, chunks))


def build(spec: MLPSpec, seed: int) -> TorchMLP:
    """Build a :class:`TorchMLP` with weights drawn from ``seed`` (global RNG left untouched).

    Examples
    --------
    >>> from probvae.networks import MLPSpec, Input, Head
    >>> net = build(MLPSpec((Input("x", 4),), (8,), (Head("loc", 2),)), seed=0)
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TorchMLP(spec)
