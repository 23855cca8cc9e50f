"""Using a fitted model: generate, encode, reconstruct. Arrays in and out are NumPy."""
from __future__ import annotations

import numpy as np

from .fit import prepare_x

__all__ = ["sample", "encode", "reconstruct", "predict", "class_probabilities"]

_CHUNK = 4096


def _site_mean(site):
    fn = site["fn"]
    try:
        return fn.mean
    except NotImplementedError:
        return site["value"]


def sample(res, n=16, seed=0, mean=True, **model_kwargs):
    """Generate ``n`` new examples: z from the prior, then x from the decoder.

    Parameters
    ----------
    res : FitResult
    n : int
    seed : int
    mean : bool
        Return the likelihood's mean for each z (default, the usual picture of a sample);
        ``False`` returns a draw from p(x|z) as well.
    **model_kwargs
        Passed to the model (e.g. ``y=3`` for models with labels).

    Returns
    -------
    numpy.ndarray, shape (n, input_dim)

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> sample(res, n=16, seed=1).shape
    (16, 64)
    """
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    bk = res.bk
    if model_kwargs.get("y") is not None:
        model_kwargs["y"] = bk.asarray_int(_check_labels(res.model, model_kwargs["y"], int(n)))
    try:
        tr = bk.get_trace(bk.seed(res.bound(res.model.model), seed), None, n=int(n), **model_kwargs)
    except TypeError as err:
        raise TypeError("sample needs a model that accepts model(x=None, n=N): "
                        f"{err}") from None
    site = tr["x"]
    return np.asarray(bk.to_numpy(_site_mean(site) if mean else site["value"]), dtype=np.float32)


def _check_labels(model, y, n):
    k = getattr(model, "num_classes", None)
    if k is None:
        raise ValueError(f"{type(model).__name__} has no labels; drop y=")
    y = np.asarray(y)
    if y.ndim == 0:
        y = np.full(n, int(y))
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be one integer label or {n} integer labels, got {y.shape} {y.dtype}")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"y must lie in 0..{k - 1}, got values from {y.min()} to {y.max()}")
    return y


def _labels_for(res, x, y):
    """Labels to condition on: given ones (checked), else the classifier's best guess."""
    if not getattr(res.model, "is_classifier", False):
        return None
    if y is None:
        return predict(res, x).argmax(axis=1)
    return _check_labels(res.model, y, len(x))


def _chunks(res, x, y):
    bk = res.bk
    for i in range(0, len(x), _CHUNK):
        kw = {} if y is None else {"y": bk.asarray_int(y[i:i + _CHUNK])}
        yield i, bk.asarray(x[i:i + _CHUNK]), kw


def _guide_z(res, x, y, seed):
    bk = res.bk
    out = []
    for _, xb, kw in _chunks(res, x, y):
        tr = bk.get_trace(bk.seed(res.bound(res.model.guide), seed), xb, **kw)
        out.append(bk.to_numpy(_site_mean(tr["z"])))
    return np.concatenate(out)


def class_probabilities(model, params, x):
    """q(y|x) for a built model with a classifier and given parameters (used during training)."""
    fn = model.__dict__.get("_class_probs")
    if fn is None:
        bk = model.bk

        def probs(params, xb):
            return bk.with_params(lambda v: model._classify(v).probs, params)(xb)

        fn = model.__dict__["_class_probs"] = bk.compile(probs)
    bk = model.bk
    return np.concatenate([np.asarray(bk.to_numpy(fn(params, bk.asarray(x[i:i + _CHUNK]))))
                           for i in range(0, len(x), _CHUNK)])


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
    if not getattr(res.model, "is_classifier", False):
        raise ValueError(f"{type(res.model).__name__} has no classifier; predict needs a model "
                         "that learns labels, such as SSVAE")
    x = prepare_x(res.model, data, "data to classify")
    if method == "classifier":
        return class_probabilities(res.model, res.params, x).astype(np.float32)
    if method != "model":
        raise ValueError(f"method must be 'classifier' (q(y|x)) or 'model' (Bayes' rule under "
                         f"the generative model), got {method!r}")
    from scipy.special import logsumexp, softmax

    from .evaluate import log_weights

    # log p(x, y=c) up to the same constant for every class: the IWAE bound given y = c
    log_joint = np.stack([logsumexp(log_weights(res, x, num_samples=num_samples, seed=seed,
                                                y=np.full(len(x), c))["log_w"], axis=1)
                          for c in range(res.model.num_classes)], axis=1)
    return softmax(log_joint, axis=1).astype(np.float32)


def encode(res, data, seed=0, y=None):
    """Posterior means E_q[z|x] for each example (a feature extractor).

    For models with labels, z is encoded given ``y`` (default: the classifier's best guess).

    Returns
    -------
    numpy.ndarray, shape (N, latent_dim)

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> encode(res, data.test.x).shape
    (360, 2)
    """
    x = prepare_x(res.model, data, "data to encode")
    return np.asarray(_guide_z(res, x, _labels_for(res, x, y), seed), dtype=np.float32)


def reconstruct(res, data, seed=0, y=None):
    """Decode each example's posterior mean: the likelihood's mean at z = E_q[z|x].

    For models with labels, both encoder and decoder are given ``y`` (default: the
    classifier's best guess).

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
    x = prepare_x(res.model, data, "data to reconstruct")
    bk = res.bk
    y = _labels_for(res, x, y)
    z = _guide_z(res, x, y, seed)
    out = []
    for i, xb, kw in _chunks(res, x, y):
        fn = bk.condition(res.bound(res.model.model), {"z": bk.asarray(z[i:i + _CHUNK])})
        tr = bk.get_trace(bk.seed(fn, seed), xb, **kw)
        out.append(bk.to_numpy(_site_mean(tr["x"])))
    return np.asarray(np.concatenate(out), dtype=np.float32)
