"""q(z|x) against references: NUTS on the exact p(z|x), and per-example optimised q, for
every latent site of the model's contract.

References
----------
Cremer, Li & Duvenaud (2018), "Inference Suboptimality in Variational Autoencoders", ICML.
"""
from __future__ import annotations

import numpy as np

from probvae import batch as batching
from probvae.inference import FitResult, log_weights
from probvae.inference.scoring import example_batch, exclusive
from probvae.models import CustomModel

from .common import Layout, _contracted, _example_dim, _guide_moments, _inputs, _unit_coords
from .containers import check_format, group, to_container

__all__ = ["reference_posterior", "compare_posteriors", "amortization_gap"]


@exclusive
def reference_posterior(res, x, chains=4, num_samples=500, num_warmup=500, seed=0, y=None,
                        format="inferencedata"):
    """Reference draws from the exact posterior p(z|x) of every continuous latent site by
    NUTS, with the trained decoder and prior.

    Runs the backend's own NUTS (NumPyro's, chains vectorised; or Pyro's) on the model with
    its learned parameters fixed and x observed. For models with labels, z is sampled given
    ``y`` (default: the classifier's best guess).

    Parameters
    ----------
    format : {"inferencedata", "datatree"}
        The container, as for :func:`~probvae.applications.diagnostics.latent_posterior`.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        ``posterior``: one variable per latent site NUTS samples, with the names, dims and
        coordinates of :func:`~probvae.applications.diagnostics.latent_posterior` (a VAE's ``z``:
        (chain, draw, obs, latent)); ``az.rhat`` and ``az.ess`` apply (``arviz_stats.rhat`` to
        a DataTree).

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
    format = check_format(format)
    data, _, labels = _inputs(x, y)
    batch = example_batch(res, data, "data", labels)     # labels: for models with labels
    res = _contracted(res, batch)
    layout = Layout.of(res.model.contract)
    bk = res.bk
    draws = bk.nuts(res.model.model, res.param_state, batching.to_backend(bk, batch), int(chains),
                    int(num_samples), int(num_warmup), int(seed))
    missing = [s.name for s in layout.latents if not s.discrete and s.name not in draws]
    if missing:
        raise ValueError(f"NUTS drew none of the latent sites {missing}; reference_posterior "
                         "samples the model's continuous latents with the data observed")
    sites = [s for s in layout.latents if s.name in draws]
    posterior = {s.name: (("chain", "draw", *layout.dims[s.name]),
                          draws[s.name].astype(np.int64) if s.discrete else draws[s.name])
                 for s in sites}
    extra = {} if labels is None else {"label": (layout.example, np.asarray(labels))}
    return to_container({"posterior": posterior}, layout.coords(batching.size(batch), sites),
                        format, extra_coords=extra,
                        attrs={"posterior": {"draws": "NUTS on p(z|x), the model's parameters "
                                                      "fixed"}})


def compare_posteriors(amortized, reference):
    """Per-dim mean and sd of q(z|x) against a reference posterior (e.g. NUTS), for every
    continuous latent site the two share.

    Parameters
    ----------
    amortized, reference : arviz.InferenceData or xarray.DataTree
        From :func:`latent_posterior` (either ``format``) and :func:`reference_posterior` on
        the same x.

    Returns
    -------
    xarray.Dataset over (obs, latent), ``latent`` running over the dims of every site (event
    dims flattened) with coordinates ``site`` and ``unit`` (the index within its site):
    ``mean_q``, ``mean_ref``, ``sd_q``, ``sd_ref``, ``mean_diff`` (q - ref, in reference sds)
    and ``sd_ratio`` (sd_q / sd_ref). attrs: ``mean_abs_mean_diff`` and ``mean_sd_ratio``
    over everything, and ``by_site``: the same two per site.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> x = data.test.x[:2]
    >>> cmp = compare_posteriors(pv.diagnostics.latent_posterior(res, x, num_samples=100),
    ...                          reference_posterior(res, x, chains=2, num_samples=50, num_warmup=50))
    >>> sorted(cmp.data_vars)
    ['mean_diff', 'mean_q', 'mean_ref', 'sd_q', 'sd_ratio', 'sd_ref']
    """
    import xarray as xr

    q_post, r_post = group(amortized, "posterior"), group(reference, "posterior")
    names = [v for v in q_post.data_vars if v in r_post.data_vars
             and np.issubdtype(q_post[v].dtype, np.floating)]
    if not names:
        raise ValueError(f"the two posteriors share no continuous latent site: q has "
                         f"{list(q_post.data_vars)}, the reference {list(r_post.data_vars)}")
    moments, sizes = {}, {}
    for name in names:
        q, r = q_post[name], r_post[name]
        if q.shape[2:] != r.shape[2:]:
            raise ValueError(f"the two posteriors of {name!r} are over different shapes: q "
                             f"{dict(q.sizes)}, reference {dict(r.sizes)}")
        flat = [np.asarray(a.values, np.float64).reshape(a.shape[0] * a.shape[1], a.shape[2], -1)
                for a in (q, r)]
        moments[name] = [f(a, axis=0) for a in flat for f in (np.mean, np.std)]
        sizes[name] = flat[0].shape[2]
    mq, sq, mr, sr = (np.concatenate([m[i] for m in moments.values()], axis=1)
                      for i in range(4))
    ex = _example_dim(amortized)
    dims = (ex, "latent")
    with np.errstate(divide="ignore", invalid="ignore"):     # a reference that never moved
        diff, ratio = (mq - mr) / sr, sq / sr
    ds = xr.Dataset({"mean_q": (dims, mq), "mean_ref": (dims, mr), "sd_q": (dims, sq),
                     "sd_ref": (dims, sr), "mean_diff": (dims, diff), "sd_ratio": (dims, ratio)},
                    coords={ex: q_post[ex].values, **_unit_coords(sizes)})

    def averages(part):
        return {"mean_abs_mean_diff": float(np.abs(part["mean_diff"]).mean()),
                "mean_sd_ratio": float(part["sd_ratio"].mean())}
    ds.attrs.update(averages(ds), by_site={name: averages(ds.isel(latent=ds["site"].values == name))
                                           for name in names})
    return ds


def local_gaussian_guide(bk, loc, scale, learn=True, plate="data"):
    """A guide with its own Gaussian q per example for each site of ``loc`` (``{site: (N,
    *event)}``): learned parameters ``local_loc_<site>`` and ``local_scale_<site>`` starting
    at ``loc`` and ``scale`` (``learn=False``: fixed at them; a padded batch repeats the last
    row), inside plate ``plate``. Written once with ``bk``, so it runs on both backends."""
    n = len(next(iter(loc.values())))

    def fixed(a, rows):
        pad = max(rows - n, 0)
        return bk.asarray(np.concatenate([a, np.repeat(a[-1:], pad, 0)])[:rows])

    def guide(**batch):
        rows = next(v.shape[0] for v in batch.values() if hasattr(v, "shape"))
        params = {}
        for name in loc:
            if learn:
                params[name] = (bk.param(f"local_loc_{name}", np.asarray(loc[name], np.float32)),
                                bk.param(f"local_scale_{name}",
                                         np.asarray(scale[name], np.float32),
                                         constraint=bk.constraints.positive))
            else:
                params[name] = fixed(loc[name], rows), fixed(scale[name], rows)
        with bk.plate(plate, rows):
            for name, (q_loc, q_scale) in params.items():
                q = bk.dist.Normal(q_loc, q_scale)
                event = np.ndim(loc[name]) - 1
                bk.sample(name, q.to_event(event) if event else q)
    return guide


@exclusive
def amortization_gap(res, x, steps=300, lr=0.05, num_particles=8, num_samples=500, seed=0,
                     batch=100, y=None):
    """ELBO of a per-example optimised Gaussian q*(z|x) minus the amortized q(z|x)'s ELBO.

    q* has a Gaussian of its own per example for every continuous latent site; it starts at
    the amortized q's means and sds and is optimised for each example by the backend's own SVI
    with the decoder and prior fixed; a positive gap is how much the encoder loses by
    amortizing inference (Cremer, Li & Duvenaud 2018). For models with labels, both ELBOs are
    of q(z|x, y) given ``y`` (default: the classifier's best guess); the terms in y cancel.

    Returns
    -------
    xarray.Dataset over ``obs`` (the examples' dim of
    :func:`~probvae.applications.diagnostics.latent_posterior`): ``elbo_amortized``, ``elbo_optimised``,
    ``gap``; attrs hold the means.

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

    rows = example_batch(res, _inputs(x, None)[0], "data", y)
    res = _contracted(res, rows)
    contract = res.model.contract
    names = contract.continuous_names
    discrete = [s.name for s in contract.latents if s.discrete]
    bk = res.bk
    amortized, optimised = [], []
    for start, part, _ in batching.chunks(rows, batch):
        loc0, scale0, sampled = _guide_moments(res, part, names, seed)
        if set(discrete) & sampled:
            raise ValueError(f"amortization_gap optimises a Gaussian q per example for the "
                             f"continuous latents {list(names)}; the guide also draws the "
                             f"discrete {sorted(set(discrete) & sampled)}, which it cannot "
                             "optimise: give them with the data")
        fitted = bk.run_svi(res.model.model,
                            local_gaussian_guide(bk, loc0, scale0, plate=contract.data_plate),
                            res.param_state, batching.to_backend(bk, part), int(steps), float(lr),
                            int(num_particles), int(seed))
        local = local_gaussian_guide(bk, {k: fitted[f"local_loc_{k}"] for k in names},
                                     {k: fitted[f"local_scale_{k}"] for k in names},
                                     learn=False, plate=contract.data_plate)
        # the same contract: the same p(x, ...) scored (training sites left out) as for res
        pair = CustomModel(res.model.model, local, res.backend, contract=contract)
        scored = FitResult(pair, res.param_state, {}, res.objective, dict(res.options))
        optimised.append(log_weights(scored, part, num_samples, seed=seed)["log_w"].mean(1))
        amortized.append(log_weights(res, part, num_samples, seed=seed)["log_w"].mean(1))
    a, o = np.concatenate(amortized), np.concatenate(optimised)
    ex = Layout.of(contract).example
    ds = xr.Dataset({"elbo_amortized": (ex, a), "elbo_optimised": (ex, o),
                     "gap": (ex, o - a)}, coords={ex: np.arange(len(a))})
    ds.attrs.update(mean_gap=float((o - a).mean()), mean_elbo_amortized=float(a.mean()),
                    mean_elbo_optimised=float(o.mean()))
    return ds
