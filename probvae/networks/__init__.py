"""Network specifications shared by both backends, and the architectures that make them.

A model asks an architecture (:class:`MLP`, :class:`Conv`; by name ``"mlp"``, ``"conv"`` or an
instance with settings) for an encoder or a decoder with given inputs and output heads; the
architecture answers with a spec (:class:`MLPSpec`, :class:`ConvSpec`) that each backend builds
into a real network (``bk.build_network``: torch modules for Pyro, Equinox modules for
NumPyro). All array math of a model (reshaping pixels into images, concatenating inputs,
one-hot coding labels, splitting the output into named heads, positivity transforms) happens
inside these networks, so model bodies only sample and observe.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

__all__ = ["Head", "Input", "gaussian_heads", "MLPSpec", "ConvSpec", "UserSpec", "MADESpec",
           "MLP", "Conv", "UserNetwork", "get", "names", "register", "module_library",
           "tril_positions", "TRIL_OFF_DIAGONAL", "ACTIVATIONS", "TRANSFORMS", "CONSTRAINTS"]

#: Activation names understood by both network builders.
ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "softplus", "silu")
#: Output transforms: ``identity``; ``positive`` = softplus(h) + 1e-4 (scales);
#: ``softplus``; ``sigmoid``; ``bounded`` = bound * tanh(h / bound) (needs ``Head.bound``);
#: ``tril``: the ``size * (size + 1) / 2`` outputs fill a lower-triangular ``(size, size)``
#: matrix row by row, its diagonal through ``positive`` and its off-diagonal entries times
#: :data:`TRIL_OFF_DIAGONAL` (a Cholesky factor).
TRANSFORMS = ("identity", "positive", "softplus", "sigmoid", "bounded", "tril")
#: The floor added by the ``positive`` transform, so a scale never reaches zero.
POSITIVE_FLOOR = 1e-4
#: What a ``tril`` head's off-diagonal outputs are multiplied by. Unscaled, a freshly
#: initialised encoder's random correlations across all the latent dims gave each later dim a
#: variance of about its index, and the full-rank VAE never recovered: on 10,000 MNIST images
#: (latent 40, 30 epochs) its validation -ELBO was 138.2 against the diagonal VAE's 114.7;
#: with 0.01 the factor starts near-diagonal and trains to 117.0 (0.1: 117.4, 0.001: 115.9).
TRIL_OFF_DIAGONAL = 0.01
#: What a user's network must return for a head of each transform (see :class:`UserSpec`):
#: the value the distribution takes, in its support.
CONSTRAINTS = {"identity": "real", "positive": "> 0", "softplus": "> 0", "sigmoid": "in (0, 1)",
               "bounded": "real", "tril": "lower-triangular, diagonal > 0"}


def tril_positions(size: int) -> tuple:
    """``(rows, cols, on_diagonal)`` of the ``size * (size + 1) / 2`` entries of a
    lower-triangular matrix in the order a ``tril`` head fills them (row by row), as NumPy
    arrays: both backends' networks fill the matrix from these, so equal weights give equal
    factors.

    Examples
    --------
    >>> rows, cols, diag = tril_positions(2)
    >>> rows.tolist(), cols.tolist(), diag.tolist()
    ([0, 1, 1], [0, 0, 1], [True, False, True])
    """
    rows, cols = np.tril_indices(int(size))
    return rows, cols, rows == cols


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

    A head's value has :attr:`shape` (``(size,)``; ``(size, size)`` for a ``tril`` head) and
    takes :attr:`width` of the network's outputs (``size``; ``size * (size + 1) / 2`` for
    ``tril``).

    Examples
    --------
    >>> Head("scale", 8, "positive").transform
    'positive'
    >>> Head("scale_tril", 3, "tril").width, Head("scale_tril", 3, "tril").shape
    (6, (3, 3))
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

    @property
    def width(self) -> int:
        """How many of the network's outputs this head takes."""
        n = int(self.size)
        return n * (n + 1) // 2 if self.transform == "tril" else n

    @property
    def shape(self) -> tuple:
        """The shape of the head's value for one example."""
        n = int(self.size)
        return (n, n) if self.transform == "tril" else (n,)


