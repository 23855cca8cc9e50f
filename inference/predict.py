"""Using a fitted model: generate, encode, reconstruct, classify. Arrays in and out are NumPy."""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax

from probvae.memory import check_allocation, round_down

from .inputs import check_condition, check_labels, check_seed, model_batch
from .scoring import (_checked, _num_rows, _site_mean, check_samples, class_probabilities,
                      example_batch, exclusive, is_classifier, label_site, log_weights,
                      missing_of, posterior_means, row_bytes, site_means)

__all__ = ["sample", "encode", "reconstruct", "predict"]


@exclusive
def sample(res, n=16, seed=0, mean=True, **model_kwargs):
    """Generate ``n`` new examples: the latents from the prior, then the data from the decoder
    (the contract's first observed site).

    Parameters
    ----------
    res : FitResult
    n : int
    seed : int
    mean : bool
        Return the likelihood's mean for each z (default, the usual picture of a sample);
        ``False`` returns a draw from p(x|z) as well.
    **model_kwargs
        Passed to the model (e.g. ``y=3`` for models with labels). For a conditional model,
        ``condition=``: one row of K values for all ``n`` examples, or ``n`` rows
        (``condition=pv.data.one_hot(3, 10)``: ``n`` examples of class 3).

    Returns
    -------
    numpy.ndarray, shape (n,) + the observed site's event_shape

    Raises
    ------
    probvae.memory.TooLargeError
        Before drawing anything, when ``n`` examples would not fit in half of the memory
        available (``n`` x :func:`~probvae.inference.scoring.row_bytes`): draw in chunks.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> sample(res, n=16, seed=1).shape
    (16, 64)

    A conditional VAE samples for given conditions (here one row for all, class 3):

    >>> cvae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,), condition_dim=10)
    >>> cres = pv.fit(cvae, data.train, condition=pv.data.one_hot(data.train.y, 10), epochs=1,
    ...               progress=False)
    >>> sample(cres, n=4, condition=pv.data.one_hot(3, 10)).shape
    (4, 64)
    """
    n, seed = _check_count(n), check_seed(seed)
    _check_generated(res, n, "pv.sample")
    bk = res.bk
    if model_kwargs.get("y") is not None:
        model_kwargs["y"] = bk.asarray_int(check_labels(res.model, model_kwargs["y"], n))
    condition = check_condition(res.model, model_kwargs.pop("condition", None), n,
                                broadcast=True)
    if condition is not None:
        model_kwargs["condition"] = bk.asarray(condition)
    try:
        tr = _checked(bk.get_trace, bk.seed(res.bound(res.model.model), seed), None, n=int(n),
                      **model_kwargs)
    except TypeError as err:
        raise TypeError("sample needs a model that accepts model(x=None, n=N): "
                        f"{err}") from None
    site = tr[res.model.contract.observed_names[0]]
    return np.asarray(bk.to_numpy(_site_mean(site) if mean else site["value"]), dtype=np.float32)


