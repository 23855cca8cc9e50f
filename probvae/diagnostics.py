"""Can this approximate posterior be trusted? ArviZ diagnostics of the amortized q(z|x).

* :func:`latent_posterior`: draws from q(z|x) as ``arviz.InferenceData`` (dims ``chain, draw,
  obs, latent``), with the observed data and the log importance weights
  log p(x, z) - log q(z|x) in ``sample_stats``.
* :func:`khat`: Pareto k-hat per observation from those weights (Yao et al. 2018): above 0.7
  the importance weights, and so q, are not to be trusted for that observation.
* :func:`iwae_log_likelihood`: the importance-weighted log-likelihood bound per observation.
* :func:`collapse`: KL per latent dim and active units (Burda et al. 2016), warning on
  collapsed dims.
* :func:`reference_posterior` / :func:`compare_posteriors`: NUTS on p(z|x) with the trained
  decoder and prior, and the per-dim differences from q.
* :func:`report`: all of it in one ``xarray.Dataset``.

Everything is built from ``{site: ndarray}`` dicts with named dims and converted with ArviZ's
generic ``from_dict``: the same code for both backends and for any model whose latent site is
``"z"`` inside plate ``"data"``.

References
----------
Yao, Vehtari, Simpson & Gelman (2018), "Yes, but Did It Work?: Evaluating Variational
Inference", ICML. Burda, Grosse & Salakhutdinov (2016), "Importance Weighted Autoencoders".
"""
from __future__ import annotations

import warnings

import numpy as np

__all__ = ["latent_posterior", "khat", "iwae_log_likelihood", "collapse", "reference_posterior",
           "compare_posteriors", "amortization_gap", "report", "format_report",
           "KHAT_THRESHOLD"]

#: k-hat above this: importance sampling from q is unreliable for that observation
KHAT_THRESHOLD = 0.7


def _inputs(x, y):
    from .data import as_split
    split = as_split(x)
    return split.x, (split.y if y is None else np.asarray(y))


def latent_posterior(res, x, num_samples=1000, chains=4, seed=0, y=None):
    """Draws from the amortized posterior q(z|x) as ``arviz.InferenceData``.

    Parameters
    ----------
    res : FitResult
    x : Split or array (N, D)
        Observations; a Split's labels become the ``label`` coordinate of ``obs``.
    num_samples : int
        Draws per observation in all, split evenly over ``chains``.
    chains : int
        Independent draws are grouped into chains so ArviZ's chain-based summaries apply.
    seed : int
    y : array (N,), optional
        Labels for the ``label`` coordinate.

    Returns
    -------
    arviz.InferenceData
        ``posterior``: ``z`` (chain, draw, obs, latent), and ``y`` (chain, draw, obs) for models
        with labels; ``observed_data``: ``x`` (obs, feature); ``sample_stats``: ``log_weight``
        (chain, draw, obs) = log p(x, z) - log q(z|x); ``log_likelihood``: ``x`` = log p(x|z).

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
    import arviz as az

    from .inference import log_weights

    if int(chains) < 1 or int(num_samples) < int(chains):
        raise ValueError(f"need chains >= 1 and num_samples >= chains, got {chains}, {num_samples}")
    xs, labels = _inputs(x, y)
    draws = int(num_samples) // int(chains)
    lw = log_weights(res, xs, num_samples=draws * int(chains), seed=seed, keep=("z", "y"))
    n = xs.shape[0]

    def cd(a):                       # (obs, samples, ...) -> (chain, draw, obs, ...)
        a = np.moveaxis(np.asarray(a), 1, 0).reshape((chains, draws, n) + np.shape(a)[2:])
        return a

    if "value_z" not in lw:
        raise ValueError("latent_posterior needs a guide site named 'z' inside plate 'data'")
    z = cd(lw["value_z"])
    posterior = {"z": z}
    dims = {"z": ["obs", "latent"], "x": ["obs", "feature"], "log_weight": ["obs"],
            "y": ["obs"]}
    if "value_y" in lw:
        posterior["y"] = cd(lw["value_y"]).astype(np.int64)
    coords = {"obs": np.arange(n), "latent": np.arange(z.shape[-1]),
              "feature": np.arange(xs.shape[1])}
    idata = az.from_dict(
        posterior=posterior,
        observed_data={"x": xs},
        sample_stats={"log_weight": cd(lw["log_w"])},
        log_likelihood={"x": cd(lw["log_lik"])},
        coords=coords, dims=dims)
    if labels is not None:
        if len(labels) != n:
            raise ValueError(f"y has {len(labels)} labels for {n} observations")
        idata = idata.assign_coords(label=("obs", np.asarray(labels)))
    idata.posterior.attrs.update(backend=res.backend, model=type(res.model).__name__,
                                 objective=res.objective)
    return idata


def _log_weights_matrix(idata):
    lw = idata.sample_stats["log_weight"].stack(sample=("chain", "draw"))
    return np.asarray(lw.transpose("obs", "sample").values, dtype=np.float64)


def khat(idata):
    """Pareto k-hat per observation from the importance weights (PSIS, Yao et al. 2018).

    Returns
    -------
    xarray.DataArray (obs,)
        ``az.plot_khat(values)`` draws it; above :data:`KHAT_THRESHOLD` (0.7) q(z|x) is too far
        from p(z|x) for importance sampling to be reliable for that observation. Exactly
        constant weights (q equal to p) get k = 0.

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
    obs = idata.sample_stats["obs"]
    out = xr.DataArray(np.asarray(k), coords={"obs": obs}, dims=["obs"], name="khat")
    if "label" in idata.sample_stats.coords:
        out = out.assign_coords(label=("obs", idata.sample_stats["label"].values))
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

    lw = _log_weights_matrix(idata)
    m = lw.max(axis=1, keepdims=True)
    ll = m[:, 0] + np.log(np.mean(np.exp(lw - m), axis=1))
    return xr.DataArray(ll, coords={"obs": idata.sample_stats["obs"]}, dims=["obs"],
                        name="iwae_log_likelihood")