def gaussian_heads(size: int) -> tuple:
    """The output heads of a diagonal Gaussian of ``size`` dims: ``loc`` and a positive ``scale``.

    Examples
    --------
    >>> [h.name for h in gaussian_heads(4)]
    ['loc', 'scale']
    """
    return (Head("loc", size), Head("scale", size, "positive"))


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
        return sum(h.width for h in self.heads)

    @property
    def num_params(self) -> int:
        """Weights and biases of the built network (computed, nothing allocated).

        Examples
        --------
        >>> MLPSpec((Input("x", 4),), (8,), (Head("loc", 2),)).num_params
        58
        """
        return _dense_params([self.in_size, *[int(w) for w in self.hidden], self.out_size])

    @property
    def max_width(self) -> int:
        """The widest activation per example (sizes evaluation blocks)."""
        return max([self.in_size, self.out_size, *[int(w) for w in self.hidden]])


def _dense_params(sizes) -> int:
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


@dataclass(frozen=True)
class ConvSpec:
    """A convolutional encoder or decoder for images, described without any array library.

    ``role="encoder"``: the first input is the image, flattened (``C*H*W`` features); it goes
    through ``channels`` stride-2 convolutions (each halves height and width), is flattened,
    joined by the other inputs (e.g. M2's one-hot label), then through dense ``hidden`` layers
    to the heads. ``role="decoder"``: all inputs are joined, go through dense ``hidden`` layers
    to a ``channels[-1]`` x (H / 2^L) x (W / 2^L) image, then through stride-2 transposed
    convolutions back to (H, W); every head is one image of C channels, returned flattened.

    Examples
    --------
    >>> spec = ConvSpec((Input("x", 784),), (Head("loc", 8),), (1, 28, 28), channels=(32, 64))
    >>> spec.in_size, spec.out_size, spec.grid
    (784, 8, (7, 7))
    """

    inputs: tuple
    heads: tuple
    image_shape: tuple
    channels: tuple = (32, 64)
    kernel: int = 4
    hidden: tuple = (256,)
    activation: str = "relu"
    role: str = "encoder"

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; known: {ACTIVATIONS}")
        if self.role not in ("encoder", "decoder"):
            raise ValueError(f"ConvSpec role must be 'encoder' or 'decoder', got {self.role!r}")
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be (channels, height, width), got "
                             f"{self.image_shape}")
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"conv channels must be positive, got {self.channels}")
        if int(self.kernel) < 2:
            raise ValueError(f"conv kernel must be >= 2, got {self.kernel}")
        c, h, w = self.image_shape
        step = 2 ** len(self.channels)
        if h % step or w % step:
            raise ValueError(f"{len(self.channels)} stride-2 layers need height and width "
                             f"divisible by {step}, got {h}x{w}: use fewer channels entries")
        pixels = c * h * w
        if self.role == "encoder" and self.inputs[0].size != pixels:
            raise ValueError(f"a conv encoder's first input is the image ({pixels} values for "
                             f"{self.image_shape}), got size {self.inputs[0].size}")
        if self.role == "decoder" and any(hd.size != pixels for hd in self.heads):
            raise ValueError(f"a conv decoder's heads are images of {pixels} values "
                             f"({self.image_shape}), got {[hd.size for hd in self.heads]}")

    @property
    def in_size(self) -> int:
        return sum(i.size for i in self.inputs)

    @property
    def out_size(self) -> int:
        return sum(h.width for h in self.heads)

    @property
    def grid(self) -> tuple:
        """Height and width after the stride-2 layers."""
        step = 2 ** len(self.channels)
        return self.image_shape[1] // step, self.image_shape[2] // step

    @property
    def max_width(self) -> int:
        """The widest activation per example: the first (or last) convolution's output."""
        h, w = self.image_shape[1], self.image_shape[2]
        convs = [c * (h >> (i + 1)) * (w >> (i + 1)) for i, c in enumerate(self.channels)]
        return max([self.in_size, self.out_size, *self.hidden, *convs,
                    len(self.heads) * self.image_shape[0] * h * w])

    @property
    def padding(self) -> tuple:
        """``(padding, output_padding)`` that make a stride-2 layer halve or double exactly."""
        p = (int(self.kernel) - 1) // 2
        return p, 2 - int(self.kernel) + 2 * p

    @property
    def num_params(self) -> int:
        """Weights and biases of the built network (computed, nothing allocated).

        Examples
        --------
        >>> ConvSpec((Input("x", 64),), (Head("loc", 2),), (1, 8, 8), channels=(4,),
        ...          hidden=()).num_params
        198
        """
        k2 = int(self.kernel) ** 2
        c = self.image_shape[0]
        flat = self.channels[-1] * self.grid[0] * self.grid[1]
        if self.role == "encoder":
            chans = (c, *self.channels)
            convs = sum((a * k2 + 1) * b for a, b in zip(chans[:-1], chans[1:]))
            extra = self.in_size - self.inputs[0].size
            return convs + _dense_params([flat + extra, *self.hidden, self.out_size])
        chans = (*self.channels[::-1], c * len(self.heads))
        convs = sum((a * k2 + 1) * b for a, b in zip(chans[:-1], chans[1:]))
        return convs + _dense_params([self.in_size, *self.hidden, flat])


