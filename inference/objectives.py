"""SVI objectives by name: each is a (Pyro factory, NumPyro factory) pair with explicit defaults.

=============  ==========================================================  ===================
name           estimator                                                   options
=============  ==========================================================  ===================
``elbo``       ELBO, Monte Carlo KL                                        num_particles
``mean_field`` ELBO with analytic KL where it exists (MC otherwise)        num_particles
``iwae``       importance-weighted bound (Renyi with alpha = 0)            num_particles
``renyi``      Renyi alpha-divergence bound                                alpha, num_particles
``beta``       ELBO with KL weight ``beta``, optional linear ``warmup``    beta, warmup, num_particles
``enum``       ELBO that sums out discrete latents by parallel enumeration num_particles
=============  ==========================================================  ===================

A new objective is one :func:`register` call; ``fit`` looks it up by name.

Examples
--------
>>> from probvae.inference import objectives
>>> objectives.names()
('elbo', 'mean_field', 'iwae', 'renyi', 'beta', 'enum')
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["Objective", "KLSchedule", "register", "get", "names", "build", "kl_weighted"]


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
    """A named objective: factories ``(bk, **options) -> ELBO`` for each backend.

    ``schedule``, when given, maps the options to a :class:`KLSchedule`: each epoch's weight
    scales the continuous latent sites of model and guide (:func:`kl_weighted`), whatever the
    model, a user's pair included.
    """

    name: str
    pyro: Callable
    numpyro: Callable
    schedule: Optional[Callable] = None
    doc: str = ""
    #: sums discrete latents out by enumeration (what models with discrete latents need)
    enumerates: bool = False

    def options(self, backend: str) -> tuple:
        """The user-settable options of this objective's factory for ``backend``."""
        sig = inspect.signature(getattr(self, backend))
        return tuple(p for p in sig.parameters if p not in ("bk", "max_plate_nesting"))

    def takes_plate_nesting(self, backend: str) -> bool:
        return "max_plate_nesting" in inspect.signature(getattr(self, backend)).parameters


_REGISTRY: dict = {}


def register(name: str, *, pyro: Callable, numpyro: Callable, schedule: Optional[Callable] = None,
             doc: str = "", enumerates: bool = False, overwrite: bool = False) -> Objective:
    """Register an objective under ``name`` so ``fit(..., objective=name)`` finds it.

    Parameters
    ----------
    name : str
    pyro, numpyro : callable
        ``factory(bk, **options) -> ELBO`` for each backend; options are keyword arguments
        with defaults, passed through from ``fit``. A factory that takes
        ``max_plate_nesting`` gets the model's (1 for the built-in models).
    schedule : callable, optional
        ``schedule(**options) -> KLSchedule`` for objectives that weight the KL term.
    enumerates : bool
        The objective sums discrete latents out by enumeration (models with discrete
        latents, such as SSVAE, need one).
    overwrite : bool
        Replace an existing entry instead of raising.

    Examples
    --------
    >>> obj = register("elbo10",
    ...     pyro=lambda bk, num_particles=10: bk.infer.Trace_ELBO(
    ...         num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1),
    ...     numpyro=lambda bk, num_particles=10: bk.infer.Trace_ELBO(num_particles=num_particles))
    >>> "elbo10" in names()
    True
    """
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"objective {name!r} is already registered (pass overwrite=True)")
    obj = Objective(name, pyro, numpyro, schedule, doc, bool(enumerates))
    _REGISTRY[name] = obj
    return obj


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


def build(name, bk, max_plate_nesting=1, **options):
    """``(elbo, schedule_or_None)`` for backend ``bk`` with ``options`` checked by name;
    ``max_plate_nesting`` is the model's (how many plates nest around its sites).

    Examples
    --------
    >>> from probvae import backends
    >>> elbo, schedule = build("iwae", backends.get("numpyro"), num_particles=4)
    >>> type(elbo).__name__, elbo.num_particles
    ('RenyiELBO', 4)
    """
    obj = get(name)
    allowed = obj.options(bk.name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"objective {obj.name!r} does not take {unknown}; it takes "
                        f"{list(allowed) or 'no options'}")
    if obj.takes_plate_nesting(bk.name):
        options = dict(options, max_plate_nesting=int(max_plate_nesting))
    elbo = getattr(obj, bk.name)(bk, **options)
    options.pop("max_plate_nesting", None)
    schedule = None
    if obj.schedule is not None:
        sched_opts = {k: v for k, v in options.items()
                      if k in inspect.signature(obj.schedule).parameters}
        schedule = obj.schedule(**sched_opts)
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


