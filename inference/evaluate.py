"""Per-example importance weights, and the scores built from them: ELBO, IWAE bound, KL per dim.

Both backends share this code: the guide runs under a ``"particles"`` plate, the model is
replayed against it, and every site's log density is read off the traces. On NumPyro the chunk
function is compiled once (``jax.jit``); on Pyro it runs eagerly without autograd.
"""
from __future__ import annotations

import numpy as np

from .fit import prepare_x

__all__ = ["log_weights", "evaluate"]

#: rows (particles x examples) pushed through the decoder in one call
_MAX_ROWS = 1 << 16


def _unwrap(fn):
    """Strip the expand/mask wrappers that plates and masks put around a distribution."""
    while type(fn).__name__ in ("ExpandedDistribution", "MaskedDistribution"):
        fn = fn.base_dist
    return fn


def _per_dim_log_prob(bk, fn, value):
    """Per-dimension log density for factorised priors/guides and mixtures of diagonal
    Gaussians (mixture, vamp); ``None`` where the marginals have no closed form (flows)."""
    fn = _unwrap(fn)
    name = type(fn).__name__
    if name == "Independent" and fn.reinterpreted_batch_ndims == 1:
        base = _unwrap(fn.base_dist)
        if type(base).__name__ in ("Normal", "Laplace", "StudentT", "Cauchy"):
            return base.log_prob(value)
    if name == "MixtureSameFamily":
        comp = _unwrap(fn.component_distribution)
        if type(comp).__name__ == "Independent" and type(_unwrap(comp.base_dist)).__name__ == "Normal":
            lp = _unwrap(comp.base_dist).log_prob(value[..., None, :])   # (..., K, D)
            lp = lp + bk.log_softmax(bk.mixture_logits(fn))[..., None]
            return bk.logsumexp(lp, axis=-2)
    return None


def _shared_draws(fn, eps):
    """z = loc + scale * eps for a (diagonal) Normal guide: the same ``eps`` for every example."""
    fn = _unwrap(fn)
    if type(fn).__name__ == "Independent":
        fn = _unwrap(fn.base_dist)
    if type(fn).__name__ != "Normal":
        raise ValueError(f"common_noise=True needs a Normal guide for 'z', got "
                         f"{type(fn).__name__}; use common_noise=False")
    return fn.loc + fn.scale * eps


def _make_chunk_fn(res, num_particles, keep=()):
    """``(params, seed, x, kw, eps) -> dict`` of (particles, examples) arrays for one chunk;
    ``eps`` (particles, 1, latent) fixes the guide's draws of ``z`` (None: draw them).

    Kept on the built model, so repeated calls reuse NumPyro's compilation."""
    cache = res.model.__dict__.setdefault("_chunk_fns", {})
    key = (int(num_particles), tuple(keep))
    if key not in cache:
        cache[key] = _build_chunk_fn(res.bk, res.model, *key)
    return cache[key]


