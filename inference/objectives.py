"""SVI objectives by name: a registry of backend-neutral facts; each backend builds its own.

==============  ===========================================================  ===========================
name            estimator                                                    options
==============  ===========================================================  ===========================
``elbo``        ELBO, Monte Carlo KL                                         num_particles
``mean_field``  ELBO with analytic KL where it exists (MC otherwise)         num_particles
``iwae``        importance-weighted bound (Renyi with alpha = 0)             num_particles
``renyi``       Renyi alpha-divergence bound                                 alpha, num_particles
``beta``        ELBO with KL weight ``beta``, optional linear ``warmup``     beta, warmup, num_particles
``enum``        ELBO that sums out discrete latents by parallel enumeration  num_particles
``dreg``        IWAE bound with doubly reparameterized gradients (DReG)      num_particles
==============  ===========================================================  ===========================

An entry holds what does not depend on the library: the estimator's kind (one of
:data:`probvae.backends.base.OBJECTIVE_KINDS`), the options a user may set and their
defaults, the settings the name fixes (``iwae`` is ``renyi`` with ``alpha=0``), the KL
schedule and a description. The backend turns the kind into its library's ELBO
(``bk.objective(kind, **settings)``), with every default in which Pyro and NumPyro differ
set explicitly. A new objective is one :func:`register` call; ``fit`` looks it up by name.

Examples
--------
>>> from probvae.inference import objectives
>>> objectives.names()
('elbo', 'mean_field', 'iwae', 'renyi', 'beta', 'enum', 'dreg')
>>> iwae = objectives.get("iwae")
>>> iwae.kind, iwae.defaults, iwae.fixed
('renyi', {'num_particles': 8}, {'alpha': 0.0})
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Optional

from probvae.backends.base import OBJECTIVE_KINDS

__all__ = ["Objective", "KLSchedule", "register", "get", "names", "build", "definition",
           "kl_weighted"]


@dataclass(frozen=True)
class KLSchedule:
    """KL weight per epoch: ``beta``, ramped up linearly over the first ``warmup`` epochs.

    The weight is ``beta * min(1, (epoch + 1) / warmup)``: never zero, as SVI needs a positive
    scale.

    Examples
    --------
    >>> [KLSchedule(beta=1.0, warmup=4)(e) for e in range(5)]
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    beta: float = 1.0
    warmup: int = 0

    def __call__(self, epoch: int) -> float:
        if self.warmup <= 0:
            return float(self.beta)
        return float(self.beta) * min(1.0, (epoch + 1) / self.warmup)

    @property
    def final(self) -> float:
        return float(self.beta)


@dataclass(frozen=True)
class Objective:
    """A named objective: what ``fit`` needs to know of it on either backend.

    Attributes
    ----------
    name : str
    kind : str or None
        The estimator each backend builds (``bk.objective(kind, ...)``; one of
        :data:`~probvae.backends.base.OBJECTIVE_KINDS`), or None for an objective made by a
        user's own factories (``builders``).
    defaults : dict
        The options a user may set (``fit(..., **options)``) and their defaults.
    fixed : dict
        Settings of the estimator that the name fixes (``iwae``: ``alpha=0``).
    schedule : callable, optional
        ``schedule(**options) -> KLSchedule``: each epoch's weight scales the continuous
        latent sites of model and guide (:func:`kl_weighted`), whatever the model, a user's
        pair included. It takes the options its signature names.
    doc : str
        One line on what it estimates.
    enumerates : bool
        Sums discrete latents out by enumeration (what models with discrete latents need).
    builders : dict
        A user's own ``factory(bk, **options) -> ELBO`` per backend name (when ``kind`` is
        None).
    reparameterized : bool
        The gradient goes through the guide's draws, so every latent must be reparameterized
        (``dreg``): a model that sums discrete latents out by enumeration cannot use it.
    analytic_kl : bool
        Takes each latent's KL term in closed form where it has one (``mean_field``), which is
        the bound's only when the guide samples the latents in the model's order: a model
        whose guide does not (:attr:`~probvae.models.Model.guide_follows_model`) cannot use it.

    Examples
    --------
    >>> obj = get("beta")
    >>> obj.options(), obj.kind, obj.enumerates
    (('beta', 'warmup', 'num_particles'), 'elbo', False)
    """

    name: str
    kind: Optional[str] = None
    defaults: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    schedule: Optional[Callable] = None
    doc: str = ""
    enumerates: bool = False
    builders: dict = field(default_factory=dict)
    reparameterized: bool = False
    analytic_kl: bool = False

    def options(self) -> tuple:
        """The names of the options a user may set, the same on both backends."""
        return tuple(self.defaults)

    def _estimator(self, bk, settings: dict, max_plate_nesting: int):
        """The ELBO of backend ``bk`` for the resolved ``settings`` (options with defaults)."""
        if self.kind is not None:
            takes = OBJECTIVE_KINDS[self.kind]
            own = {k: _CHECKS.get(k, _same)(v) for k, v in {**settings, **self.fixed}.items()
                   if k in takes}
            return bk.objective(self.kind, max_plate_nesting=int(max_plate_nesting), **own)
        if bk.name not in self.builders:
            raise ValueError(f"objective {self.name!r} has no {bk.name} factory: register it "
                             f"with {bk.name}=factory too, or by kind= (built by every backend)")
        factory = self.builders[bk.name]
        if "max_plate_nesting" in inspect.signature(factory).parameters:
            settings = dict(settings, max_plate_nesting=int(max_plate_nesting))
        return factory(bk, **settings)


