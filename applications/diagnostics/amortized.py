"""The amortized posterior q(z|x) as ``arviz.InferenceData``, and what its weights say.

Every latent site of the model's contract is a posterior variable of its own (a VAE's ``z``,
M2's ``y`` and ``z``, a user's ``top`` and ``mid``), laid out by
:class:`~probvae.applications.diagnostics.common.Layout`. Importance weights log p(x, z) - log q(z|x) give
PSIS k-hat per observation (Yao et al. 2018) and the IWAE bound; posterior means over x give
active units per latent site (Burda et al. 2016).
"""
from __future__ import annotations

import warnings

import numpy as np

from probvae import batch as batching
from probvae.inference import log_weights
from probvae.inference.scoring import (CHUNK, active_units, check_samples, example_batch,
                                       log_mean_exp)

from .common import (KHAT_THRESHOLD, Layout, _contracted, _example_dim, _guide_moments, _inputs,
                     _unit_coords)
from .predictive import posterior_predictive as _posterior_predictive

__all__ = ["latent_posterior", "khat", "iwae_log_likelihood", "collapse", "report",
           "format_report", "KHAT_THRESHOLD"]


def latent_posterior(res, x, num_samples=1000, chains=4, seed=0, y=None,
                     posterior_predictive=False):
    """Draws from the amortized posterior q(z|x) of every latent site as
    ``arviz.InferenceData``.

    Parameters
    ----------
    res : FitResult
    x : Split, array (N, D) or batch
        Observations; a Split's labels become the ``label`` coordinate of ``obs``.
    num_samples : int
        Draws per observation in all, split evenly over ``chains``. Refused before any is
        drawn (:class:`~probvae.memory.TooLargeError`) when they would need more than half
        of the memory available.
    chains : int
        Independent draws are grouped into chains so ArviZ's chain-based summaries apply.
    seed : int
    y : array (N,), optional
        Labels for the ``label`` coordinate.
    posterior_predictive : bool
        Also draw the data from p(x|z) at every draw (group ``posterior_predictive``, see
        :func:`~probvae.applications.diagnostics.posterior_predictive`).

    Returns
    -------
    arviz.InferenceData
        ``posterior``: one variable per latent site that q samples, named after the site, with
        dims ``(chain, draw, obs, *event dims)``; a discrete latent is an integer variable.
        Event dims are named ``latent`` when a single latent site has them in one dim (a
        VAE's ``z``: (chain, draw, obs, latent); M2's ``y``: (chain, draw, obs)), else after
        their site (``top_dim``, ``mid_dim``). ``observed_data``: each observed site, e.g.
        ``x`` (obs, feature). ``sample_stats``: ``log_weight`` (chain, draw, obs) =
        log p(x, z) - log q(z|x) and ``log_lik`` = log p(x|z). The dim over examples is
        ``obs``, or the data plate's name for a model with a site called ``obs``. There is
        no ``log_likelihood`` group on purpose: z is per example, so ``az.loo`` on these
        draws would estimate nothing meaningful; use :func:`~probvae.applications.diagnostics.compare`.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> idata = latent_posterior(res, data.test.x[:5], num_samples=40)
    >>> idata.posterior["z"].dims
    ('chain', 'draw', 'obs', 'latent')
    """
    if int(chains) < 1 or int(num_samples) < int(chains):
        raise ValueError(f"need chains >= 1 and num_samples >= chains, got {chains}, {num_samples}")
    data, xs, labels = _inputs(x, y)
    res = _contracted(res, data)
    layout = Layout.of(res.model.contract)
    names = tuple(s.name for s in layout.latents)
    draws = int(num_samples) // int(chains)
    # beside log_weights' own: the (chain, draw, obs) copies of the kept draws, log_w and
    # log_lik, and with posterior_predictive the replicated data (float32, and their chunks)
    kept = _site_bytes(layout.latents)
    check_samples(res.model, xs.shape[0], draws * int(chains),
                  "pv.diagnostics.latent_posterior", keep=names, per_draw=kept + 16
                  + (2 * _site_bytes(layout.observed) + kept if posterior_predictive else 0))
    import arviz as az

    lw = log_weights(res, data, num_samples=draws * int(chains), seed=seed, keep=names)
    n = xs.shape[0]

    def cd(a):                       # (obs, samples, ...) -> (chain, draw, obs, ...)
        a = np.moveaxis(np.asarray(a), 1, 0).reshape((chains, draws, n) + np.shape(a)[2:])
        return a

    sampled = [s for s in layout.latents if f"value_{s.name}" in lw]
    if not sampled:
        raise ValueError(f"the guide draws none of the model's latent sites {list(names)} for "
                         "these data; latent_posterior shows the latents q samples")
    posterior = {s.name: cd(lw[f"value_{s.name}"]) for s in sampled}
    posterior.update({s.name: posterior[s.name].astype(np.int64) for s in sampled if s.discrete})
    observed = _observed_data(res, data, xs, layout, seed)
    ex = layout.example
    idata = az.from_dict(
        posterior=posterior, observed_data=observed,
        sample_stats={"log_weight": cd(lw["log_w"]), "log_lik": cd(lw["log_lik"])},
        coords=layout.coords(n),
        dims={**{k: list(v) for k, v in layout.dims.items()}, "log_weight": [ex],
              "log_lik": [ex]})
    if labels is not None:
        if len(labels) != n:
            raise ValueError(f"y has {len(labels)} labels for {n} observations")
        idata = idata.assign_coords(label=(ex, np.asarray(labels)))
    idata.posterior.attrs.update(backend=res.backend, model=type(res.model).__name__,
                                 objective=res.objective)
    if posterior_predictive:
        idata = _posterior_predictive(res, idata, seed=seed, data=data)
    return idata