def _build_chunk_fn(bk, model, num_particles, keep):
    dim = -(model.max_plate_nesting + 1)

    def vectorized(fn):
        def run(*args, **kwargs):
            with bk.plate("particles", num_particles, dim=dim):
                return fn(*args, **kwargs)
        return run

    def chunk(params, seed, x, kw, eps=None):
        guide = bk.with_params(vectorized(model.guide), params)
        gtr = bk.get_trace(bk.seed(guide, seed), x, **kw)
        if eps is not None:
            z = _shared_draws(gtr["z"]["fn"], eps)
            gtr = bk.get_trace(bk.seed(bk.condition(guide, {"z": z}), seed), x, **kw)
            gtr["z"] = {**gtr["z"], "is_observed": False}     # a draw of q, for replay
        mdl = bk.with_params(vectorized(model.model), params)
        mtr = bk.get_trace(bk.replay(bk.seed(mdl, seed), gtr), x, **kw)
        out = {"log_q": 0.0, "log_prior": 0.0, "log_lik": 0.0}
        for tr, key in ((gtr, "log_q"), (mtr, None)):
            for name, site in bk.sample_sites(tr).items():
                if name in model.training_sites:       # e.g. M2's auxiliary classifier term
                    continue
                if model.data_plate not in {f.name for f in site["cond_indep_stack"]}:
                    raise ValueError(f"site {name!r} is outside plate {model.data_plate!r}; "
                                     "per-example scores need every sample site inside it")
                lp = site["fn"].log_prob(site["value"])
                k = key or ("log_lik" if site["is_observed"] else "log_prior")
                out[k] = out[k] + lp
        for name in keep:
            if name in gtr:
                out[f"value_{name}"] = gtr[name]["value"]
        if "z" in gtr and "z" in mtr:
            q = _per_dim_log_prob(bk, gtr["z"]["fn"], gtr["z"]["value"])
            p = _per_dim_log_prob(bk, mtr["z"]["fn"], mtr["z"]["value"])
            if q is not None and p is not None:
                out["kl_dim"] = (q - p).mean(0)                               # (examples, D)
        return out

    return bk.compile(chunk)


