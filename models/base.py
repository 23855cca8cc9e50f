"""What every model class shares: backend binding, building networks once, configs."""
from __future__ import annotations

import copy
import functools
import inspect
import numbers
import os

from probvae import backends, networks
from probvae import batch as batching
from probvae.registry import to_config

from .contract import Contract, Site, read_contract

__all__ = ["Model", "CustomModel", "check_hidden", "memory_bytes", "image_input", "architecture",
           "check_user_networks"]


def image_input(input_dim, image_shape) -> tuple:
    """``(input_dim, image_shape)`` made consistent: an image shape (C, H, W) or (H, W) gives
    the number of features; a given input_dim must match it.

    Examples
    --------
    >>> image_input(None, (28, 28))
    (784, (1, 28, 28))
    >>> image_input(64, None)
    (64, None)
    """
    if image_shape is not None:
        shape = tuple(int(s) for s in image_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"image_shape takes (channels, height, width) or (height, width), "
                             f"got {image_shape!r}")
        pixels = shape[0] * shape[1] * shape[2]
        if input_dim is not None and int(input_dim) != pixels:
            raise ValueError(f"input_dim={input_dim} does not match image_shape {shape} "
                             f"({pixels} values); give one of them")
        return pixels, shape
    if input_dim is None:
        raise ValueError("give input_dim (the number of features) or image_shape")
    return input_dim, None


def network_config(model) -> dict:
    """The image shape and the non-default architectures of a model, for its config (a model
    with MLPs of its own ``hidden`` widths and no image shape writes nothing new)."""
    out = {}
    if model.image_shape is not None:
        out["image_shape"] = list(model.image_shape)
    for role in ("encoder", "decoder"):
        arch = getattr(model, role)
        if isinstance(arch, networks.UserNetwork):
            out[role] = arch.record()
        elif arch != networks.MLP(hidden=model.hidden, activation=model.activation):
            out[role] = to_config(arch)
    return out


def architecture(spec, hidden, activation, role="encoder"):
    """An encoder/decoder architecture: ``"mlp"`` (with the model's ``hidden`` widths),
    ``"conv"`` (its defaults), a config dict, an instance from :mod:`probvae.networks`, or a
    user's own torch ``nn.Module`` / Equinox module (:class:`~probvae.networks.UserNetwork`).

    Examples
    --------
    >>> architecture("mlp", (64,), "relu")
    MLP(hidden=(64,), activation='relu')
    >>> import torch
    >>> type(architecture(torch.nn.Linear(64, 16), (), "relu")).__name__
    'UserNetwork'
    """
    if networks.module_library(spec) is not None:
        return networks.UserNetwork(spec)
    if isinstance(spec, dict) and spec.get("name") == networks.architectures.USER:
        raise ValueError(f"the {role} was a user's network ({spec.get('module')}), which is "
                         f"code, not settings: pass the module itself ({role}=MyModule(...)); "
                         "a saved run of it loads with pv.load(path, model=<the model made "
                         "with that module>)")
    if spec == "mlp":
        return networks.MLP(hidden=hidden, activation=activation)
    if spec == "conv":
        return networks.Conv(activation=activation)
    return networks.get(spec)


def check_user_networks(model):
    """Build each of ``model``'s user networks once (its ``*_spec`` attributes that are
    :class:`~probvae.networks.UserSpec`), so a module of the other backend's library, or one
    whose outputs do not fit, fails when the model is made; the error names the model."""
    for name, spec in vars(model).items():
        if name.endswith("_spec") and isinstance(spec, networks.UserSpec):
            try:
                model.bk.build_network(spec, 0)
            except (ValueError, TypeError) as err:
                raise type(err)(f"{model.describe()}: {err}") from None


