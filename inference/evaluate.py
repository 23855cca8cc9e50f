"""Test scores from importance weights: ELBO, IWAE bound, KL per latent site and dim, active units."""
from __future__ import annotations

import time

import numpy as np

from probvae import batch as batching

from .scoring import (_num_rows, active_units, check_samples, example_batch, log_mean_exp,
                      posterior_means, split_sites, weight_chunks)

__all__ = ["evaluate"]


#: examples x samples above which evaluate shows a progress bar by default
PROGRESS_ABOVE = 5_000_000
#: float64 temporaries per (example, draw) of a block while it is reduced (log-mean-exp, KL)
_REDUCE_BYTES = 24


def evaluate(res, data, num_samples=1000, seed=0, progress=None, condition=None) -> dict:
    """Test scores per example (nats): ELBO, importance-weighted log-likelihood, KL per dim.

    Parameters
    ----------
    res : FitResult
    data : Split or array (N, D)
        For a model trained with ``missing="mask"``, NaN cells are missing: the scores are of
        the observed cells only.
    num_samples : int
        Importance samples per example for the IWAE bound log (1/K) sum_k w_k, which tightens
        towards log p(x) as K grows. Memory stays bounded: examples are scored one block at a
        time and reduced at once (10,000 MNIST digits with 5,000 samples hold a few MB); a
        block that would not fit in half of the memory available is refused before scoring
        (:class:`~probvae.memory.TooLargeError`). The time grows as examples x samples.
    seed : int
    progress : bool, optional
        Show a progress bar over the blocks (default: when examples x samples exceeds
        :data:`PROGRESS_ABOVE`).
    condition : array (N, K), optional
        For a conditional model: each example's condition (the scores are then of
        log p(x | c)).

    Returns
    -------
    dict
        ``elbo`` (mean ELBO), ``log_likelihood`` (mean IWAE bound), ``reconstruction``
        (mean E_q log p(x|z)), ``kl`` (mean E_q[log q - log p]), ``kl_per_dim`` (NumPy array,
        per latent dim: KL between q(z_d|x) and the prior's marginal of dim d, from the first
        100 samples of each example; NaN where the prior has no closed-form marginals, e.g.
        ``flow``), ``active_units`` (dims whose posterior mean varies over x by more than
        0.01, Burda et al. 2016), ``num_samples``, ``num_examples``, ``seconds``.

        The latent dims are those of every continuous latent site of the model's contract:
        ``kl_per_site`` and ``active_per_site`` give them by site (``{name: array (size,)}``,
        ``{name: int}``); ``kl_per_dim`` is their concatenation in contract order (one latent,
        as for VAE and SSVAE: its dims) and ``active_units`` their total. Discrete latents (a
        label) have no dims here: their KL is in ``kl`` only.

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
    t0 = time.perf_counter()
    check_samples(res.model, _num_rows(data), num_samples, "pv.evaluate", hold=False,
                  per_draw=_REDUCE_BYTES)
    if progress is None:
        rows = batching.size(data) if isinstance(data, dict) else len(data)
        progress = rows * int(num_samples) > PROGRESS_ABOVE
    sums = {"elbo": 0.0, "log_likelihood": 0.0, "reconstruction": 0.0, "kl": 0.0}
    continuous = [s for s in res.model.contract.latents if not s.discrete]
    kl_dim, n = 0.0, 0
    for block in weight_chunks(res, data, num_samples=num_samples, seed=seed,
                               progress=progress, condition=condition):
        sums["elbo"] += float(block["log_w"].mean(axis=1).sum())
        sums["log_likelihood"] += float(log_mean_exp(block["log_w"], axis=1).sum())
        sums["reconstruction"] += float(block["log_lik"].mean(axis=1).sum())
        sums["kl"] += float((block["log_q"] - block["log_prior"]).mean(axis=1).sum())
        if "kl_dim" in block:
            kl_dim = kl_dim + block["kl_dim"].sum(axis=0)
        else:
            kl_dim = None
        n += len(block["log_w"])
    width = sum(s.size for s in continuous)
    scores = {k: v / n for k, v in sums.items()}
    scores["kl_per_dim"] = (np.asarray(kl_dim) / n if kl_dim is not None
                            else np.full(width, np.nan))
    scores["kl_per_site"] = split_sites(scores["kl_per_dim"], continuous)
    scores.update(num_samples=int(num_samples), num_examples=int(n))
    if continuous:
        means = posterior_means(res, example_batch(res, data, "data to encode",
                                                   condition=condition))
        scores["active_per_site"] = {s.name: int(active_units(
            means[s.name].reshape(len(means[s.name]), -1))[1].sum())
            for s in continuous if s.name in means}
        scores["active_units"] = sum(scores["active_per_site"].values())
    scores["seconds"] = time.perf_counter() - t0
    return scores