def log_weights(res, x, num_samples=1000, seed=0, keep=(), y=None, common_noise=False):
    """Log importance weights log p(x, z) - log q(z|x) for each example and draw.

    Parameters
    ----------
    res : FitResult
    x : Split or array (N, D)
    num_samples : int
        Draws z ~ q(z|x) per example.
    seed : int
    keep : tuple of str
        Guide sites whose draws to return as well (e.g. ``("z",)``).
    y : array (N,), optional
        Labels to condition on, for models with labels (``log_w`` is then that of p(x, y, z)).
    common_noise : bool
        Draw z = loc(x) + scale(x) * eps with the same standard-normal ``eps`` (from ``seed``)
        for every example (common random numbers; needs a Normal guide for ``z``). Each
        example's weights then depend only on that example and ``seed``, not on which other
        examples share the call, so a score for one row matches its score in a batch.

    Returns
    -------
    dict of NumPy arrays
        ``log_w``, ``log_lik``, ``log_prior``, ``log_q``: shape (N, num_samples);
        ``kl_dim`` (N, latent_dim) when the prior has per-dimension marginals; and
        ``value_<site>`` (N, num_samples, ...) for each kept site.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> log_weights(res, data.test.x[:5], num_samples=10)["log_w"].shape
    (5, 10)
    """
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    x = prepare_x(res.model, x, "evaluation data")
    bk = res.bk
    s_chunk = min(int(num_samples), 100)
    width = max([x.shape[1], *getattr(res.model, "hidden", (256,))])
    n_chunk = max(1, min(len(x), _MAX_ROWS * 64 // (s_chunk * width)))
    fn = _make_chunk_fn(res, s_chunk, tuple(keep))
    if common_noise and getattr(res.model, "latent_dim", None) is None:
        raise ValueError("common_noise=True needs a model with a latent_dim attribute (VAE, "
                         "SSVAE); use common_noise=False for this model")
    rows = []
    for start in range(0, len(x), n_chunk):
        xb = x[start:start + n_chunk]
        pad = n_chunk - len(xb)
        if pad and bk.name == "numpyro":        # one compiled shape: pad, then drop the padding
            xb = np.concatenate([xb, np.repeat(xb[-1:], pad, axis=0)])
        xb_bk = bk.asarray(xb)
        kw = {}
        if y is not None:
            yb = np.asarray(y)[start:start + n_chunk]
            if pad and bk.name == "numpyro":
                yb = np.concatenate([yb, np.repeat(yb[-1:], pad)])
            kw["y"] = bk.asarray_int(yb)
        parts = []
        for j, s0 in enumerate(range(0, int(num_samples), s_chunk)):
            chunk_seed = int(np.random.SeedSequence([int(seed), start, j]).generate_state(1)[0] >> 1)
            eps = None
            if common_noise:
                rng = np.random.default_rng([int(seed), j])
                eps = bk.asarray(rng.standard_normal((s_chunk, 1, res.model.latent_dim))
                                 .astype(np.float32))
            out = fn(res.params, chunk_seed, xb_bk, kw, eps)
            parts.append({k: bk.to_numpy(v) for k, v in out.items()})
        n_keep = n_chunk - pad
        chunk = {k: np.concatenate([np.broadcast_to(p[k], p["log_lik"].shape) for p in parts],
                                   axis=0)[:num_samples, :n_keep]
                 for k in ("log_q", "log_prior", "log_lik")}
        for k in parts[0]:
            if k.startswith("value_"):
                vals = np.concatenate([np.broadcast_to(p[k], p["log_lik"].shape + p[k].shape[2:])
                                       for p in parts], axis=0)[:num_samples, :n_keep]
                chunk[k] = np.swapaxes(vals, 0, 1)
        if "kl_dim" in parts[0]:
            chunk["kl_dim"] = np.mean([p["kl_dim"][:n_keep] for p in parts], axis=0)
        rows.append(chunk)
    out = {k: np.concatenate([r[k] for r in rows], axis=-1 if k in ("log_q", "log_prior",
                                                                        "log_lik") else 0)
           for k in rows[0]}
    for k in ("log_q", "log_prior", "log_lik"):
        out[k] = out[k].T.astype(np.float64)
    out["log_w"] = out["log_lik"] + out["log_prior"] - out["log_q"]
    return out


def evaluate(res, data, num_samples=1000, seed=0) -> dict:
    """Test scores per example (nats): ELBO, importance-weighted log-likelihood, KL per dim.

    Parameters
    ----------
    res : FitResult
    data : Split or array (N, D)
    num_samples : int
        Importance samples per example for the IWAE bound log (1/K) sum_k w_k, which tightens
        towards log p(x) as K grows.
    seed : int

    Returns
    -------
    dict
        ``elbo`` (mean ELBO), ``log_likelihood`` (mean IWAE bound), ``reconstruction``
        (mean E_q log p(x|z)), ``kl`` (mean E_q[log q - log p]), ``kl_per_dim`` (NumPy array,
        per latent dim: KL between q(z_d|x) and the prior's marginal of dim d; NaN where the
        prior has no closed-form marginals, e.g. ``flow``), ``active_units`` (dims whose
        posterior mean varies over x by more than 0.01, Burda et al. 2016), ``num_samples``,
        ``num_examples``.

    References
    ----------
    Burda, Grosse & Salakhutdinov (2016), "Importance Weighted Autoencoders", ICLR.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> scores = evaluate(res, data.test, num_samples=20)
    >>> scores["log_likelihood"] >= scores["elbo"]
    True
    """
    from .predict import encode

    lw = log_weights(res, data, num_samples=num_samples, seed=seed)
    log_w = lw["log_w"]
    m = log_w.max(axis=1, keepdims=True)
    iwae = (m[:, 0] + np.log(np.mean(np.exp(log_w - m), axis=1)))
    latent_dim = getattr(res.model, "latent_dim", None)
    kl_dim = (lw["kl_dim"].mean(axis=0) if "kl_dim" in lw
              else np.full(latent_dim or 0, np.nan))
    scores = {
        "elbo": float(log_w.mean()),
        "log_likelihood": float(iwae.mean()),
        "reconstruction": float(lw["log_lik"].mean()),
        "kl": float((lw["log_q"] - lw["log_prior"]).mean()),
        "kl_per_dim": kl_dim,
        "num_samples": int(num_samples),
        "num_examples": int(log_w.shape[0]),
    }
    if latent_dim:
        z = encode(res, data)
        scores["active_units"] = int((z.var(axis=0) > 0.01).sum())
    return scores