_REGISTRY: dict = {}


def register(name: str, kind: Optional[str] = None, *, options: Optional[dict] = None,
             fixed: Optional[dict] = None, pyro: Optional[Callable] = None,
             numpyro: Optional[Callable] = None, schedule: Optional[Callable] = None,
             doc: str = "", enumerates: Optional[bool] = None,
             reparameterized: Optional[bool] = None, overwrite: bool = False) -> Objective:
    """Register an objective under ``name`` so ``fit(..., objective=name)`` finds it.

    Give either ``kind`` (an estimator every backend builds) with its ``options``, or your
    own factories per library (``pyro=``, ``numpyro=``), for an ELBO of your own.

    Parameters
    ----------
    name : str
    kind : str, optional
        One of :data:`~probvae.backends.base.OBJECTIVE_KINDS` (``"elbo"``, ``"mean_field"``,
        ``"renyi"``, ``"enum"``, ``"dreg"``): each backend builds its library's ELBO of that
        kind (``dreg``: probvae's own, on each library's trace machinery).
    options : dict, optional
        With ``kind``: the options a user may set and their defaults (the kind's own, such
        as ``num_particles`` and ``alpha``, and the schedule's).
    fixed : dict, optional
        With ``kind``: settings of the estimator that this name fixes (``iwae`` is
        ``kind="renyi"`` with ``fixed={"alpha": 0.0}``).
    pyro, numpyro : callable, optional
        Instead of ``kind``: ``factory(bk, **options) -> ELBO`` for each backend (one alone
        trains on that backend only). Its keyword arguments with defaults are the options
        (the same in both); a factory that takes ``max_plate_nesting`` gets the model's (1
        for the built-in models).
    schedule : callable, optional
        ``schedule(**options) -> KLSchedule`` for objectives that weight the KL term.
    doc : str
        One line on what it estimates.
    enumerates : bool, optional
        The objective sums discrete latents out by enumeration (models with discrete
        latents, such as SSVAE, need one). Default: whether ``kind`` is ``"enum"``.
    reparameterized : bool, optional
        The estimator differentiates through the guide's draws, so every latent must be
        reparameterized. Default: whether ``kind`` is ``"dreg"``.
    overwrite : bool
        Replace an existing entry instead of raising.

    Returns
    -------
    Objective

    Examples
    --------
    >>> obj = register("elbo10", "elbo", options={"num_particles": 10})
    >>> "elbo10" in names(), obj.options()
    (True, ('num_particles',))

    Your own ELBO per library (here the libraries' own, as a sketch):

    >>> obj = register("elbo10_own",
    ...     pyro=lambda bk, num_particles=10: bk.infer.Trace_ELBO(
    ...         num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1),
    ...     numpyro=lambda bk, num_particles=10: bk.infer.Trace_ELBO(num_particles=num_particles))
    >>> obj.kind, obj.defaults
    (None, {'num_particles': 10})
    """
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"objective {name!r} is already registered (pass overwrite=True)")
    builders = {k: f for k, f in (("pyro", pyro), ("numpyro", numpyro)) if f is not None}
    if (kind is None) == (not builders):
        raise ValueError("register an objective by kind= (built by every backend) or by "
                         "pyro=/numpyro= factories of your own, not both or neither")
    schedule_takes = () if schedule is None else tuple(inspect.signature(schedule).parameters)
    if kind is not None:
        if kind not in OBJECTIVE_KINDS:
            raise ValueError(f"unknown objective kind {kind!r}; kinds: "
                             f"{', '.join(OBJECTIVE_KINDS)}")
        defaults, fixed = dict(options or {}), dict(fixed or {})
        takes = OBJECTIVE_KINDS[kind]
        stray = [k for k in defaults if k not in takes and k not in schedule_takes] + [
            k for k in fixed if k not in takes]
        if stray:
            raise ValueError(f"objective {name!r}: neither kind {kind!r} (which takes "
                             f"{list(takes)}) nor its schedule (which takes "
                             f"{list(schedule_takes)}) takes {stray}")
    else:
        if options is not None or fixed is not None:
            raise ValueError("options= and fixed= go with kind=; a factory's options are its "
                             "keyword arguments with defaults")
        defaults = _factory_options(name, builders)
    obj = Objective(name, kind, defaults, fixed or {}, schedule, doc,
                    kind == "enum" if enumerates is None else bool(enumerates), builders,
                    kind == "dreg" if reparameterized is None else bool(reparameterized),
                    kind == "mean_field")
    _REGISTRY[name] = obj
    return obj


