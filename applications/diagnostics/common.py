"""What the diagnostics share: the k-hat threshold, how their inputs are read, and the ArviZ
layout of a model's sites, taken from its contract (:class:`Layout`).

Examples
--------
>>> KHAT_THRESHOLD
0.7
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from probvae import batch as batching
from probvae.data import as_split
from probvae.inference.scoring import CHUNK, example_batch
from probvae.models import CustomModel

from .containers import group, group_names

__all__ = ["KHAT_THRESHOLD", "Layout", "pareto_khat", "importance_ess"]

#: k-hat above this: importance sampling from q is unreliable for that observation
KHAT_THRESHOLD = 0.7


def _inputs(x, y):
    """``(data, x, labels)``: what to score (an array, NaN for missing cells, or a batch), its
    feature array, and the labels for the ``label`` coordinate (given, else the Split's)."""
    if isinstance(x, dict):                     # a batch (probvae.batch)
        return x, x["x"], (x.get("y") if y is None else np.asarray(y))
    split = as_split(x, allow_missing=True)
    return split.x, split.x, (split.y if y is None else np.asarray(y))


def _contracted(res, data=None):
    """``res`` with a model that has its contract: as it is for a built-in model (declared)
    and a user's pair that ``fit`` trained (read from a trace); a pair that never saw data (a
    FitResult made by hand) gets it read here from one trace on ``data`` (a batch, Split or
    array)."""
    model = res.model
    if isinstance(model, CustomModel):
        try:
            model.contract
        except ValueError:
            if data is None:
                raise
            return replace(res, model=model.with_contract(example_batch(res, data)))
    return res


def _event_dim_names(sites, single):
    """Dim names of each site's event dims: ``single`` when exactly one site has event dims and
    it has one (a VAE's ``latent``, a data set's ``feature``); else named after the site,
    ``<site>_dim`` for a vector and ``<site>_dim_0``, ``<site>_dim_1``, ... beyond."""
    shaped = [s for s in sites if s.event_shape]
    if len(shaped) == 1 and len(shaped[0].event_shape) == 1:
        return {s.name: ((single,) if s.event_shape else ()) for s in sites}
    return {s.name: ((f"{s.name}_dim",) if len(s.event_shape) == 1 else
                     tuple(f"{s.name}_dim_{i}" for i in range(len(s.event_shape))))
            for s in sites}


@dataclass(frozen=True)
class Layout:
    """How a model's sites become ArviZ variables, read from its contract only (so both
    backends give the same variables, dims and shapes).

    ``example`` is the dim over examples: ``obs``, or the data plate's name when a site is
    called ``obs``. Each latent and observed site is a variable of its own name with dims
    ``(example, *event dims)``; event dims are ``latent`` (latents) and ``feature`` (data) when
    one site alone has them, in one dim, else named after their site (``<site>_dim``).

    Examples
    --------
    >>> from probvae.models import Contract, Site
    >>> c = Contract(latents=(Site("top", (1,)), Site("mid", (2,))),
    ...              observed=(Site("obs", (64,)),), data_plate="rows")
    >>> lay = Layout.of(c)
    >>> lay.example, lay.dims["mid"], lay.dims["obs"]
    ('rows', ('rows', 'mid_dim'), ('rows', 'feature'))
    >>> Layout.of(Contract(latents=(Site("y", (), True, 10), Site("z", (4,))),
    ...                    observed=(Site("x", (64,)),))).dims
    {'y': ('obs',), 'z': ('obs', 'latent'), 'x': ('obs', 'feature')}
    """

    example: str
    dims: dict
    latents: tuple
    observed: tuple

    @classmethod
    def of(cls, contract) -> "Layout":
        observed = tuple(s for s in contract.observed if s.name not in contract.training_sites)
        names = {s.name for s in (*contract.latents, *observed)}
        example = next(d for d in ("obs", contract.data_plate, "example") if d not in names)
        events = {**_event_dim_names(contract.latents, "latent"),
                  **_event_dim_names(observed, "feature")}
        return cls(example, {name: (example, *dims) for name, dims in events.items()},
                   contract.latents, observed)

    def coords(self, n, sites=None) -> dict:
        """Coordinates: ``0..n-1`` over examples, ``0..k-1`` along each event dim."""
        out = {self.example: np.arange(n)}
        for s in (sites or (*self.latents, *self.observed)):
            for dim, size in zip(self.dims[s.name][1:], s.event_shape):
                out[dim] = np.arange(size)
        return out


def _example_dim(idata) -> str:
    """The dim over examples of the posterior of :func:`latent_posterior` or
    :func:`reference_posterior` (the third dim of its variables), an InferenceData or a
    DataTree."""
    if "sample_stats" in group_names(idata):
        stats = group(idata, "sample_stats")
        if "log_weight" in stats:
            return stats["log_weight"].dims[2]
    return next(iter(group(idata, "posterior").data_vars.values())).dims[2]


def pareto_khat(log_w) -> np.ndarray:
    """PSIS k-hat of each row of ``log_w`` (examples, draws): one per example; exactly
    constant weights (q equal to p) get 0.

    Examples
    --------
    >>> pareto_khat(np.zeros((2, 50))).tolist()
    [0.0, 0.0]
    """
    import warnings

    import arviz as az

    log_w = np.asarray(log_w, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, k = az.psislw(log_w, reff=1.0)
    return np.where(np.ptp(log_w, axis=1) < 1e-8, 0.0, np.asarray(k, np.float64))


def importance_ess(log_w) -> np.ndarray:
    """Effective sample size of the self-normalised importance weights of each row of
    ``log_w`` (examples, draws): (sum w)^2 / sum w^2, between 1 (one draw carries all the
    weight) and the number of draws (q equal to p(z|x)).

    Examples
    --------
    >>> importance_ess(np.array([[0.0, 0.0, 0.0, 0.0], [0.0, -50.0, -50.0, -50.0]])).round(3).tolist()
    [4.0, 1.0]
    """
    log_w = np.asarray(log_w, np.float64)
    top = log_w.max(axis=1, keepdims=True)
    w = np.exp(log_w - top)
    return w.sum(axis=1) ** 2 / (w ** 2).sum(axis=1)


def _unit_coords(sizes: dict) -> dict:
    """Coordinates of one ``latent`` axis over the units of several sites (``{site: size}``,
    in order): ``site`` and ``unit`` (the index within its site, event dims flattened), as
    :func:`collapse` and :func:`compare_posteriors` report them.

    Examples
    --------
    >>> _unit_coords({"top": 1, "mid": 2})["site"]
    ('latent', ['top', 'mid', 'mid'])
    """
    site = [name for name, k in sizes.items() for _ in range(k)]
    unit = [i for k in sizes.values() for i in range(k)]
    return {"latent": np.arange(len(site)), "site": ("latent", site), "unit": ("latent", unit)}


def _moment(site, name):
    """``fn.mean`` or ``fn.variance`` of a trace site; None where the family has none."""
    try:
        return getattr(site["fn"], name)
    except (NotImplementedError, AttributeError):
        return None


def _guide_moments(res, batch, names, seed=0):
    """``(means, sds, sampled)``: E_q and the sd of q for each site of ``names`` at every
    example of ``batch`` (``{site: (N, *event)}`` float32, read off the guide's distributions:
    a draw and sd 1 where the family has no closed form), and the names of every site the
    guide samples."""
    bk = res.bk
    means, sds, sampled = {k: [] for k in names}, {k: [] for k in names}, set()
    with bk.lock:
        for _, part, _ in batching.chunks(batch, CHUNK):
            tr = bk.get_trace(bk.seed(res.bound(res.model.guide), seed),
                              **batching.to_backend(bk, part))
            sites = bk.sample_sites(tr)
            sampled |= {k for k, site in sites.items() if not site["is_observed"]}
            missing = [k for k in names if k not in sites or sites[k]["is_observed"]]
            if missing:
                raise ValueError(f"the guide draws no {missing} for these data (its sites: "
                                 f"{sorted(sampled)})")
            for k in names:
                value = np.asarray(bk.to_numpy(sites[k]["value"]), np.float32)
                mean, var = _moment(sites[k], "mean"), _moment(sites[k], "variance")
                means[k].append(value if mean is None else np.broadcast_to(
                    np.asarray(bk.to_numpy(mean), np.float32), value.shape))
                sds[k].append(np.ones_like(value) if var is None else np.broadcast_to(
                    np.sqrt(np.asarray(bk.to_numpy(var), np.float32)), value.shape))
    return ({k: np.concatenate(v) for k, v in means.items()},
            {k: np.concatenate(v) for k, v in sds.items()}, sampled)
