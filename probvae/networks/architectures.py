"""Architectures by name: what a model's encoder and decoder are built from.

``encoder="mlp"`` / ``"conv"`` (or an instance with its settings: ``MLP(hidden=(512,))``,
``Conv(channels=(32, 64), hidden=(256,))``) turns into a network spec once the model knows the
inputs and output heads; the decoder of an MLP uses the hidden widths reversed, a conv decoder
mirrors the encoder with transposed convolutions.

Examples
--------
>>> from probvae.networks import Head, Input
>>> spec = get("conv").spec((Input("x", 784),), (Head("loc", 8),), "encoder", (1, 28, 28))
>>> type(spec).__name__, spec.channels
('ConvSpec', (32, 64))
>>> names()
('mlp', 'conv')
"""
from __future__ import annotations

from dataclasses import dataclass

from probvae.registry import Registry, check_int

from . import ConvSpec, MLPSpec, UserSpec, module_library

__all__ = ["MLP", "Conv", "UserNetwork", "get", "names", "register"]

_REGISTRY = Registry("network")
register = _REGISTRY.register
get = _REGISTRY.get
names = _REGISTRY.names


def _widths(values, what):
    if isinstance(values, (int, str)):
        raise ValueError(f"{what} takes a tuple of widths, e.g. ({values},), got {values!r}")
    widths = tuple(values)
    check_int(what, **{f"{what}[{i}]": w for i, w in enumerate(widths)})
    return tuple(int(w) for w in widths)


@register("mlp")
@dataclass(frozen=True)
class MLP:
    """Dense layers of ``hidden`` widths; the decoder uses them reversed.

    Examples
    --------
    >>> from probvae.networks import Head, Input
    >>> MLP(hidden=(64, 32)).spec((Input("z", 2),), (Head("loc", 8),), "decoder").hidden
    (32, 64)
    """

    hidden: tuple = (256, 256)
    activation: str = "relu"

    def __post_init__(self):
        object.__setattr__(self, "hidden", _widths(self.hidden, "hidden") if self.hidden else ())

    def spec(self, inputs, heads, role, image_shape=None) -> MLPSpec:
        hidden = self.hidden[::-1] if role == "decoder" else self.hidden
        return MLPSpec(tuple(inputs), hidden, tuple(heads), self.activation)


@register("conv")
@dataclass(frozen=True)
class Conv:
    """Stride-2 convolutions (encoder) or transposed convolutions (decoder) for images.

    Parameters
    ----------
    channels : tuple of int
        Channels of each stride-2 layer; every layer halves (encoder) or doubles (decoder)
        height and width, so they must divide by 2 ** len(channels).
    kernel : int
        Kernel size (4: the usual DCGAN-style layers).
    hidden : tuple of int
        Dense layers between the image features and the latent code.
    activation : str

    Examples
    --------
    >>> Conv(channels=(16, 32)).channels
    (16, 32)
    """

    channels: tuple = (32, 64)
    kernel: int = 4
    hidden: tuple = (256,)
    activation: str = "relu"

    def __post_init__(self):
        object.__setattr__(self, "channels", _widths(self.channels, "channels"))
        object.__setattr__(self, "hidden", _widths(self.hidden, "hidden") if self.hidden else ())
        check_int("conv", kernel=self.kernel)

    def spec(self, inputs, heads, role, image_shape=None) -> ConvSpec:
        if image_shape is None:
            raise ValueError("a conv network needs the model's image_shape, e.g. "
                             "VAE(image_shape=(1, 28, 28), encoder='conv')")
        return ConvSpec(tuple(inputs), tuple(heads), tuple(image_shape), self.channels,
                        int(self.kernel), self.hidden, self.activation, role)


#: the ``name`` a user's network has in a model's config (it is code, not settings)
USER = "user"


@dataclass(frozen=True, eq=False)
class UserNetwork:
    """A user's own module as a model's encoder or decoder: a torch ``nn.Module`` (Pyro) or an
    Equinox module (NumPyro). Models make one when ``encoder=`` or ``decoder=`` is a module;
    what the module takes and must return is :class:`~probvae.networks.UserSpec`'s contract
    (and ``docs/networks.md``).

    Its weights start as the module holds them (the fit's seed does not redraw them); each
    fit trains a copy, so the module given stays as it was and can be fitted again.

    Examples
    --------
    >>> import torch
    >>> from probvae.networks import Head, Input
    >>> arch = UserNetwork(torch.nn.Linear(2, 8))
    >>> arch.spec((Input("z", 2),), (Head("logits", 8),), "decoder").describe()
    'takes z (batch, 2); returns logits (batch, 8) real'
    >>> arch.record()
    {'name': 'user', 'module': 'torch.nn.modules.linear.Linear', 'library': 'torch'}
    """

    module: object

    def __post_init__(self):
        if module_library(self.module) is None:
            raise TypeError(f"a user's network is a torch nn.Module (backend='pyro') or an "
                            f"Equinox module (backend='numpyro'), got "
                            f"{type(self.module).__name__}")

    @property
    def library(self) -> str:
        return module_library(self.module)

    def spec(self, inputs, heads, role, image_shape=None) -> UserSpec:
        return UserSpec(self.module, tuple(inputs), tuple(heads), role, self.library)

    def record(self) -> dict:
        """What a model's config says of the module: its class and library (its code and
        weights are not settings; ``pv.load(path, model=...)`` takes the model again)."""
        cls = type(self.module)
        return {"name": USER, "module": f"{cls.__module__}.{cls.__qualname__}",
                "library": self.library}