def collapse(res, x, num_samples=100, threshold=0.01, seed=0, warn=True):
    """Posterior collapse: KL per latent dim and active units; warns naming collapsed dims.

    A dim is *active* when the variance over x of its posterior mean E_q[z_d|x] exceeds
    ``threshold`` (Burda et al. 2016); an inactive dim carries no information about x.

    Returns
    -------
    xarray.Dataset over ``latent``: ``kl`` (nats, per dim; NaN where the prior has no
    per-dim marginals), ``activity`` and ``active`` (bool).

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> sorted(collapse(res, data.test.x[:50], num_samples=10, warn=False).data_vars)
    ['active', 'activity', 'kl']
    """
    import xarray as xr

    from .inference import encode, log_weights

    xs, _ = _inputs(x, None)
    lw = log_weights(res, xs, num_samples=num_samples, seed=seed)
    z = encode(res, xs)
    activity = z.var(axis=0)
    kl = lw["kl_dim"].mean(axis=0) if "kl_dim" in lw else np.full(z.shape[1], np.nan)
    ds = xr.Dataset({"kl": ("latent", kl), "activity": ("latent", activity),
                     "active": ("latent", activity > threshold)},
                    coords={"latent": np.arange(z.shape[1])})
    collapsed = [int(d) for d in np.flatnonzero(activity <= threshold)]
    ds.attrs.update(active_units=int((activity > threshold).sum()), collapsed_dims=collapsed,
                    threshold=threshold)
    if warn and collapsed:
        warnings.warn(f"posterior collapse: latent dims {collapsed} are inactive (variance of "
                      f"E_q[z_d|x] over x <= {threshold}); they carry no information about x",
                      UserWarning, stacklevel=2)
    return ds


def reference_posterior(res, x, chains=4, num_samples=500, num_warmup=500, seed=0, y=None):
    """Reference draws from the exact p(z|x) by NUTS, with the trained decoder and prior.

    Runs the backend's own NUTS (NumPyro's, chains vectorised; or Pyro's) on the model with
    its learned parameters fixed and x observed. For models with labels, z is sampled given
    ``y`` (default: the classifier's best guess).

    Returns
    -------
    arviz.InferenceData
        ``posterior``: ``z`` (chain, draw, obs, latent); ``az.rhat`` and ``az.ess`` apply.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> ref = reference_posterior(res, data.test.x[:2], chains=2, num_samples=50, num_warmup=50)
    >>> ref.posterior["z"].shape
    (2, 50, 2, 2)
    """
    import arviz as az

    from .inference.fit import prepare_x
    from .inference.predict import _labels_for

    xs, labels = _inputs(x, y)
    xs = prepare_x(res.model, xs, "data")
    bk = res.bk
    kwargs = {}
    ylab = _labels_for(res, xs, labels if getattr(res.model, "is_classifier", False) else None)
    if ylab is not None:
        kwargs["y"] = bk.asarray_int(ylab)
    draws = bk.nuts(res.model.model, res.params, (bk.asarray(xs),), kwargs, int(chains),
                    int(num_samples), int(num_warmup), int(seed))
    if "z" not in draws:
        raise ValueError("reference_posterior needs a latent site named 'z'")
    idata = az.from_dict(posterior={"z": draws["z"]}, dims={"z": ["obs", "latent"]},
                         coords={"obs": np.arange(len(xs)),
                                 "latent": np.arange(draws["z"].shape[-1])})
    if labels is not None:
        idata = idata.assign_coords(label=("obs", np.asarray(labels)))
    return idata


