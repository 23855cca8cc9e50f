"""Network specifications shared by both backends.

A model owns :class:`MLPSpec` objects; each backend builds a real network from a spec
(:mod:`probvae.networks.torch_mlp` for Pyro, :mod:`probvae.networks.jax_mlp` for NumPyro).
All array math of a model (concatenating inputs, one-hot coding labels, splitting the
output into named heads, positivity transforms) happens inside these networks, so model
bodies only sample and observe.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Head", "Input", "MLPSpec", "ACTIVATIONS", "TRANSFORMS"]

#: Activation names understood by both network builders.
ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "softplus", "silu")
#: Output transforms: ``identity``; ``positive`` = softplus(h) + 1e-4 (scales);
#: ``softplus``; ``sigmoid``; ``bounded`` = bound * tanh(h / bound) (needs ``Head.bound``).
TRANSFORMS = ("identity", "positive", "softplus", "sigmoid", "bounded")
#: The floor added by the ``positive`` transform, so a scale never reaches zero.
POSITIVE_FLOOR = 1e-4


@dataclass(frozen=True)
class Input:
    """One input of a network.

    Parameters
    ----------
    name : str
        What the input is (``"x"``, ``"z"``, ``"y"``); documentation only.
    size : int
        Feature size (number of classes for ``kind="one_hot"``).
    kind : {"real", "one_hot"}
        ``"one_hot"`` takes integer labels of shape ``(...,)`` and codes them inside the network;
        a float array of shape ``(..., size)`` (class probabilities) passes through as it is.

    Examples
    --------
    >>> Input("y", 10, "one_hot").size
    10
    """

    name: str
    size: int
    kind: str = "real"

    def __post_init__(self):
        if self.kind not in ("real", "one_hot"):
            raise ValueError(f"Input kind must be 'real' or 'one_hot', got {self.kind!r}")
        if int(self.size) < 1:
            raise ValueError(f"Input {self.name!r} needs size >= 1, got {self.size}")


@dataclass(frozen=True)
class Head:
    """One named output block of a network.

    Examples
    --------
    >>> Head("scale", 8, "positive").transform
    'positive'
    """

    name: str
    size: int
    transform: str = "identity"
    bound: float = 0.0

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown head transform {self.transform!r}; known: {TRANSFORMS}")
        if self.transform == "bounded" and not self.bound > 0:
            raise ValueError(f"head {self.name!r}: transform 'bounded' needs bound > 0")


@dataclass(frozen=True)
class MLPSpec:
    """A multilayer perceptron described without any array library.

    The built network takes one array per :class:`Input` (extra leading dimensions such as
    particles or enumerated labels broadcast) and returns a tuple with one array per
    :class:`Head`, in order.

    Parameters
    ----------
    inputs : tuple of Input
    hidden : tuple of int
        Hidden layer widths (may be empty for a linear map).
    heads : tuple of Head
    activation : str
        One of :data:`ACTIVATIONS`.

    Examples
    --------
    >>> spec = MLPSpec((Input("x", 64),), (32,), (Head("loc", 2), Head("scale", 2, "positive")))
    >>> spec.in_size, spec.out_size
    (64, 4)
    """

    inputs: tuple
    hidden: tuple
    heads: tuple
    activation: str = "relu"

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; known: {ACTIVATIONS}")
        if any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive integers, got {self.hidden}")

    @property
    def in_size(self) -> int:
        return sum(i.size for i in self.inputs)

    @property
    def out_size(self) -> int:
        return sum(h.size for h in self.heads)

    @property
    def num_params(self) -> int:
        """Weights and biases of the built network (computed, nothing allocated).

        Examples
        --------
        >>> MLPSpec((Input("x", 4),), (8,), (Head("loc", 2),)).num_params
        58
        """
        sizes = [self.in_size, *[int(w) for w in self.hidden], self.out_size]
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
