"""Test scores from importance weights: ELBO, IWAE bound, KL per latent dim, active units."""
from __future__ import annotations

import numpy as np

from .predict import encode
from .scoring import active_units, log_mean_exp, log_weights

__all__ = ["evaluate"]


def evaluate(res, data, num_samples=1000, seed=0) -> dict:
    """Test scores per example (nats): ELBO, importance-weighted log-likelihood, KL per dim.

    Parameters
    ----------
    res : FitResult
    data : Split or array (N, D)
        For a model trained with ``missing="mask"``, NaN cells are missing: the scores are of
        the observed cells only.
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
    lw = log_weights(res, data, num_samples=num_samples, seed=seed)
    log_w = lw["log_w"]
    iwae = log_mean_exp(log_w, axis=1)
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
        scores["active_units"] = int(active_units(encode(res, data))[1].sum())
    return scores
