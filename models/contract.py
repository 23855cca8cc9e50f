"""The model contract: what a model states about itself, so that nothing after training guesses.

A :class:`Contract` names a model's latent sites (each a :class:`Site`: its name, its event
shape, continuous or discrete), its observed sites, the per-example inputs (batch keys) that
model and guide take, and the plate over examples. Everything after training (evaluate, encode,
sample, the diagnostics) iterates over ``contract.latents`` instead of looking for a site called
``"z"``.

The built-in models declare theirs. A user's ``(model, guide)`` pair declares nothing: its
contract is read from one trace of the pair on a few rows of the training data
(:func:`read_contract`): the guide's sample sites that the model does not observe are the
latents, the model's observed sample sites are the data. A user may pass a contract of their own
instead (``pv.fit((model, guide), data, contract=...)``).

Examples
--------
>>> c = Contract(latents=(Site("z", (8,)),), observed=(Site("x", (64,)),))
>>> c.latent_names, c.continuous_names, c.latent("z").size
(('z',), ('z',), 8)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

__all__ = ["Site", "Contract", "read_contract"]


@dataclass(frozen=True)
class Site:
    """One sample site of a model: its name, the shape of one example's value (the event
    shape: ``(8,)`` for an 8-dimensional z, ``()`` for a class label), and whether its values
    are discrete (``num_values`` of them when known: a label's classes).

    Examples
    --------
    >>> Site("y", (), discrete=True, num_values=10).size
    1
    """

    name: str
    event_shape: tuple = ()
    discrete: bool = False
    num_values: int | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a site's name is a non-empty string, got {self.name!r}")
        object.__setattr__(self, "event_shape", tuple(int(d) for d in self.event_shape))

    @property
    def size(self) -> int:
        """Values per example (the product of the event shape; 1 for a scalar)."""
        return int(math.prod(self.event_shape))


@dataclass(frozen=True)
class Contract:
    """What a model is, as the rest of probvae sees it.

    Parameters
    ----------
    latents : tuple of Site
        The sites the guide samples and the model does not observe, in the guide's order.
    observed : tuple of Site
        The model's observed sites that make up p(x, ...) (the data; a label when given).
    batch_keys : tuple of str or None
        The per-example inputs model and guide take (``x``, ``mask``, ``y``, ...; None: any).
    data_plate : str
        The plate over examples.
    training_sites : tuple of str
        Observed sites that are training terms and not part of p(x, ...) (M2's auxiliary
        classifier term): left out of scores.
    principal : str, optional
        The latent that :meth:`latent` gives by default (what ``decode`` and ``traverse`` move
        when not told which): the first continuous latent unless named (ADGM names ``z``, the
        code of x, not its auxiliary ``a``).

    Examples
    --------
    >>> c = Contract(latents=(Site("z2", (2,)), Site("z", (4,))), observed=(Site("x", (8,)),))
    >>> [s.name for s in c.latents], c.latent().name
    (['z2', 'z'], 'z2')
    """

    latents: tuple = ()
    observed: tuple = ()
    batch_keys: tuple | None = ("x", "mask")
    data_plate: str = "data"
    training_sites: tuple = field(default=())
    principal: str | None = None

    def __post_init__(self):
        for what in ("latents", "observed"):
            sites = tuple(getattr(self, what))
            if not all(isinstance(s, Site) for s in sites):
                raise TypeError(f"Contract {what} takes Site objects, got {sites!r}")
            object.__setattr__(self, what, sites)
        names = [s.name for s in (*self.latents, *self.observed)]
        if len(set(names)) != len(names):
            raise ValueError(f"a site is named twice in the contract: {names}")
        if self.batch_keys is not None:
            object.__setattr__(self, "batch_keys", tuple(self.batch_keys))
        object.__setattr__(self, "training_sites", tuple(self.training_sites))
        if self.principal is not None and self.principal not in self.latent_names:
            raise ValueError(f"principal={self.principal!r} is not one of the latent sites "
                             f"{list(self.latent_names)}")

    @property
    def latent_names(self) -> tuple:
        """The latent sites' names."""
        return tuple(s.name for s in self.latents)

    @property
    def continuous_names(self) -> tuple:
        """The continuous latent sites' names: what a KL weight scales."""
        return tuple(s.name for s in self.latents if not s.discrete)

    @property
    def observed_names(self) -> tuple:
        return tuple(s.name for s in self.observed)

    def latent(self, name: str | None = None) -> Site:
        """The latent site ``name`` (default: the principal one, else the first continuous
        one); a clear error names the latents there are.

        Examples
        --------
        >>> Contract(latents=(Site("h", (3,)),)).latent("z")
        Traceback (most recent call last):
        ...
        ValueError: the model has no latent site 'z'; its latent sites: ['h']
        """
        if name is None and self.principal is not None:
            name = self.principal
        if name is None:
            continuous = [s for s in self.latents if not s.discrete]
            if not (continuous or self.latents):
                raise ValueError("the model has no latent sites")
            return (continuous or list(self.latents))[0]
        for s in self.latents:
            if s.name == name:
                return s
        raise ValueError(f"the model has no latent site {name!r}; its latent sites: "
                         f"{list(self.latent_names)}")

    def replace(self, **changes) -> "Contract":
        """A copy with some fields changed (a user's override of what was read)."""
        return replace(self, **changes)


def _event_shape(site) -> tuple:
    fn = site["fn"]
    shape = getattr(fn, "event_shape", ())
    return tuple(int(d) for d in shape)


def _is_discrete(site) -> bool:
    if (site.get("infer") or {}).get("enumerate"):
        return True
    fn = site["fn"]
    while hasattr(fn, "base_dist") and not hasattr(fn, "support"):
        fn = fn.base_dist
    support = getattr(fn, "support", None)
    return bool(getattr(support, "is_discrete", False))


def _num_values(site):
    fn = site["fn"]
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    for attr in ("logits", "probs"):
        value = getattr(fn, attr, None) if attr in getattr(fn, "arg_constraints", {}) else None
        if value is not None and getattr(fn, "event_shape", ()) == ():
            return int(value.shape[-1])
    return None


def read_contract(bk, model, guide, batch: dict, seed: int = 0, batch_keys=None,
                  data_plate: str | None = None) -> Contract:
    """A user's pair's contract, read from one trace of ``guide`` and of ``model`` replayed
    against it on ``batch`` (a few rows, in backend arrays): the guide's sample sites that the
    model does not observe are the latents (in the guide's order), the model's observed
    sample sites are the data; each site's event shape from its distribution, discrete when
    its support is (or it is enumerated). The data plate is the one every observed site sits
    in (``data_plate`` names it when there are several).

    Examples
    --------
    >>> import numpy as np, numpyro, numpyro.distributions as dist
    >>> from probvae import backends
    >>> def model(x):
    ...     with numpyro.plate("rows", x.shape[0]):
    ...         h = numpyro.sample("h", dist.Normal(0, 1).expand([2]).to_event(1))
    ...         numpyro.sample("obs", dist.Normal(h.sum(-1, keepdims=True), 1).to_event(1), obs=x)
    >>> def guide(x):
    ...     with numpyro.plate("rows", x.shape[0]):
    ...         numpyro.sample("h", dist.Normal(0, 1).expand([2]).to_event(1))
    >>> bk = backends.get("numpyro")
    >>> c = read_contract(bk, model, guide, {"x": bk.asarray(np.zeros((3, 1)))})
    >>> c.latents, c.observed_names, c.data_plate
    ((Site(name='h', event_shape=(2,), discrete=False, num_values=None),), ('obs',), 'rows')
    """
    from probvae.backends import init_params       # the parameters the trace needs

    params = init_params(bk, _Pair(model, guide), batch, seed)
    gtr = bk.get_trace(bk.seed(bk.with_params(guide, params), seed), **batch)
    mtr = bk.get_trace(bk.replay(bk.seed(bk.with_params(model, params), seed), gtr), **batch)
    gsites, msites = bk.sample_sites(gtr), bk.sample_sites(mtr)
    observed = [n for n, s in msites.items() if s["is_observed"]]
    latents = [Site(n, _event_shape(s), _is_discrete(s), _num_values(s) if _is_discrete(s)
                    else None)
               for n, s in gsites.items() if not s["is_observed"] and n not in observed]
    obs_sites = [Site(n, _event_shape(msites[n]), _is_discrete(msites[n])) for n in observed]
    if not observed:
        raise ValueError("the model observes no site: give its likelihood obs= (e.g. "
                         "sample('x', dist, obs=x)), so that probvae knows what the data are")
    missing = [s.name for s in latents if s.name not in msites]
    if missing:
        raise ValueError(f"the guide samples {missing}, which the model does not: model and "
                         "guide must share their latent sites' names")
    plates = [{f.name for f in msites[n]["cond_indep_stack"]} for n in observed]
    shared = set.intersection(*plates) if plates else set()
    if data_plate is None:
        if len(shared) != 1:
            raise ValueError("probvae needs the plate over examples: every observed site inside "
                             "one plate (found "
                             f"{sorted(shared) or 'none'}); name it with contract=Contract("
                             "data_plate=...) when there are several")
        data_plate = next(iter(shared))
    return Contract(latents=tuple(latents), observed=tuple(obs_sites), batch_keys=batch_keys,
                    data_plate=data_plate)


class _Pair:
    """A ``(model, guide)`` pair with the attributes :func:`init_params` reads."""

    def __init__(self, model, guide):
        self.model, self.guide = model, guide