@dataclass(frozen=True)
class MADESpec:
    """A masked autoencoder (MADE; Germain et al. 2015) with a context input: one step of an
    inverse autoregressive flow, described without any array library.

    The built network takes ``z`` (..., ``dim``) and ``context`` (..., ``context_dim``)
    (leading dims broadcast) and returns ``(mean, log_scale)``, each (..., ``dim``), where
    output ``i`` depends on the context and on the ``z_j`` that come before ``i`` in
    ``order`` only. The masks are NumPy arrays made here (:meth:`masks`), so both backends'
    networks mask alike and equal weights give equal outputs. The context feeds the first
    hidden layer unmasked (Kingma et al. 2016's ``h``).

    Parameters
    ----------
    dim : int
        Size of ``z``.
    context_dim : int
        Size of the context (0: none).
    hidden : tuple of int
        Hidden widths (at least one layer).
    order : {"forward", "reverse"}
        The autoregressive order of ``z``'s dims (alternate it between steps).
    activation : str

    References
    ----------
    Germain et al. (2015), "MADE: Masked Autoencoder for Distribution Estimation", ICML.
    Kingma et al. (2016), "Improved Variational Inference with Inverse Autoregressive Flow".

    Examples
    --------
    >>> spec = MADESpec(3, 2, (8,))
    >>> [m.shape for m in spec.masks()], spec.permutation.tolist()
    ([(8, 5), (6, 8)], [0, 1, 2])
    """

    dim: int
    context_dim: int = 0
    hidden: tuple = (64,)
    order: str = "forward"
    activation: str = "relu"

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; known: {ACTIVATIONS}")
        if self.order not in ("forward", "reverse"):
            raise ValueError(f"MADE order must be 'forward' or 'reverse', got {self.order!r}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"an autoregressive step needs hidden widths >= 1 (at least one "
                             f"layer), got {self.hidden}")
        if int(self.dim) < 1 or int(self.context_dim) < 0:
            raise ValueError(f"MADE needs dim >= 1 and context_dim >= 0, got {self.dim}, "
                             f"{self.context_dim}")

    @property
    def degrees(self) -> np.ndarray:
        """Each dim of ``z``'s place in the order, 1..dim."""
        deg = np.arange(1, int(self.dim) + 1)
        return deg if self.order == "forward" else deg[::-1].copy()

    @property
    def permutation(self) -> np.ndarray:
        """The dims of ``z`` in the order they are determined (for inverting a step)."""
        return np.argsort(self.degrees, kind="stable")

    def masks(self) -> list:
        """One ``(out, in)`` 0/1 float32 mask per dense layer, the last over both outputs
        (``mean`` then ``log_scale``). Hidden unit degrees cycle through 0..dim-1 (degree 0:
        the context alone); unit ``k`` sees inputs of degree <= its own; output ``i`` sees
        hidden units of degree < ``degrees[i]``."""
        d = int(self.dim)
        prev = np.concatenate([self.degrees, np.zeros(int(self.context_dim), int)])
        masks = []
        for width in self.hidden:
            deg = np.arange(int(width)) % d
            masks.append((deg[:, None] >= prev[None, :]).astype(np.float32))
            prev = deg
        out = np.concatenate([self.degrees, self.degrees])
        masks.append((out[:, None] > prev[None, :]).astype(np.float32))
        return masks

    @property
    def num_params(self) -> int:
        """Weights and biases (masked ones included).

        Examples
        --------
        >>> MADESpec(2, 1, (4,)).num_params
        36
        """
        return _dense_params([int(self.dim) + int(self.context_dim),
                              *[int(w) for w in self.hidden], 2 * int(self.dim)])

    @property
    def max_width(self) -> int:
        return max([int(self.dim) + int(self.context_dim), 2 * int(self.dim),
                    *[int(w) for w in self.hidden]])


def module_library(obj):
    """``"torch"`` for a torch ``nn.Module``, ``"equinox"`` for an Equinox module, else None.

    Neither library is imported here: a module of one exists only once its library is.

    Examples
    --------
    >>> module_library("mlp") is None
    True
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.nn.Module):
        return "torch"
    eqx = sys.modules.get("equinox")
    if eqx is not None and isinstance(obj, eqx.Module):
        return "equinox"
    return None


#: what each library's user networks are called on, for messages
_CALLED_ON = {"torch": "batch-first", "equinox": "one example at a time (vmapped over the batch)"}


@dataclass(frozen=True, eq=False)
class UserSpec:
    """A user's own network (a torch ``nn.Module`` or an Equinox module) in a model's place.

    Each backend wraps the module (``bk.build_network``): the wrapper passes it the inputs
    the built-in network would get, one argument per :class:`Input` (a one-hot input coded as
    floats), and reads back what the heads would give. A torch module is called batch-first,
    on ``(batch, size)`` arrays (extra leading dims such as particles are flattened into the
    batch and restored after); an Equinox module on one example, ``(size,)``, and vmapped, as
    Equinox's own layers are. Images arrive flattened (``C*H*W`` values): reshape inside.

    The module returns the heads' values: one array when there is one head, else a tuple in
    head order or a dict by head name; each in its head's support (:data:`CONSTRAINTS`: a
    scale ``> 0``, logits real). Nothing is transformed after it. A wrong shape, key or
    support is a ValueError naming what was expected (checked once on a small batch when the
    model is made, and the shapes again on every call).

    Parameters
    ----------
    module : torch.nn.Module or equinox.Module
    inputs : tuple of Input
    heads : tuple of Head
    role : str
        What the network is in its model (``"encoder"``, ``"decoder"``), for messages.
    library : {"torch", "equinox"}

    Examples
    --------
    >>> import torch
    >>> spec = UserSpec(torch.nn.Linear(4, 2), (Input("z", 4),), (Head("logits", 2),),
    ...                 "decoder", "torch")
    >>> spec.num_params, spec.describe()
    (10, 'takes z (batch, 4); returns logits (batch, 2) real')
    """

    module: object
    inputs: tuple
    heads: tuple
    role: str
    library: str

    @property
    def label(self) -> str:
        """The module's class name."""
        return type(self.module).__name__

    @property
    def in_size(self) -> int:
        return sum(i.size for i in self.inputs)

    @property
    def out_size(self) -> int:
        return sum(h.width for h in self.heads)

    @property
    def max_width(self) -> int:
        """The widest activation per example, as far as it is known (inputs and outputs)."""
        return max(self.in_size, self.out_size)

    @property
    def num_params(self) -> int:
        """The module's trainable values (floating-point arrays)."""
        if self.library == "torch":
            return sum(int(p.numel()) for p in self.module.parameters())
        jax = sys.modules["jax"]
        return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(self.module)
                   if hasattr(leaf, "dtype") and jax.numpy.issubdtype(leaf.dtype,
                                                                      jax.numpy.inexact))

    def _shape(self, size, per_example) -> tuple:
        return (size,) if per_example else ("batch", size)

    def describe(self, per_example: bool = False) -> str:
        """What the module takes and returns, in words (shapes batch-first, or of one example).

        Examples
        --------
        >>> UserSpec(None, (Input("x", 64),), gaussian_heads(8), "encoder", "equinox"
        ...          ).describe(per_example=True)
        'takes x (64,); returns loc (8,) real, scale (8,) > 0'
        """
        def shape(n):
            if isinstance(n, tuple):        # a head's value shape
                full = n if per_example else ("batch",) + n
                return str(full).replace("'", "")
            return str(self._shape(n, per_example)).replace("'", "")
        takes = ", ".join(f"{i.name} {shape(i.size)}" + (" one-hot" if i.kind == "one_hot"
                                                         else "") for i in self.inputs)
        gives = ", ".join(f"{h.name} {shape(h.shape)} {CONSTRAINTS[h.transform]}"
                          for h in self.heads)
        return f"takes {takes}; returns {gives}"

    def _fail(self, what, per_example):
        how = _CALLED_ON[self.library]
        raise ValueError(f"the {self.role} ({self.label}, called {how}) {what}; it should "
                         f"return {self._expected(per_example)} ({self.describe(per_example)})")

    def _expected(self, per_example) -> str:
        names = [h.name for h in self.heads]
        if len(names) == 1:
            return "one array"
        return f"a tuple ({', '.join(names)}) or a dict with the keys {names}"

    def call(self, module, inputs, per_example: bool):
        """``module`` (the wrapper's copy of :attr:`module`, with the trained values) on
        ``inputs``; an error of the call (a wrong signature, shapes the module cannot take)
        as a ValueError that says what it was given."""
        try:
            return module(*inputs)
        except (TypeError, ValueError, RuntimeError) as err:
            how = _CALLED_ON[self.library]
            raise ValueError(f"the {self.role} ({self.label}, called {how}) failed on its "
                             f"inputs: {type(err).__name__}: {str(err)[:300]}; it "
                             f"{self.describe(per_example)}") from err

    def outputs(self, out, lead: tuple) -> tuple:
        """The module's output ``out`` as one array per head, in head order, each of shape
        ``lead + head.shape`` (``lead``: ``(batch,)`` for torch, ``()`` for one example);
        a ValueError naming the expected shapes and keys otherwise.

        Examples
        --------
        >>> import numpy as np
        >>> spec = UserSpec(None, (Input("x", 3),), gaussian_heads(2), "encoder", "torch")
        >>> [a.shape for a in spec.outputs({"scale": np.ones((5, 2)), "loc": np.zeros((5, 2))},
        ...                                (5,))]
        [(5, 2), (5, 2)]
        >>> spec.outputs(np.zeros((5, 4)), (5,))
        Traceback (most recent call last):
        ...
        ValueError: the encoder (NoneType, called batch-first) returned one array; it should return a tuple (loc, scale) or a dict with the keys ['loc', 'scale'] (takes x (batch, 3); returns loc (batch, 2) real, scale (batch, 2) > 0)
        """
        names = [h.name for h in self.heads]
        per_example = not lead
        if isinstance(out, dict):
            if set(out) != set(names):
                self._fail(f"returned a dict with the keys {sorted(map(str, out))}", per_example)
            values = [out[n] for n in names]
        elif isinstance(out, (tuple, list)):
            if len(out) != len(names):
                self._fail(f"returned {len(out)} values", per_example)
            values = list(out)
        elif len(names) == 1:
            values = [out]
        else:
            self._fail("returned one array", per_example)
        for value, head in zip(values, self.heads):
            shape = getattr(value, "shape", None)
            if shape is None:
                self._fail(f"returned {type(value).__name__} for {head.name!r}, not an array",
                           per_example)
            want = tuple(lead) + head.shape
            if tuple(shape) != want:
                expected = head.shape if per_example else ("batch",) + head.shape
                self._fail(f"returned shape {tuple(shape)} for {head.name!r} where "
                           f"{str(expected)} = {want} was expected"
                           .replace("'batch'", "batch"), per_example)
        return tuple(values)

    def check_values(self, values):
        """Each head's values (NumPy arrays, from a first call) in its support; a ValueError
        naming the head and the fix otherwise."""
        for value, head in zip(values, self.heads):
            value = np.asarray(value)
            if not np.all(np.isfinite(value)):
                raise ValueError(f"the {self.role} ({self.label}) returned NaN or inf for "
                                 f"{head.name!r} on a first small batch")
            if head.transform in ("positive", "softplus") and not np.all(value > 0):
                raise ValueError(
                    f"the {self.role} ({self.label}) returned values <= 0 for {head.name!r} "
                    f"(min {value.min():.3g}), which must be > 0: end that output with a "
                    f"positive map, e.g. softplus(h) + 1e-4 or exp(h)")
            if head.transform == "tril" and not (
                    np.all(np.triu(value, 1) == 0)
                    and np.all(np.diagonal(value, axis1=-2, axis2=-1) > 0)):
                raise ValueError(
                    f"the {self.role} ({self.label}) returned a {head.name!r} that is not "
                    f"lower-triangular with a positive diagonal: a Cholesky factor, e.g. "
                    f"torch.tril of the entries with softplus(diagonal) + 1e-4 on it")
            if head.transform == "sigmoid" and not np.all((value > 0) & (value < 1)):
                raise ValueError(f"the {self.role} ({self.label}) returned values outside "
                                 f"(0, 1) for {head.name!r}: end it with a sigmoid")


from .architectures import MLP, Conv, UserNetwork, get, names, register  # noqa: E402,I001