def check_hidden(hidden, owner="the model") -> tuple:
    """``hidden`` as a tuple of positive layer widths, with a clear error otherwise.

    Examples
    --------
    >>> check_hidden([256, 128])
    (256, 128)
    >>> check_hidden(16)
    Traceback (most recent call last):
    ...
    ValueError: hidden takes a tuple of layer widths, e.g. hidden=(16,) for one layer of 16 units; got 16
    """
    if isinstance(hidden, (numbers.Number, str)):
        raise ValueError(f"hidden takes a tuple of layer widths, e.g. hidden=({hidden},) for one "
                         f"layer of {hidden} units; got {hidden!r}")
    widths = tuple(hidden)
    if any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in widths):
        raise ValueError(f"hidden takes positive integer layer widths, got {hidden!r} for "
                         f"{owner}")
    return tuple(int(w) for w in widths)


def memory_bytes() -> int:
    """This machine's physical memory in bytes (0 when it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0

MODELS: dict = {}


def register_model(cls):
    """Class decorator: make a model class loadable by name from a checkpoint config."""
    MODELS[cls.__name__] = cls
    return cls


class Model:
    """Base for built-in models.

    A subclass defines ``_build_nets(seed) -> dict``, ``model(x, ...)``, ``guide(x, ...)`` and
    ``config()``. ``build(seed)`` returns a copy with its backend networks made, which is what
    ``fit`` trains; the unbuilt object is just a description and can be fitted many times.
    """

    #: sites whose plate is the data plate; diagnostics and evaluation rely on these names
    data_plate = "data"
    max_plate_nesting = 1
    #: learns labels and has a public ``classify(x)`` giving q(y|x) (SSVAE, ADGM)
    is_classifier = False
    #: sums discrete latents out by enumeration (``fit``'s default objective is then ``enum``)
    needs_enumeration = False
    #: the latent that decode and traverse move by default (None: the first continuous one)
    principal_latent = None
    #: the prior and likelihood objects (every built-in model sets its own)
    prior = likelihood = None
    #: classes of a model that learns labels (None: none)
    num_classes = None
    #: hidden widths of its MLPs
    hidden = ()
    #: the seed its networks were built from (set by :meth:`build`)
    seed = 0
    #: observed sites that are training terms, not part of p(x, ...): left out of scores
    training_sites = ()
    #: the per-example inputs (batch keys, see probvae.batch) that model and guide take
    batch_keys = ("x", "mask")
    #: ``fit`` settings this model trains best with when the call leaves them out
    fit_defaults: dict = {}
    #: the guide samples the latents in the model's order, which objective ``mean_field``'s
    #: closed-form KL terms assume (False: a bottom-up guide of a top-down model, HVAE)
    guide_follows_model = True
    #: width of the per-example ``condition`` batch key a conditional model requires (None:
    #: the model takes no condition)
    condition_dim = None
    #: the table schema (a :class:`~probvae.data.Table` of columns) a condition given as
    #: DataFrame columns is encoded with (None: conditions are arrays)
    condition_table = None

    def __init__(self, backend: str = "numpyro"):
        self.bk = backends.get(backend)
        self.backend = self.bk.name
        self.nets = None

    @property
    def display_name(self) -> str:
        """The model's name in progress bars and messages."""
        return type(self).__name__

    def describe(self) -> str:
        """The model's class and sizes, for messages.

        Examples
        --------
        >>> from probvae.models import VAE
        >>> VAE(input_dim=64, latent_dim=8).describe()
        'VAE(input_dim=64, latent_dim=8)'
        """
        sizes = [f"{k}={getattr(self, k)}" for k in ("input_dim", "num_classes", "latent_dim",
                                                       "condition_dim")
                 if getattr(self, k, None) is not None]
        return f"{type(self).__name__}({', '.join(sizes)})"

    @property
    def user_networks(self) -> tuple:
        """The roles (``"encoder"``, ``"decoder"``) filled by a user's own module: such a
        model's config names the modules but cannot rebuild them (they are code), so
        ``pv.load`` takes the model again, and compiled programs are not shared by config.

        Examples
        --------
        >>> from probvae.models import VAE
        >>> VAE(input_dim=4, latent_dim=2).user_networks
        ()
        """
        return tuple(role for role in ("encoder", "decoder")
                     if isinstance(vars(self).get(role), networks.UserNetwork))

    def check_objective(self, objective) -> None:
        """Refuse, before training, an objective (:class:`~probvae.inference.objectives.
        Objective`) this model cannot train with; every objective passes by default."""

    def latent_sites(self) -> tuple:
        """The model's latent sites (:class:`~.contract.Site`), in its guide's order; each
        model class declares its own."""
        raise NotImplementedError(f"{type(self).__name__} declares no latent sites")

    @property
    def contract(self) -> Contract:
        """What this model is: its latent and observed sites, batch keys and data plate
        (:class:`~.contract.Contract`).

        Examples
        --------
        >>> from probvae.models import VAE
        >>> VAE(input_dim=4, latent_dim=2).contract.latents
        (Site(name='z', event_shape=(2,), discrete=False, num_values=None),)
        """
        return Contract(latents=self.latent_sites(), observed=(Site("x", (self.input_dim,)),),
                        batch_keys=self.batch_keys, data_plate=self.data_plate,
                        training_sites=self.training_sites, principal=self.principal_latent)

    def build(self, seed: int = 0):
        """A copy of this model with networks built from ``seed``.

        Examples
        --------
        >>> from probvae.models import VAE
        >>> VAE(input_dim=4, latent_dim=2, hidden=(8,)).build(seed=0).nets is not None
        True
        """
        self.check_size()
        built = copy.copy(self)
        built.nets = self._build_nets(seed)
        built.seed = seed
        return built

    def parameter_count(self) -> int:
        """Parameters of the model's networks, counted from their specs (nothing built).

        Examples
        --------
        >>> from probvae.models import VAE
        >>> VAE(input_dim=4, latent_dim=2, hidden=(8,)).parameter_count()
        136
        """
        return sum(spec.num_params for name, spec in vars(self).items()
                   if name.endswith("_spec") and hasattr(spec, "num_params"))

    def check_size(self):
        """Refuse, before anything is allocated, a model too large for this machine (float32
        parameters, gradients and two Adam moments: 16 bytes each)."""
        count, total = self.parameter_count(), memory_bytes()
        if total and 16 * count > total:
            raise ValueError(f"{type(self).__name__} would have {count:.3g} parameters "
                             f"({16 * count / 2**30:.3g} GiB to train), more than this "
                             f"machine's {total / 2**30:.3g} GiB of memory: check input_dim, "
                             "latent_dim and hidden")

    def _require_built(self):
        if self.nets is None:
            raise RuntimeError(f"{type(self).__name__} has no networks yet: call .build(seed) "
                               "or train it with probvae.fit")

    @classmethod
    def from_config(cls, config: dict):
        cfg = dict(config)
        name = cfg.pop("class")
        if name not in MODELS:
            raise ValueError(f"unknown model class {name!r}; known: {sorted(MODELS)}")
        return MODELS[name](**cfg)