def _check_generated(res, n, what="pv.sample", extra=0, per=None, name="n", fix=None):
    """Refuse ``n`` generated examples (``per`` bytes each, default ``row_bytes``, plus
    ``extra``) that would not fit in memory, before any is drawn; the message names setting
    ``name`` and suggests chunks of a size that fits (or says ``fix(k)``, ``k`` that size)."""
    per = (row_bytes(res.model) if per is None else int(per)) + int(extra)

    def way_round(budget):
        k = round_down(budget // per)
        return fix(k) if fix else (f"draw in chunks: call {what} several times with {name}={k} "
                                   "and a different seed each time, and concatenate the results")
    check_allocation(n * per, f"{name}={n}", way_round, what=what,
                     detail=f"{name} x {per} bytes per example")


def _check_count(n) -> int:
    """``n`` as a number of examples to generate: an integer >= 1."""
    if n is None or isinstance(n, bool) or not isinstance(n, (int, np.integer, float)) \
            or float(n) != int(n) or int(n) < 1:
        raise ValueError(f"n (how many examples to generate) must be an integer >= 1, got {n!r}")
    return int(n)


def predict(res, data, method="classifier", num_samples=50, seed=0):
    """Class probabilities for each example, from a model that learns labels (e.g. SSVAE).

    Parameters
    ----------
    res : FitResult
    data : Split or array (N, D)
    method : {"classifier", "model"}
        ``"classifier"`` (default, one network pass): the guide's q(y|x). ``"model"``: the
        generative model's own posterior by Bayes' rule, p(y|x) = p(y) p(x|y) / p(x), with each
        p(x|y) estimated by importance sampling from q(z|x, y) (the IWAE bound,
        ``num_samples`` draws per class). It costs ``num_classes * num_samples`` passes per
        example and is often more accurate: q(y|x) is trained on the few labels, p(x|y) on
        every example.
    num_samples : int
        Draws per example and class for ``method="model"``.
    seed : int

    Returns
    -------
    numpy.ndarray, shape (N, num_classes)

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(32,))
    >>> res = pv.fit(ss, data.train, labels=data.train.label_subset(n_per_class=2),
    ...              objective="enum", epochs=1, progress=False)
    >>> predict(res, data.test.x).shape
    (360, 10)
    >>> predict(res, data.test.x[:5], method="model", num_samples=10).shape
    (5, 10)
    """
    if not is_classifier(res.model):
        raise ValueError(f"{type(res.model).__name__} has no classifier; predict needs a model "
                         "that learns labels, such as SSVAE")
    if method not in ("classifier", "model"):
        raise ValueError(f"method must be 'classifier' (q(y|x)) or 'model' (Bayes' rule under "
                         f"the generative model), got {method!r}")
    if method == "model":        # per class: every example's weights, then a logsumexp over them
        check_samples(res.model, _num_rows(data), num_samples, "pv.predict(method='model')",
                      per_draw=16)
    batch = model_batch(res.model, data, "data to classify", missing_of(res))
    x = batch["x"]
    if method == "classifier":
        return class_probabilities(res.model, res.param_state, x).astype(np.float32)
    # log p(x, y=c) up to the same constant for every class: the IWAE bound given y = c
    log_joint = np.stack([logsumexp(log_weights(res, data, num_samples=num_samples, seed=seed,
                                                y=np.full(len(x), c))["log_w"], axis=1)
                          for c in range(label_site(res.model).num_values)], axis=1)
    return softmax(log_joint, axis=1).astype(np.float32)


def encode(res, data, seed=0, y=None, site=None, condition=None):
    """Posterior means E_q[z|x] for each example (a feature extractor), for the latent sites
    the model's contract declares.

    For models with labels, the latents are encoded given ``y`` (default: the classifier's
    best guess).

    ``data`` is 2-D (examples, features); with a model trained on data with missing values,
    NaN cells are missing.

    Parameters
    ----------
    res : FitResult
    data : Split or array (N, D)
    seed : int
    y : array (N,), optional
        Labels, for models with labels.
    site : str, optional
        One latent site to encode, by name. A discrete one (a label ``y``, a cluster) gives
        its posterior probabilities, (N, num_values): a classifier's q(y|x), else the guide's
        probabilities for it; take ``.argmax(1)`` for the likeliest value.
    condition : array (N, K), optional
        For a conditional model: each example's condition (q(z|x, c)).

    Returns
    -------
    numpy.ndarray, shape (N,) + event_shape
        With ``site=``, or for a model with one continuous latent (VAE, SSVAE: ``z``).
    dict of numpy.ndarray
        For a model with several continuous latents (ADGM's ``a`` and ``z``, a user's
        hierarchy): ``{site: (N, *event_shape)}`` in the contract's order. Discrete latents are
        left out unless named by ``site=``.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> encode(res, data.test.x).shape
    (360, 2)
    >>> encode(res, data.test.x, site="z").shape
    (360, 2)
    """
    contract = res.model.contract
    chosen = None if site is None else contract.latent(site)
    batch = example_batch(res, data, "data to encode", y, condition)
    if chosen is not None and chosen.discrete and is_classifier(res.model) \
            and chosen == label_site(res.model):
        return class_probabilities(res.model, res.param_state, batch["x"]).astype(np.float32)
    names = contract.continuous_names if chosen is None else (chosen.name,)
    if not names:
        raise ValueError(f"{type(res.model).__name__} has no continuous latent site to encode "
                         f"(its latent sites: {list(contract.latent_names)}); name one with "
                         "site=")
    means = posterior_means(res, batch, seed, names)
    missing = [n for n in names if n not in means]
    if missing:
        raise ValueError(f"the guide does not sample {missing} for these data; encode the "
                         "latent sites it does sample")
    return means[names[0]] if len(names) == 1 else means


def reconstruct(res, data, seed=0, y=None, condition=None):
    """Decode each example's posterior means: the likelihood's mean of the observed site with
    every continuous latent at E_q[latent|x].

    For models with labels, both encoder and decoder are given ``y`` (default: the
    classifier's best guess); for a conditional model, both see ``condition`` (N, K).

    Returns
    -------
    numpy.ndarray, same shape as the input

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> reconstruct(res, data.test.x[:5]).shape
    (5, 64)
    """
    batch = example_batch(res, data, "data to reconstruct", y, condition)
    return site_means(res, batch, posterior_means(res, batch, seed), seed=seed)
