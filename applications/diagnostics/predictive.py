"""Which model fits better, and where does it miss? Held-out model comparison and posterior
predictive checks, in ArviZ's shapes.

:func:`compare` scores every model on the same held-out examples by the importance-weighted
estimate of log p(x) per example (the IWAE bound with ``num_samples`` draws) and returns a table
in the shape of ``az.compare``'s: ``az.plot_compare`` draws it. Differences carry the *paired*
standard error (the same examples score both models), which is what tells a real difference
from noise.

:func:`posterior_predictive` adds a ``posterior_predictive`` group (x replicated from p(x|z)
for each draw z ~ q(z|x)) to a latent posterior, so ``az.plot_ppc`` and ``az.plot_bpv`` work,
and :func:`ppc_summary` says, feature by feature, where the replicated data disagree with the
observed data.

Why not ``az.loo``: each example has its own latent z, so the draws of z are not global
parameters; ``az.loo`` on them estimates log p(x_i) with the harmonic mean of p(x_i | z), whose
variance is infinite in practice (most Pareto k-hats above 1). :func:`latent_posterior`
therefore keeps log p(x|z) per draw in ``sample_stats`` (``log_lik``), not in a
``log_likelihood`` group, and ``az.loo`` refuses it instead of printing a number that means
nothing; the held-out elpd of :func:`compare` is the quantity ``elpd_loo`` stands for.

References
----------
Vehtari, Gelman & Gabry (2017), "Practical Bayesian model evaluation using leave-one-out
cross-validation and WAIC", Statistics and Computing. Gelman, Meng & Stern (1996),
"Posterior predictive assessment of model fitness via realized discrepancies".
"""
from __future__ import annotations

import numpy as np

from probvae import batch as batching
from probvae.inference import log_weights
from probvae.inference.inputs import model_batch
from probvae.inference.scoring import CHUNK, log_mean_exp, missing_of

from .common import KHAT_THRESHOLD, Layout, _contracted, _example_dim, _inputs, pareto_khat
from .containers import group, group_names, with_group

__all__ = ["compare", "posterior_predictive", "ppc_summary"]

_DISCRETE = ("{0, 1}", "{0, 1, 2, ...}")


def _support_kind(res):
    lik = res.model.likelihood
    if lik is None:
        return None
    return "probabilities (discrete data)" if lik.support in _DISCRETE else \
        "densities (continuous data)"