def _site_bytes(sites) -> int:
    """Bytes per example and draw of the sites' values: float32 per value, an int64 label."""
    return sum(8 if s.discrete else 4 * s.size for s in sites)


def _observed_data(res, data, xs, layout, seed):
    """``observed_data``: the data as given (NaN where missing) for a model with one observed
    site; each observed site's values from one trace of the model for a model with several."""
    if len(layout.observed) == 1:
        return {layout.observed[0].name: xs}
    batch = example_batch(res, data)
    names = [s.name for s in layout.observed]
    bk = res.bk
    parts = []
    with bk.lock:
        for _, part, _ in batching.chunks(batch, CHUNK):
            part = batching.to_backend(bk, part)
            gtr = bk.get_trace(bk.seed(res.bound(res.model.guide), seed), **part)
            mtr = bk.get_trace(bk.replay(bk.seed(res.bound(res.model.model), seed), gtr), **part)
            parts.append({k: np.asarray(bk.to_numpy(mtr[k]["value"])) for k in names})
    return {k: np.concatenate([p[k] for p in parts]) for k in names}


def _log_weights_matrix(idata):
    lw = idata.sample_stats["log_weight"].stack(sample=("chain", "draw"))
    return np.asarray(lw.transpose(_example_dim(idata), "sample").values, dtype=np.float64)