def compare_posteriors(amortized, reference):
    """Per-dim mean and sd of q(z|x) against a reference posterior (e.g. NUTS).

    Parameters
    ----------
    amortized, reference : arviz.InferenceData
        From :func:`latent_posterior` and :func:`reference_posterior` on the same x.

    Returns
    -------
    xarray.Dataset over (obs, latent): ``mean_q``, ``mean_ref``, ``sd_q``, ``sd_ref``,
    ``mean_diff`` (q - ref, in reference sds) and ``sd_ratio`` (sd_q / sd_ref); attrs hold the
    averages over everything.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> x = data.test.x[:2]
    >>> cmp = compare_posteriors(latent_posterior(res, x, num_samples=100),
    ...                          reference_posterior(res, x, chains=2, num_samples=50, num_warmup=50))
    >>> sorted(cmp.data_vars)
    ['mean_diff', 'mean_q', 'mean_ref', 'sd_q', 'sd_ratio', 'sd_ref']
    """
    import xarray as xr

    q = amortized.posterior["z"]
    r = reference.posterior["z"]
    if q.sizes["obs"] != r.sizes["obs"] or q.sizes["latent"] != r.sizes["latent"]:
        raise ValueError(f"the two posteriors are over different shapes: q {dict(q.sizes)}, "
                         f"reference {dict(r.sizes)}")
    dims = ("chain", "draw")
    mq, mr = q.mean(dims), r.mean(dims)
    sq, sr = q.std(dims), r.std(dims)
    ds = xr.Dataset({"mean_q": mq, "mean_ref": mr, "sd_q": sq, "sd_ref": sr,
                     "mean_diff": (mq - mr) / sr, "sd_ratio": sq / sr})
    ds = ds.drop_vars([c for c in ds.coords if c not in ("obs", "latent")])
    ds.attrs.update(mean_abs_mean_diff=float(np.abs(ds["mean_diff"]).mean()),
                    mean_sd_ratio=float(ds["sd_ratio"].mean()))
    return ds


