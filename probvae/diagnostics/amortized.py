"""The amortized posterior q(z|x) as ``arviz.InferenceData``, and what its weights say.

Importance weights log p(x, z) - log q(z|x) give PSIS k-hat per observation (Yao et al. 2018)
and the IWAE bound; posterior means over x give active units (Burda et al. 2016).
"""
from __future__ import annotations

import warnings

import numpy as np

from probvae.inference import encode, log_weights
from probvae.inference.scoring import active_units, check_samples, kept_bytes, log_mean_exp

from .common import KHAT_THRESHOLD, _inputs
from .predictive import posterior_predictive as _posterior_predictive

__all__ = ["latent_posterior", "khat", "iwae_log_likelihood", "collapse", "report",
           "format_report", "KHAT_THRESHOLD"]



def latent_posterior(res, x, num_samples=1000, chains=4, seed=0, y=None,
                     posterior_predictive=False):
    """Draws from the amortized posterior q(z|x) as ``arviz.InferenceData``.

    Parameters
    ----------
    res : FitResult
    x : Split or array (N, D)
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
        Also draw x from p(x|z) at every draw (group ``posterior_predictive``, see
        :func:`~probvae.diagnostics.posterior_predictive`).

    Returns
    -------
    arviz.InferenceData
        ``posterior``: ``z`` (chain, draw, obs, latent), and ``y`` (chain, draw, obs) for models
        with labels; ``observed_data``: ``x`` (obs, feature); ``sample_stats``: ``log_weight``
        (chain, draw, obs) = log p(x, z) - log q(z|x) and ``log_lik`` = log p(x|z). There is
        no ``log_likelihood`` group on purpose: z is per example, so ``az.loo`` on these
        draws would estimate nothing meaningful; use :func:`~probvae.diagnostics.compare`.

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
    draws = int(num_samples) // int(chains)
    # beside log_weights' own: the (chain, draw, obs) copies of the kept draws, log_w and
    # log_lik, and with posterior_predictive the replicated x (float32, and decode's chunks)
    width = int(getattr(res.model, "input_dim", 0) or xs.shape[1])
    check_samples(res.model, xs.shape[0], draws * int(chains),
                  "pv.diagnostics.latent_posterior", keep=("z", "y"),
                  per_draw=kept_bytes(res.model, ("z", "y")) + 16
                  + (8 * width + kept_bytes(res.model, ("z",)) if posterior_predictive else 0))
    import arviz as az

    lw = log_weights(res, data, num_samples=draws * int(chains), seed=seed, keep=("z", "y"))
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
    dims["log_lik"] = ["obs"]
    idata = az.from_dict(
        posterior=posterior,
        observed_data={"x": xs},
        sample_stats={"log_weight": cd(lw["log_w"]), "log_lik": cd(lw["log_lik"])},
        coords=coords, dims=dims)
    if labels is not None:
        if len(labels) != n:
            raise ValueError(f"y has {len(labels)} labels for {n} observations")
        idata = idata.assign_coords(label=("obs", np.asarray(labels)))
    idata.posterior.attrs.update(backend=res.backend, model=type(res.model).__name__,
                                 objective=res.objective)
    if posterior_predictive:
        idata = _posterior_predictive(res, idata, seed=seed)
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

    ll = log_mean_exp(_log_weights_matrix(idata), axis=1)
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

    data = _inputs(x, None)[0]
    lw = log_weights(res, data, num_samples=num_samples, seed=seed)
    z = encode(res, data)
    activity, active = active_units(z, threshold)
    kl = lw["kl_dim"].mean(axis=0) if "kl_dim" in lw else np.full(z.shape[1], np.nan)
    ds = xr.Dataset({"kl": ("latent", kl), "activity": ("latent", activity),
                     "active": ("latent", active)},
                    coords={"latent": np.arange(z.shape[1])})
    collapsed = [int(d) for d in np.flatnonzero(activity <= threshold)]
    ds.attrs.update(active_units=int(active.sum()), collapsed_dims=collapsed,
                    threshold=threshold)
    if warn and collapsed:
        warnings.warn(f"posterior collapse: latent dims {collapsed} are inactive (variance of "
                      f"E_q[z_d|x] over x <= {threshold}); they carry no information about x",
                      UserWarning, stacklevel=2)
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
