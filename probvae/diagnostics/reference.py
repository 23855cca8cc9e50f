"""q(z|x) against references: NUTS on the exact p(z|x), and per-example optimised q.

References
----------
Cremer, Li & Duvenaud (2018), "Inference Suboptimality in Variational Autoencoders", ICML.
"""
from __future__ import annotations

import numpy as np

from .amortized import _inputs

__all__ = ["reference_posterior", "compare_posteriors", "amortization_gap"]


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

    from ..inference.fit import prepare_x
    from ..inference.predict import _labels_for

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
    >>> cmp = compare_posteriors(pv.diagnostics.latent_posterior(res, x, num_samples=100),
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

    from ..inference import FitResult, encode, log_weights
    from ..inference.fit import prepare_x
    from ..inference.predict import _labels_for
    from ..models import CustomModel

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

        pair = CustomModel(res.model.model, local_guide, res.backend)
        pair.training_sites = res.model.training_sites     # score the same p(x, ...) as res
        local = FitResult(pair, res.params, {}, res.objective)
        optimised.append(log_weights(local, xb, num_samples, seed=seed, y=yb)["log_w"].mean(1))
        amortized.append(log_weights(res, xb, num_samples, seed=seed, y=yb)["log_w"].mean(1))
    a, o = np.concatenate(amortized), np.concatenate(optimised)
    ds = xr.Dataset({"elbo_amortized": ("obs", a), "elbo_optimised": ("obs", o),
                     "gap": ("obs", o - a)}, coords={"obs": np.arange(len(xs))})
    ds.attrs.update(mean_gap=float((o - a).mean()), mean_elbo_amortized=float(a.mean()),
                    mean_elbo_optimised=float(o.mean()))
    return ds