def compare(results: dict, data, num_samples=1000, seed=0, khat_threshold=KHAT_THRESHOLD):
    """Rank fitted models by their held-out expected log predictive density (elpd).

    Parameters
    ----------
    results : dict of str -> FitResult
        The models to compare (any family: VAE, SSVAE, a user's pair with sites of any
        names), all observing data of the same shape (their contracts' observed sites).
    data : Split or array (N, D)
        Held-out examples (not used in training).
    num_samples : int
        Importance samples per example for log p(x).
    seed : int
    khat_threshold : float
        An example's Pareto k-hat above this makes its log p(x) estimate unreliable; the
        ``warning`` column flags models with any such example.

    Returns
    -------
    pandas.DataFrame
        Indexed by model name, best first, with ``az.compare``'s columns: ``rank``,
        ``elpd_loo`` (here the total held-out elpd: the examples are left out by
        construction), ``p_loo`` (NaN: no parameter count applies), ``elpd_diff`` (to the
        best), ``weight`` (pseudo-BMA: softmax of the totals), ``se`` (of the total),
        ``dse`` (paired standard error of the difference), ``warning``, ``scale`` ("log");
        and ``elpd_mean`` / ``se_mean`` (per example), ``khat_above`` (share of examples
        with k-hat above the threshold), ``n``. ``az.plot_compare(table)`` draws it.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> fits = {p: pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,), prior=p),
    ...                   data.train, epochs=2, progress=False) for p in ("normal", "laplace")}
    >>> table = compare(fits, data.test.x[:50], num_samples=20)
    >>> list(table.columns[:4]), int(table["rank"].min())
    (['rank', 'elpd_loo', 'p_loo', 'elpd_diff'], 0)
    """
    import pandas as pd

    if not isinstance(results, dict) or len(results) < 2:
        raise ValueError("compare takes a dict of at least two fitted models, e.g. "
                         "{'normal': res_a, 'vamp': res_b}")
    kinds = {name: _support_kind(res) for name, res in results.items()}
    if len({k for k in kinds.values() if k is not None}) > 1:
        raise ValueError("these likelihoods score different things and cannot be compared: "
                         + ", ".join(f"{n}: {k}" for n, k in kinds.items())
                         + "; compare models with likelihoods of the same kind")
    data = _inputs(data, None)[0]
    results = {name: _contracted(res, data) for name, res in results.items()}
    shapes = {name: {s.name: s.event_shape for s in Layout.of(res.model.contract).observed}
              for name, res in results.items()}
    if len({tuple(v.values()) for v in shapes.values()}) > 1:
        raise ValueError(f"the models observe data of different shapes (observed site: event "
                         f"shape): {shapes}; compare models of the same data")
    pointwise, khats = {}, {}
    for name, res in results.items():
        lw = log_weights(res, data, num_samples=num_samples, seed=seed)
        pointwise[name] = log_mean_exp(lw["log_w"], axis=1)
        khats[name] = pareto_khat(lw["log_w"])
    n = len(next(iter(pointwise.values())))
    totals = {name: float(p.sum()) for name, p in pointwise.items()}
    order = sorted(totals, key=totals.get, reverse=True)
    best = pointwise[order[0]]
    top = max(totals.values())
    weights = {name: np.exp(t - top) for name, t in totals.items()}
    norm = sum(weights.values())
    rows = []
    for rank, name in enumerate(order):
        p = pointwise[name]
        diff = best - p
        above = float(np.mean(khats[name] > khat_threshold))
        rows.append({"rank": rank, "elpd_loo": totals[name], "p_loo": np.nan,
                     "elpd_diff": float(diff.sum()), "weight": float(weights[name] / norm),
                     "se": float(np.sqrt(n * p.var(ddof=1))) if n > 1 else np.nan,
                     "dse": float(np.sqrt(n * diff.var(ddof=1))) if n > 1 else np.nan,
                     "warning": bool(above > 0), "scale": "log",
                     "elpd_mean": float(p.mean()),
                     "se_mean": float(p.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
                     "khat_above": above, "n": n})
    table = pd.DataFrame(rows, index=order)
    table.attrs.update(num_samples=int(num_samples), khat_threshold=khat_threshold,
                       pointwise={k: v.tolist() for k, v in pointwise.items()})
    return table


def posterior_predictive(res, idata, seed=0, data=None):
    """Add ``posterior_predictive``: the data replicated from p(x|z) at each draw of the
    posterior.

    At each draw, the model runs on its example with every latent of the draw fixed (all of
    them: ``z``, a label ``y``, a user's ``top`` and ``mid``), and each observed site of its
    contract is drawn from its distribution there.

    Parameters
    ----------
    res : FitResult
    idata : arviz.InferenceData or xarray.DataTree
        From :func:`latent_posterior` of ``res`` (either ``format``).
    seed : int
    data : Split, array or batch, optional
        The examples the posterior was drawn for (default: ``idata``'s observed data, for a
        model with one observed site).

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        ``idata`` with ``posterior_predictive`` holding each observed site under its own name,
        with the dims and coordinates of its ``observed_data`` and ``chain, draw`` in front (a
        VAE's ``x``: (chain, draw, obs, feature)): ``az.plot_ppc(idata)`` and
        ``az.plot_bpv(idata)`` apply (``arviz_plots.plot_ppc_dist`` to a DataTree).

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> idata = pv.diagnostics.latent_posterior(res, data.test.x[:5], num_samples=8)
    >>> posterior_predictive(res, idata).posterior_predictive["x"].dims
    ('chain', 'draw', 'obs', 'feature')
    """
    import xarray as xr

    names = group_names(idata)
    observed_data = group(idata, "observed_data") if "observed_data" in names else None
    observed = list(observed_data.data_vars) if observed_data is not None else []
    if data is None:
        if len(observed) != 1:
            raise ValueError("posterior_predictive needs the examples the posterior was drawn "
                             f"for: pass data= (idata's observed data: {observed})")
        data = observed_data[observed[0]].values
    res = _contracted(res, data)
    layout = Layout.of(res.model.contract)
    ex = _example_dim(idata)
    post = group(idata, "posterior")
    draws = {s.name: post[s.name].values for s in layout.latents if s.name in post}
    reps = replicate(res, layout, data, draws, seed)
    first = post[next(iter(draws))]
    c, d, n = first.shape[:3]
    coords = {"chain": first["chain"].values, "draw": first["draw"].values,
              **layout.coords(n, layout.observed), ex: first[ex].values}
    ds = xr.Dataset({name: (("chain", "draw", *layout.dims[name]), values)
                     for name, values in reps.items()}, coords=coords)
    for name in observed:               # the observed data's coordinates (a pixel's row, ...)
        if name in ds:
            ds = ds.assign_coords({k: v for k, v in observed_data[name].coords.items()
                                   if set(v.dims) <= set(ds[name].dims)})
    return with_group(idata, "posterior_predictive", ds)


def replicate(res, layout, data, draws: dict, seed=0) -> dict:
    """``{observed site: (chain, draw, obs, *event)}``: each observed site of ``layout`` drawn
    from the model at every draw of the latents (``draws``: ``{latent: (chain, draw, obs,
    *event)}``, all of them fixed) on its example of ``data``."""
    contract = res.model.contract
    batch = batching.with_keys(model_batch(res.model, data, "data", missing_of(res)),
                               contract.batch_keys)
    latents = [s for s in layout.latents if s.name in draws]
    c, d, n = draws[latents[0].name].shape[:3]
    flat = {s.name: np.asarray(draws[s.name]).reshape((c * d * n,) + s.event_shape)
            for s in latents}
    bk = res.bk
    reps = {s.name: [] for s in layout.observed}
    with bk.lock:
        for j, start in enumerate(range(0, c * d * n, CHUNK)):
            rows = np.arange(start, min(start + CHUNK, c * d * n))
            chunk_seed = int(np.random.SeedSequence([int(seed), j]).generate_state(1)[0] >> 1)
            fixed = {s.name: (bk.asarray_int if s.discrete else bk.asarray)(flat[s.name][rows])
                     for s in latents}
            tr = bk.get_trace(bk.seed(bk.condition(res.bound(res.model.model), fixed),
                                      chunk_seed),
                              **batching.to_backend(bk, batching.take(batch, rows % n)))
            for s in layout.observed:
                reps[s.name].append(np.asarray(bk.to_numpy(_draw(bk, tr[s.name]["fn"],
                                                                 chunk_seed))))
    return {name: np.concatenate(parts).reshape((c, d, n) + parts[0].shape[1:])
            for name, parts in reps.items()}


def _draw(bk, fn, seed):
    """One draw from the distribution ``fn`` (its batch over the rows of a chunk)."""
    return bk.get_trace(bk.seed(lambda: bk.sample("replicate", fn), seed))["replicate"]["value"]


def _mid_p(replicated, observed):
    """P(T_rep > T_obs) + P(T_rep = T_obs) / 2: ties (constant features) give 0.5, not 1."""
    return (replicated > observed).mean(axis=0) + 0.5 * (replicated == observed).mean(axis=0)


def ppc_summary(idata, alpha=0.05, var_name=None):
    """Per feature, where replicated data disagree with the observed data.

    For each feature, the mean and the variance over the observed examples are compared with
    the same statistics of each replicated data set (one per draw): the posterior predictive
    p-value ``P(T(x_rep) > T(x_obs))`` (ties counted half) near 0 or 1 means the model misses
    that statistic.

    Parameters
    ----------
    idata : arviz.InferenceData
        With ``observed_data`` and ``posterior_predictive`` (:func:`posterior_predictive`).
    alpha : float
        Two-sided level: features with a p-value below alpha/2 or above 1 - alpha/2 are listed
        in ``attrs["disagree_mean"]`` / ``attrs["disagree_var"]``.
    var_name : str, optional
        The observed site to check (default: the only one; a VAE's ``x``).

    Returns
    -------
    xarray.Dataset over the site's feature dim (``feature`` for a VAE; several event dims
    flattened): ``obs_mean``, ``rep_mean``, ``p_mean``, ``obs_var``, ``rep_var``, ``p_var``.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> idata = pv.diagnostics.latent_posterior(res, data.test.x[:20], num_samples=40,
    ...                                         posterior_predictive=True)
    >>> sorted(ppc_summary(idata).data_vars)
    ['obs_mean', 'obs_var', 'p_mean', 'p_var', 'rep_mean', 'rep_var']
    """
    import xarray as xr

    if "posterior_predictive" not in group_names(idata):
        raise ValueError("idata has no posterior_predictive group: make it with "
                         "latent_posterior(..., posterior_predictive=True)")
    replicated, observed_data = group(idata, "posterior_predictive"), group(idata, "observed_data")
    shared = [v for v in replicated.data_vars if v in observed_data]
    if var_name is None:
        if len(shared) != 1:
            raise ValueError(f"name the observed site to check: var_name= one of {shared}")
        var_name = shared[0]
    elif var_name not in shared:
        raise ValueError(f"no observed and replicated site {var_name!r}; there are {shared}")
    observed = observed_data[var_name]
    n, dims = observed.shape[0], observed.dims
    obs = observed.values.reshape(n, -1)                            # (obs, feature)
    rep = replicated[var_name].stack(sample=("chain", "draw")).transpose(
        "sample", *dims).values.reshape(-1, n, obs.shape[1])
    dim = dims[1] if len(dims) == 2 else "feature"
    valid = np.isfinite(obs)
    obs0 = np.where(valid, obs, 0.0)
    count = valid.sum(axis=0).clip(min=1)
    obs_mean = obs0.sum(axis=0) / count
    obs_var = (np.where(valid, obs - obs_mean, 0.0) ** 2).sum(axis=0) / count
    rep_mean_s = (rep * valid).sum(axis=1) / count                # (sample, feature)
    rep_var_s = ((rep - rep_mean_s[:, None]) ** 2 * valid).sum(axis=1) / count
    p_mean = _mid_p(rep_mean_s, obs_mean)
    p_var = _mid_p(rep_var_s, obs_var)
    feature = observed[dim].values if len(dims) == 2 else np.arange(obs.shape[1])
    ds = xr.Dataset({"obs_mean": (dim, obs_mean), "rep_mean": (dim, rep_mean_s.mean(0)),
                     "p_mean": (dim, p_mean), "obs_var": (dim, obs_var),
                     "rep_var": (dim, rep_var_s.mean(0)), "p_var": (dim, p_var)},
                    coords={dim: feature})
    if len(dims) == 2:                  # a pixel's row and column, where the data are images
        ds = ds.assign_coords({k: (dim, v.values) for k, v in observed.coords.items()
                               if v.dims == (dim,) and k != dim})
    lo, hi = alpha / 2, 1 - alpha / 2
    for stat in ("mean", "var"):
        p = ds[f"p_{stat}"].values
        ds.attrs[f"disagree_{stat}"] = [int(f) for f in feature[(p < lo) | (p > hi)]]
    return ds