def khat(idata):
    """Pareto k-hat per observation from the importance weights (PSIS, Yao et al. 2018).

    Returns
    -------
    xarray.DataArray (obs,)
        Over the posterior's dim of examples; ``az.plot_khat(values)`` draws it; above
        :data:`KHAT_THRESHOLD` (0.7) q(z|x) is too far from p(z|x) for importance sampling to
        be reliable for that observation. Exactly constant weights (q equal to p) get k = 0.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> k = khat(latent_posterior(res, data.test.x[:5], num_samples=200))
    >>> k.dims
    ('obs',)
    """
    import arviz as az
    import xarray as xr

    lw = _log_weights_matrix(idata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, k = az.psislw(lw, reff=1.0)
    k = np.where(np.ptp(lw, axis=1) < 1e-8, 0.0, k)     # constant weights: q is p itself
    ex = _example_dim(idata)
    out = xr.DataArray(np.asarray(k), coords={ex: idata.sample_stats[ex]}, dims=[ex],
                       name="khat")
    if "label" in idata.sample_stats.coords:
        out = out.assign_coords(label=(ex, idata.sample_stats["label"].values))
    return out


def iwae_log_likelihood(idata):
    """Importance-weighted log-likelihood bound per observation, log mean_s w_s.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> iwae_log_likelihood(latent_posterior(res, data.test.x[:3], num_samples=40)).shape
    (3,)
    """
    import xarray as xr

    ll = log_mean_exp(_log_weights_matrix(idata), axis=1)
    ex = _example_dim(idata)
    return xr.DataArray(ll, coords={ex: idata.sample_stats[ex]}, dims=[ex],
                        name="iwae_log_likelihood")


def collapse(res, x, num_samples=100, threshold=0.01, seed=0, warn=True):
    """Posterior collapse per latent site: KL per dim and active units; warns naming
    collapsed dims and their site.

    A dim of a continuous latent site is *active* when the variance over x of its posterior
    mean E_q[z_d|x] exceeds ``threshold`` (Burda et al. 2016); an inactive dim carries no
    information about x. Discrete latents (a label) are left out.

    Returns
    -------
    xarray.Dataset over ``latent``, one entry per dim of every continuous latent site (event
    dims flattened), with coordinates ``site`` (its site) and ``unit`` (its index within the
    site): ``kl`` (nats, per dim; NaN where the prior has no per-dim marginals),
    ``activity`` and ``active`` (bool). ``ds.groupby("site")`` gives per-site figures; attrs
    hold ``active_units`` (all sites), ``active_units_by_site``, ``collapsed_dims`` (entries
    of ``latent``) and ``collapsed_by_site`` (units per site).

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> col = collapse(res, data.test.x[:50], num_samples=10, warn=False)
    >>> sorted(col.data_vars), col["site"].values.tolist()
    (['active', 'activity', 'kl'], ['z', 'z'])
    """
    import xarray as xr

    data = _inputs(x, None)[0]
    res = _contracted(res, data)
    contract = res.model.contract
    sites = [s for s in contract.latents if not s.discrete]
    if not sites:
        raise ValueError(f"collapse looks at continuous latent sites; the model's latents "
                         f"{list(contract.latent_names)} are all discrete")
    lw = log_weights(res, data, num_samples=num_samples, seed=seed)
    means = _guide_moments(res, example_batch(res, data), [s.name for s in sites], seed)[0]
    kl = _kl_by_site(lw, sites)
    activity, active = active_units(np.concatenate(
        [means[s.name].reshape(len(means[s.name]), -1) for s in sites], axis=1), threshold)
    ds = xr.Dataset({"kl": ("latent", np.concatenate([kl[s.name] for s in sites])),
                     "activity": ("latent", activity), "active": ("latent", active)},
                    coords=_unit_coords({s.name: s.size for s in sites}))
    collapsed = [int(d) for d in np.flatnonzero(activity <= threshold)]
    by_site = {s.name: [int(u) for u in ds["unit"].values[collapsed][
        ds["site"].values[collapsed] == s.name]] for s in sites}
    ds.attrs.update(active_units=int(active.sum()), collapsed_dims=collapsed,
                    threshold=threshold,
                    active_units_by_site={s.name: int(active[ds["site"].values == s.name].sum())
                                          for s in sites},
                    collapsed_by_site=by_site)
    if warn and collapsed:
        where = "; ".join(f"latent dims {units} are inactive in {name!r}"
                          for name, units in by_site.items() if units)
        warnings.warn(f"posterior collapse: {where} (variance of E_q[z_d|x] over x <= "
                      f"{threshold}); they carry no information about x",
                      UserWarning, stacklevel=2)
    return ds


def _kl_by_site(lw, sites) -> dict:
    """KL(q || p) per dim of each continuous site (``{site: (size,)}``, mean over examples)
    from :func:`log_weights`' ``kl_dim``: the continuous latents' per-dim KL, flattened and
    concatenated in contract order; NaN for every site when it is absent or of another
    width."""
    kl = lw.get("kl_dim")
    sizes = [s.size for s in sites]
    if kl is None or np.size(kl) != len(kl) * sum(sizes):
        return {s.name: np.full(s.size, np.nan) for s in sites}
    kl = np.asarray(kl, np.float64).reshape(len(kl), -1).mean(axis=0)
    return dict(zip([s.name for s in sites], np.split(kl, np.cumsum(sizes)[:-1])))


def report(res, data, num_samples=1000, chains=4, seed=0):
    """One table of the amortized-posterior diagnostics for ``data``.

    Returns
    -------
    xarray.Dataset
        Per observation: ``khat`` and ``iwae_log_likelihood``; per dim of each continuous
        latent site (:func:`collapse`'s ``latent`` axis, with its ``site`` and ``unit``
        coordinates): ``kl``, ``activity``, ``active``; scalars: ``mean_iwae_log_likelihood``,
        ``khat_max``, ``khat_above_0.7`` (count) and ``fraction_khat_above_0.7``,
        ``active_units``; attrs: ``collapsed_dims``, ``active_units_by_site`` and
        ``collapsed_by_site``. Print it (:func:`format_report`), or ``.to_dataframe()`` parts
        of it.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> rep = report(res, data.test.x[:20], num_samples=100)
    >>> int(rep["khat_above_0.7"]) <= 20
    True
    """
    import xarray as xr

    idata = latent_posterior(res, data, num_samples=num_samples, chains=chains, seed=seed)
    k = khat(idata)
    ll = iwae_log_likelihood(idata)
    col = collapse(res, data, num_samples=min(num_samples, 100), seed=seed, warn=True)
    above = int((k > KHAT_THRESHOLD).sum())
    ds = xr.Dataset({"khat": k, "iwae_log_likelihood": ll, "kl": col["kl"],
                     "activity": col["activity"], "active": col["active"],
                     "mean_iwae_log_likelihood": float(ll.mean()),
                     "khat_max": float(k.max()), "khat_above_0.7": above,
                     "fraction_khat_above_0.7": above / k.size,
                     "active_units": col.attrs["active_units"]})
    ds.attrs.update(model=type(res.model).__name__, backend=res.backend,
                    num_samples=num_samples, collapsed_dims=col.attrs["collapsed_dims"],
                    active_units_by_site=col.attrs["active_units_by_site"],
                    collapsed_by_site=col.attrs["collapsed_by_site"])
    return ds


def format_report(rep) -> str:
    """A short human-readable summary of :func:`report`'s Dataset.

    Examples
    --------
    >>> import xarray as xr, numpy as np
    >>> rep = xr.Dataset({"khat": ("obs", [0.2, 0.9]), "iwae_log_likelihood": ("obs", [1.0, 2.0]),
    ...     "kl": ("latent", [0.5, 0.0]), "activity": ("latent", [1.0, 0.0]),
    ...     "active": ("latent", [True, False]), "mean_iwae_log_likelihood": 1.5,
    ...     "khat_max": 0.9, "khat_above_0.7": 1, "fraction_khat_above_0.7": 0.5,
    ...     "active_units": 1})
    >>> print(format_report(rep).splitlines()[0])
    observations                 2
    """
    n = rep["khat"].size
    units = ([f"{site}{int(u)}" for site, u in zip(rep["site"].values, rep["unit"].values)]
             if "site" in rep.coords else [str(int(d)) for d in rep["latent"].values])
    lines = [f"{'observations':<28} {n}",
             f"{'mean IWAE log-likelihood':<28} {float(rep['mean_iwae_log_likelihood']):.3f} nats",
             f"{'k-hat > 0.7':<28} {int(rep['khat_above_0.7'])} of {n} "
             f"({100 * float(rep['fraction_khat_above_0.7']):.1f}%), max {float(rep['khat_max']):.2f}",
             f"{'active units':<28} {int(rep['active_units'])} of {rep.sizes['latent']}",
             "per latent dim:   " + "  ".join(u.rjust(6) for u in units),
             "  KL (nats)       " + "  ".join(f"{v:6.2f}" for v in rep["kl"].values),
             "  activity        " + "  ".join(f"{v:6.2f}" for v in rep["activity"].values)]
    if "site" in rep.coords and len(set(rep["site"].values)) > 1:     # per latent site
        site, active = rep["site"].values, rep["active"].values
        lines.insert(4, f"{'  by site':<28} " + ", ".join(
            f"{name} {int(active[site == name].sum())} of {int((site == name).sum())}"
            for name in dict.fromkeys(site)))
    verdict = ("q(z|x) looks trustworthy for importance sampling"
               if float(rep["fraction_khat_above_0.7"]) < 0.1 else
               "q(z|x) is too narrow or misplaced for many observations (k-hat > 0.7): treat its "
               "uncertainty with care, or compare with reference_posterior")
    return "\n".join(lines + [verdict])
