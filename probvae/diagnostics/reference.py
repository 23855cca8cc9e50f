"""q(z|x) against references: NUTS on the exact p(z|x), and per-example optimised q.

References
----------
Cremer, Li & Duvenaud (2018), "Inference Suboptimality in Variational Autoencoders", ICML.
"""
from __future__ import annotations

import numpy as np

from probvae import batch as batching
from probvae.inference import FitResult, encode, log_weights
from probvae.inference.scoring import example_batch, exclusive
from probvae.models import CustomModel

from .common import _inputs

__all__ = ["reference_posterior", "compare_posteriors", "amortization_gap"]


@exclusive
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

    data, _, labels = _inputs(x, y)
    batch = example_batch(res, data, "data",
                          labels if getattr(res.model, "is_classifier", False) else None)
    bk = res.bk
    draws = bk.nuts(res.model.model, res.params, batching.to_backend(bk, batch), int(chains),
                    int(num_samples), int(num_warmup), int(seed))
    if "z" not in draws:
        raise ValueError("reference_posterior needs a latent site named 'z'")
    idata = az.from_dict(posterior={"z": draws["z"]}, dims={"z": ["obs", "latent"]},
                         coords={"obs": np.arange(batching.size(batch)),
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


def _guide_scale(res, batch):
    """Posterior sds of the amortized Gaussian q(z|x) for the examples of ``batch``."""
    bk = res.bk
    tr = bk.get_trace(bk.seed(res.bound(res.model.guide), 0), **batching.to_backend(bk, batch))
    fn = tr["z"]["fn"]
    while not hasattr(fn, "scale") and hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return np.array(np.broadcast_to(np.asarray(bk.to_numpy(fn.scale)),
                                    (batching.size(batch), tr["z"]["value"].shape[-1])),
                    dtype=np.float32)


def local_gaussian_guide(bk, loc, scale, learn=True):
    """A guide with its own Gaussian q(z) per example: learned parameters ``local_loc`` and
    ``local_scale`` starting at ``loc`` and ``scale`` (``learn=False``: fixed at them; a padded
    batch repeats the last row). Written once with ``bk``, so it runs on both backends."""
    n = len(loc)

    def guide(x=None, **_):
        rows = x.shape[0]
        if learn:
            q_loc = bk.param("local_loc", np.asarray(loc, np.float32))
            q_scale = bk.param("local_scale", np.asarray(scale, np.float32),
                               constraint=bk.constraints.positive)
        else:
            pad = max(rows - n, 0)
            q_loc = bk.asarray(np.concatenate([loc, np.repeat(loc[-1:], pad, 0)])[:rows])
            q_scale = bk.asarray(np.concatenate([scale, np.repeat(scale[-1:], pad, 0)])[:rows])
        with bk.plate("data", rows):
            bk.sample("z", bk.dist.Normal(q_loc, q_scale).to_event(1))
    return guide


@exclusive
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

    rows = example_batch(res, _inputs(x, None)[0], "data", y)
    bk = res.bk
    amortized, optimised = [], []
    for start, part, _ in batching.chunks(rows, batch):
        loc0, scale0 = encode(res, part, seed=seed), _guide_scale(res, part)
        fitted = bk.run_svi(res.model.model, local_gaussian_guide(bk, loc0, scale0), res.params,
                            batching.to_backend(bk, part), int(steps), float(lr),
                            int(num_particles), int(seed))
        local = local_gaussian_guide(bk, fitted["local_loc"], fitted["local_scale"], learn=False)
        pair = CustomModel(res.model.model, local, res.backend)
        pair.training_sites = res.model.training_sites     # score the same p(x, ...) as res
        scored = FitResult(pair, res.params, {}, res.objective, dict(res.options))
        optimised.append(log_weights(scored, part, num_samples, seed=seed)["log_w"].mean(1))
        amortized.append(log_weights(res, part, num_samples, seed=seed)["log_w"].mean(1))
    a, o = np.concatenate(amortized), np.concatenate(optimised)
    ds = xr.Dataset({"elbo_amortized": ("obs", a), "elbo_optimised": ("obs", o),
                     "gap": ("obs", o - a)}, coords={"obs": np.arange(len(a))})
    ds.attrs.update(mean_gap=float((o - a).mean()), mean_elbo_amortized=float(a.mean()),
                    mean_elbo_optimised=float(o.mean()))
    return ds