def report(res, data, num_samples=1000, chains=4, seed=0):
    """One table of the amortized-posterior diagnostics for ``data``.

    Returns
    -------
    xarray.Dataset
        Per observation: ``khat`` and ``iwae_log_likelihood``; per latent dim: ``kl``,
        ``activity``, ``active``; scalars: ``mean_iwae_log_likelihood``, ``khat_max``,
        ``khat_above_0.7`` (count) and ``fraction_khat_above_0.7``, ``active_units``.
        Print it, or ``.to_dataframe()`` parts of it.

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
                     "fraction_khat_above_0.7": above / k.sizes["obs"],
                     "active_units": col.attrs["active_units"]})
    ds.attrs.update(model=type(res.model).__name__, backend=res.backend,
                    num_samples=num_samples, collapsed_dims=col.attrs["collapsed_dims"])
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
    n = rep.sizes["obs"]
    lines = [f"{'observations':<28} {n}",
             f"{'mean IWAE log-likelihood':<28} {float(rep['mean_iwae_log_likelihood']):.3f} nats",
             f"{'k-hat > 0.7':<28} {int(rep['khat_above_0.7'])} of {n} "
             f"({100 * float(rep['fraction_khat_above_0.7']):.1f}%), max {float(rep['khat_max']):.2f}",
             f"{'active units':<28} {int(rep['active_units'])} of {rep.sizes['latent']}",
             "per latent dim:   " + "  ".join(f"z{int(d)}" .rjust(6) for d in rep["latent"]),
             "  KL (nats)       " + "  ".join(f"{v:6.2f}" for v in rep["kl"].values),
             "  activity        " + "  ".join(f"{v:6.2f}" for v in rep["activity"].values)]
    verdict = ("q(z|x) looks trustworthy for importance sampling"
               if float(rep["fraction_khat_above_0.7"]) < 0.1 else
               "q(z|x) is too narrow or misplaced for many observations (k-hat > 0.7): treat its "
               "uncertainty with care, or compare with reference_posterior")
    return "\n".join(lines + [verdict])


def _guide_scale(res, x, kw):
    """Posterior sds of the amortized Gaussian q(z|x)."""
    bk = res.bk
    tr = bk.get_trace(bk.seed(res.bound(res.model.guide), 0), bk.asarray(x), **kw)
    fn = tr["z"]["fn"]
    while not hasattr(fn, "scale") and hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return np.array(np.broadcast_to(np.asarray(bk.to_numpy(fn.scale)),
                                    (len(x), tr["z"]["value"].shape[-1])), dtype=np.float32)


def amortization_gap(res, x, steps=300, lr=0.05, num_particles=8, num_samples=500, seed=0,
                     batch=100, y=None):
    """ELBO of a per-example optimised Gaussian q*(z|x) minus the amortized q(z|x)'s ELBO.

    q* starts at the amortized q and is optimised for each example by the backend's own SVI
    with the decoder and prior fixed; a positive gap is how much the encoder loses by
    amortizing inference (Cremer, Li & Duvenaud 2018). For models with labels, both ELBOs are
    of q(z|x, y) given ``y`` (default: the classifier's best guess); the terms in y cancel.

    Returns
    -------
    xarray.Dataset over ``obs``: ``elbo_amortized``, ``elbo_optimised``, ``gap``; attrs hold
    the means.

    References
    ----------
    Cremer, Li & Duvenaud (2018), "Inference Suboptimality in Variational Autoencoders", ICML.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> gap = amortization_gap(res, data.test.x[:4], steps=20, num_samples=50)
    >>> gap["gap"].dims
    ('obs',)
    """
    import xarray as xr

    from .inference import FitResult, encode, log_weights
    from .inference.fit import prepare_x
    from .inference.predict import _labels_for
    from .models import CustomModel

    xs = prepare_x(res.model, _inputs(x, None)[0], "data")
    labels = _labels_for(res, xs, y)
    bk = res.bk
    amortized, optimised = [], []
    for start in range(0, len(xs), batch):
        xb = xs[start:start + batch]
        yb = None if labels is None else labels[start:start + batch]
        kw = {} if yb is None else {"y": bk.asarray_int(yb)}
        loc0, scale0 = encode(res, xb, seed=seed, y=yb), _guide_scale(res, xb, kw)
        loc, scale = bk.fit_local_gaussian(res.model.model, res.params, xb, loc0, scale0,
                                           int(steps), float(lr), int(num_particles), int(seed),
                                           kw)

        def local_guide(x, loc=loc, scale=scale, n=len(xb), **_):
            rows = x.shape[0]                        # evaluation may pad the batch
            pad = max(rows - n, 0)
            loc_r = np.concatenate([loc, np.repeat(loc[-1:], pad, 0)])[:rows]
            scale_r = np.concatenate([scale, np.repeat(scale[-1:], pad, 0)])[:rows]
            with bk.plate("data", rows):
                bk.sample("z", bk.dist.Normal(bk.asarray(loc_r), bk.asarray(scale_r)).to_event(1))

        local = FitResult(CustomModel(res.model.model, local_guide, res.backend), res.params,
                          {}, res.objective)
        optimised.append(log_weights(local, xb, num_samples, seed=seed, y=yb)["log_w"].mean(1))
        amortized.append(log_weights(res, xb, num_samples, seed=seed, y=yb)["log_w"].mean(1))
    a, o = np.concatenate(amortized), np.concatenate(optimised)
    ds = xr.Dataset({"elbo_amortized": ("obs", a), "elbo_optimised": ("obs", o),
                     "gap": ("obs", o - a)}, coords={"obs": np.arange(len(xs))})
    ds.attrs.update(mean_gap=float((o - a).mean()), mean_elbo_amortized=float(a.mean()),
                    mean_elbo_optimised=float(o.mean()))
    return ds