def _keywords(fn):
    """``(names, takes_any, x_positional)`` of a user's model or guide function."""
    params = list(inspect.signature(fn).parameters.values())
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params)
    first = params[0] if params else None
    x_positional = ("x" not in names and first is not None
                    and first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD))
    return names, takes_any, x_positional


def _adapt(fn):
    """Call ``fn`` with batch keywords; ``x`` goes in as the first argument when ``fn`` names it
    otherwise (``def model(data): ...``)."""
    _, _, x_positional = _keywords(fn)
    if not x_positional:
        return fn

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if not args and "x" in kwargs:
            args = (kwargs.pop("x"),)
        return fn(*args, **kwargs)
    return call


class CustomModel:
    """A user's own ``(model, guide)`` pair of plain Pyro or NumPyro functions.

    ``fit`` wraps a tuple in this so both kinds of model train through the same loop. The
    functions take the batch as keyword arguments named after its keys (``x``, and ``mask``,
    ``y``, ... when the data has them); the first argument may have another name, and then
    receives ``x``. To use ``probvae.sample`` the model should also accept ``x=None, n=...``.

    Its :class:`~.contract.Contract` (latent and observed sites, data plate) is read from one
    trace of the pair when ``fit`` first sees data (:meth:`with_contract`), so the pair may name
    its sites and plates as it likes; ``contract=`` gives one instead.

    Examples
    --------
    >>> def model(x, mask=None): ...
    >>> def guide(x, mask=None): ...
    >>> pair = CustomModel(model, guide, backend="pyro")
    >>> pair.backend, sorted(pair.batch_keys)
    ('pyro', ['mask', 'x'])
    """

    max_plate_nesting = 1
    likelihood = prior = None
    is_classifier = needs_enumeration = False
    #: (see :attr:`Model.guide_follows_model`; a pair's order is its own business)
    guide_follows_model = True
    input_dim = num_classes = None
    #: a pair's condition (when it takes one) is optional and of any width: its own code says
    condition_dim = condition_table = None
    #: (its networks are its own code: see :attr:`Model.user_networks`)
    user_networks = ()
    hidden = ()
    fit_defaults: dict = {}
    seed = 0
    display_name = "CustomModel"

    def __init__(self, model, guide, backend: str, max_plate_nesting: int = 1, contract=None):
        if not (callable(model) and callable(guide)):
            raise TypeError("a custom model is a pair of callables (model, guide)")
        if contract is not None and not isinstance(contract, Contract):
            raise TypeError("contract= takes a probvae.models.Contract, got "
                            f"{type(contract).__name__}")
        self.model, self.guide = _adapt(model), _adapt(guide)
        self.bk = backends.get(backend)
        self.backend = self.bk.name
        self.max_plate_nesting = int(max_plate_nesting)
        self.nets = {}
        keys = []
        for fn in (model, guide):
            names, takes_any, x_positional = _keywords(fn)
            keys.append(None if takes_any else names | ({"x"} if x_positional else set()))
        #: the batch keys both functions take (None: any)
        self.batch_keys = (None if keys[0] is None and keys[1] is None else
                           tuple(sorted(set.intersection(*[k for k in keys if k is not None]))))
        self._contract = contract
        #: ``{batch key: (shape of one example, dtype name)}`` of the data it was fitted on
        self.inputs = None

    def check_objective(self, objective) -> None:
        """A pair trains with any objective its sites allow (the library says otherwise)."""

    @property
    def contract(self) -> Contract:
        """The pair's contract (read by ``fit`` from a trace, or given)."""
        if self._contract is None:
            raise ValueError("this (model, guide) pair has not seen data yet, so its latent "
                             "sites are not known: train it with pv.fit, or give "
                             "contract=pv.models.Contract(...)")
        return self._contract

    @property
    def data_plate(self) -> str:
        return self._contract.data_plate if self._contract is not None else "data"

    @property
    def training_sites(self) -> tuple:
        return self._contract.training_sites if self._contract is not None else ()

    def with_contract(self, batch: dict, seed: int = 0) -> "CustomModel":
        """This pair with its contract read from one trace on a few rows of ``batch`` (a
        batch dict of NumPy arrays; see :func:`~.contract.read_contract`), unless it has one.

        Examples
        --------
        >>> import numpy as np, numpyro, numpyro.distributions as dist
        >>> def model(x):
        ...     with numpyro.plate("data", x.shape[0]):
        ...         z = numpyro.sample("z", dist.Normal(0, 1).expand([2]).to_event(1))
        ...         numpyro.sample("x", dist.Normal(z.sum(-1, keepdims=True), 1).to_event(1),
        ...                        obs=x)
        >>> def guide(x):
        ...     with numpyro.plate("data", x.shape[0]):
        ...         numpyro.sample("z", dist.Normal(0, 1).expand([2]).to_event(1))
        >>> pair = CustomModel(model, guide, "numpyro").with_contract({"x": np.zeros((5, 1))})
        >>> pair.contract.latent_names
        ('z',)
        """
        if self._contract is not None and self.inputs is not None:
            return self
        rows = batching.take(batch, slice(0, min(4, batching.size(batch))))
        if self.batch_keys is not None:
            rows = batching.with_keys(rows, self.batch_keys)
        out = copy.copy(self)
        out.inputs = {k: (tuple(int(d) for d in v.shape[1:]), str(v.dtype))
                      for k, v in rows.items() if v is not None}
        if self._contract is None:
            with self.bk.lock:
                out._contract = read_contract(self.bk, self.model, self.guide,
                                              batching.to_backend(self.bk, rows), seed,
                                              batch_keys=self.batch_keys)
            out._given = False
        return out

    #: whether the contract was given (``contract=``) rather than read from a trace
    _given = True

    def record(self) -> dict:
        """What a run folder's ``config.json`` records of the pair (its functions are code and
        are not saved): backend, contract and the shapes of its inputs, so that
        ``pv.load(path, model=(model, guide))`` can check the pair it is given.

        Examples
        --------
        >>> import numpy as np, numpyro, numpyro.distributions as dist
        >>> def model(x):
        ...     with numpyro.plate("data", x.shape[0]):
        ...         numpyro.sample("x", dist.Normal(0, 1).expand([3]).to_event(1), obs=x)
        >>> def guide(x): ...
        >>> pair = CustomModel(model, guide, "numpyro").with_contract({"x": np.zeros((5, 3))})
        >>> rec = pair.record()
        >>> rec["contract"]["observed"], rec["inputs"]
        ([{'name': 'x', 'event_shape': [3], 'discrete': False, 'num_values': None}], {'x': {'shape': [3], 'dtype': 'float64'}})
        """
        c = self.contract

        def sites(group):
            return [{"name": s.name, "event_shape": list(s.event_shape), "discrete": s.discrete,
                     "num_values": s.num_values} for s in group]
        return {"class": "CustomModel", "backend": self.backend,
                "max_plate_nesting": self.max_plate_nesting,
                "contract": {"latents": sites(c.latents), "observed": sites(c.observed),
                             "batch_keys": None if c.batch_keys is None else list(c.batch_keys),
                             "data_plate": c.data_plate,
                             "training_sites": list(c.training_sites),
                             "given": bool(self._given)},
                "inputs": {k: {"shape": list(shape), "dtype": dtype}
                           for k, (shape, dtype) in (self.inputs or {}).items()}}

    @classmethod
    def from_record(cls, model, guide, record: dict) -> "CustomModel":
        """The pair ``(model, guide)`` with the contract and inputs :meth:`record` wrote
        (``record`` already checked)."""
        c = record["contract"]

        def sites(group):
            return tuple(Site(s["name"], tuple(s["event_shape"]), s["discrete"], s["num_values"])
                         for s in group)
        contract = Contract(latents=sites(c["latents"]), observed=sites(c["observed"]),
                            batch_keys=c["batch_keys"], data_plate=c["data_plate"],
                            training_sites=tuple(c["training_sites"]))
        out = cls(model, guide, record["backend"],
                  max_plate_nesting=record.get("max_plate_nesting", 1), contract=contract)
        out._given = bool(c.get("given", False))
        out.inputs = {k: (tuple(v["shape"]), v["dtype"]) for k, v in record["inputs"].items()}
        return out

    def build(self, seed: int = 0):
        return self

    def config(self):
        raise ValueError("a custom (model, guide) pair is Python code and has no config to "
                         "rebuild it from; pv.save(res, path) saves its parameters and "
                         "pv.load(path, model=(model, guide)) loads them into the pair again")