def _factory_options(name, builders) -> dict:
    """The options of a user's factories (keyword arguments with defaults, other than ``bk``
    and ``max_plate_nesting``): the same in every factory given."""
    found = {}
    for backend, factory in builders.items():
        params = list(inspect.signature(factory).parameters.values())[1:]
        own = {p.name: p.default for p in params if p.name != "max_plate_nesting"
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        bare = [k for k, v in own.items() if v is inspect.Parameter.empty]
        if bare:
            raise TypeError(f"objective {name!r}: the {backend} factory's options {bare} need "
                            "defaults (options are keyword arguments with defaults)")
        found[backend] = own
    first, *rest = found.values()
    for backend, own in found.items():
        if own != first:
            raise ValueError(f"objective {name!r}: the factories' options differ "
                             f"({', '.join(f'{b}: {o}' for b, o in found.items())}); give "
                             "both the same options and defaults")
    return first


def names() -> tuple:
    """Registered objective names."""
    return tuple(_REGISTRY)


def get(name: str) -> Objective:
    """The :class:`Objective` called ``name``; unknown names list the known ones."""
    if isinstance(name, Objective):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown objective {name!r}; known objectives: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def definition(obj) -> Optional[dict]:
    """What an objective registered by the user from a kind is, as JSON (its kind, option
    defaults and fixed settings): part of the compiled programs' key, so an objective
    registered again under the same name with other settings is never given the programs of
    the old one. None for probvae's own entries (the probvae source in the key pins them) and
    for a user's factories (code, whose programs are never kept between runs).

    Examples
    --------
    >>> definition(get("iwae")) is None
    True
    >>> definition(register("iwae_half", "renyi", options={"num_particles": 4},
    ...                     fixed={"alpha": 0.5}))
    {'kind': 'renyi', 'defaults': {'num_particles': 4}, 'fixed': {'alpha': 0.5}}
    """
    obj = get(obj)
    if obj.kind is None or _BUILTIN.get(obj.name) is obj:
        return None
    return {"kind": obj.kind, "defaults": dict(obj.defaults), "fixed": dict(obj.fixed)}


def build(name, bk, max_plate_nesting=1, **options):
    """``(elbo, schedule_or_None)`` for backend ``bk`` with ``options`` checked by name;
    ``max_plate_nesting`` is the model's (how many plates nest around its sites). The options
    left out take the objective's defaults; the estimator gets those of its kind, the schedule
    those its signature names.

    Examples
    --------
    >>> from probvae import backends
    >>> elbo, schedule = build("iwae", backends.get("numpyro"), num_particles=4)
    >>> type(elbo).__name__, elbo.num_particles
    ('RenyiELBO', 4)
    """
    obj = get(name)
    allowed = obj.options()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"objective {obj.name!r} does not take {unknown}; it takes "
                        f"{list(allowed) or 'no options'}")
    settings = {**obj.defaults, **options}
    elbo = obj._estimator(bk, settings, max_plate_nesting)
    schedule = None
    if obj.schedule is not None:
        takes = inspect.signature(obj.schedule).parameters
        schedule = obj.schedule(**{k: v for k, v in settings.items() if k in takes})
    return elbo, schedule