def _pyro_kwargs(num_particles, max_plate_nesting):
    # Pyro's defaults differ from NumPyro's: vectorise particles explicitly, say the plates.
    return dict(num_particles=_check_particles(num_particles), vectorize_particles=True,
                max_plate_nesting=int(max_plate_nesting))


register("elbo",
         pyro=lambda bk, num_particles=1, max_plate_nesting=1: bk.infer.Trace_ELBO(
             **_pyro_kwargs(num_particles, max_plate_nesting)),
         numpyro=lambda bk, num_particles=1: bk.infer.Trace_ELBO(
             num_particles=_check_particles(num_particles)),
         doc="ELBO with a Monte Carlo KL term")
register("mean_field",
         pyro=lambda bk, num_particles=1, max_plate_nesting=1: bk.infer.TraceMeanField_ELBO(
             **_pyro_kwargs(num_particles, max_plate_nesting)),
         numpyro=lambda bk, num_particles=1: bk.infer.TraceMeanField_ELBO(
             num_particles=_check_particles(num_particles)),
         doc="ELBO with analytic KL where the prior allows it")
register("iwae",
         pyro=lambda bk, num_particles=8, max_plate_nesting=1: bk.infer.RenyiELBO(
             alpha=0.0, **_pyro_kwargs(num_particles, max_plate_nesting)),
         numpyro=lambda bk, num_particles=8: bk.infer.RenyiELBO(
             alpha=0.0, num_particles=_check_particles(num_particles)),
         doc="importance-weighted autoencoder bound (Burda et al. 2016)")
register("renyi",
         pyro=lambda bk, alpha=0.5, num_particles=8, max_plate_nesting=1: bk.infer.RenyiELBO(
             alpha=_check_alpha(alpha), **_pyro_kwargs(num_particles, max_plate_nesting)),
         numpyro=lambda bk, alpha=0.5, num_particles=8: bk.infer.RenyiELBO(
             alpha=_check_alpha(alpha), num_particles=_check_particles(num_particles)),
         doc="Renyi alpha-divergence bound (Li & Turner 2016)")


def _schedule(beta=1.0, warmup=0):
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if int(warmup) < 0:
        raise ValueError(f"warmup must be >= 0 epochs, got {warmup}")
    return KLSchedule(float(beta), int(warmup))


register("beta",
         pyro=lambda bk, beta=1.0, warmup=0, num_particles=1, max_plate_nesting=1:
         bk.infer.Trace_ELBO(**_pyro_kwargs(num_particles, max_plate_nesting)),
         numpyro=lambda bk, beta=1.0, warmup=0, num_particles=1: bk.infer.Trace_ELBO(
             num_particles=_check_particles(num_particles)),
         schedule=_schedule,
         doc="beta-VAE: KL weight beta with optional linear warm-up (Higgins et al. 2017)")


def _numpyro_enum(bk, num_particles=1, max_plate_nesting=1):
    from numpyro.infer import TraceEnum_ELBO   # needs funsor; imported only when asked for
    return TraceEnum_ELBO(num_particles=_check_particles(num_particles),
                          max_plate_nesting=int(max_plate_nesting))


register("enum",
         # labelled batches of a semi-supervised model have nothing to enumerate: not a mistake
         pyro=lambda bk, num_particles=1, max_plate_nesting=1: bk.infer.TraceEnum_ELBO(
             **_pyro_kwargs(num_particles, max_plate_nesting), strict_enumeration_warning=False),
         numpyro=_numpyro_enum, enumerates=True,
         doc="ELBO summing discrete latents out by parallel enumeration")