def kl_weighted(bk, fn, names):
    """``fn`` (a model or a guide) taking one more keyword, ``kl_weight``, that scales the log
    densities of its sample sites ``names`` (the continuous latents, from the model's
    contract) by a handler: how a KL weight and its warm-up reach every model without the
    model taking part. Without ``kl_weight`` (or with no such sites) ``fn`` runs as it is.

    Examples
    --------
    >>> import numpyro, numpyro.distributions as dist
    >>> from numpyro import handlers
    >>> from probvae import backends
    >>> def model():
    ...     numpyro.sample("z", dist.Normal(0, 1))
    ...     numpyro.sample("x", dist.Normal(0, 1), obs=0.0)
    >>> bk = backends.get("numpyro")
    >>> tr = handlers.trace(handlers.seed(kl_weighted(bk, model, ["z"]), 0)).get_trace(
    ...     kl_weight=0.25)
    >>> tr["z"]["scale"], tr["x"]["scale"]
    (0.25, None)
    """
    names = tuple(names)

    def run(*args, kl_weight=None, **kwargs):
        if kl_weight is None or not names:
            return fn(*args, **kwargs)
        with bk.scale_sites(names, kl_weight):
            return fn(*args, **kwargs)
    run.__wrapped__ = fn
    return run


def _check_particles(num_particles):
    if int(num_particles) < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    return int(num_particles)


def _check_alpha(alpha):
    if alpha == 1:
        raise ValueError("renyi needs alpha != 1 (alpha = 1 is the plain ELBO: use 'elbo'); "
                         "alpha = 0 gives the IWAE bound")
    return float(alpha)


def _same(value):
    return value


#: checks of the estimators' settings, by name, made before a backend builds one
_CHECKS = {"num_particles": _check_particles, "alpha": _check_alpha}


def _schedule(beta=1.0, warmup=0):
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if int(warmup) < 0:
        raise ValueError(f"warmup must be >= 0 epochs, got {warmup}")
    return KLSchedule(float(beta), int(warmup))


register("elbo", "elbo", options={"num_particles": 1}, doc="ELBO with a Monte Carlo KL term")
register("mean_field", "mean_field", options={"num_particles": 1},
         doc="ELBO with analytic KL where the prior allows it")
register("iwae", "renyi", options={"num_particles": 8}, fixed={"alpha": 0.0},
         doc="importance-weighted autoencoder bound (Burda et al. 2016)")
register("renyi", "renyi", options={"alpha": 0.5, "num_particles": 8},
         doc="Renyi alpha-divergence bound (Li & Turner 2016)")
register("beta", "elbo", options={"beta": 1.0, "warmup": 0, "num_particles": 1},
         schedule=_schedule,
         doc="beta-VAE: KL weight beta with optional linear warm-up (Higgins et al. 2017)")
register("enum", "enum", options={"num_particles": 1},
         doc="ELBO summing discrete latents out by parallel enumeration")
register("dreg", "dreg", options={"num_particles": 8},
         doc="IWAE bound with doubly reparameterized gradients (Tucker et al. 2019)")

#: probvae's own entries, as registered here (one registered again by the user is not)
_BUILTIN = dict(_REGISTRY)
