"""Generation from a fitted model: decode latents, interpolate, traverse, synthesize data.

Arrays in and out are NumPy. Every function works on both backends and on any model whose
``model(x=None, n=N)`` generates (VAE, SSVAE, and user pairs with sites ``"z"`` and ``"x"``).
"""
from __future__ import annotations

import numpy as np

from .inputs import check_labels, check_seed, model_batch
from .predict import _check_count, _check_generated, encode, predict, sample
from .scoring import CHUNK, _checked, _site_mean, exclusive

__all__ = ["decode", "interpolate", "traverse", "synthesize"]


def _latent_dim(res):
    dim = getattr(res.model, "latent_dim", None)
    if dim is None:
        raise ValueError(f"{type(res.model).__name__} does not declare latent_dim; decode needs "
                         "a model with a latent_dim attribute")
    return int(dim)


def _decoded_bytes(res) -> int:
    """Bytes per decoded row that decode holds: its float32 chunks and their concatenation
    (the networks see one chunk of rows at a time)."""
    return 8 * int(getattr(res.model, "input_dim", 0) or 1)


def _labels(res, y, n):
    return None if y is None else check_labels(res.model, y, n)


@exclusive
def decode(res, z, y=None, mean=True, seed=0):
    """Decode latent vectors: the likelihood's mean (or a draw) of p(x | z) for each row of z.

    Parameters
    ----------
    res : FitResult
    z : array (N, latent_dim)
    y : int or array (N,), optional
        Labels for models with labels (one label for all rows, or one per row). Without it a
        conditional model draws y from its prior.
    mean : bool
        Return E[x | z] (default); ``False`` returns a draw from p(x | z).
    seed : int

    Returns
    -------
    numpy.ndarray, shape (N, input_dim)

    Examples
    --------
    >>> import numpy as np, probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> decode(res, np.zeros((3, 2))).shape
    (3, 64)
    """
    dim = _latent_dim(res)
    z = z if isinstance(z, np.ndarray) else np.asarray(z, dtype=np.float32)
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2 or z.shape[1] != dim or len(z) == 0:
        raise ValueError(f"z must have shape (N, {dim}) with N >= 1, got {z.shape}")
    _check_generated(res, len(z), "pv.decode", per=_decoded_bytes(res) + 5 * dim, name="len(z)",
                     fix=lambda k: f"decode z in parts of {k} rows (z[:{k}], z[{k}:{2 * k}], "
                                   "...) and concatenate the results")
    z = np.asarray(z, dtype=np.float32)
    if not np.all(np.isfinite(z)):
        raise ValueError("z contains NaN or infinite values")
    y, seed = _labels(res, y, len(z)), check_seed(seed)
    bk = res.bk
    out = []
    for i in range(0, len(z), CHUNK):
        zb = z[i:i + CHUNK]
        kw = {} if y is None else {"y": bk.asarray_int(y[i:i + CHUNK])}
        fn = bk.condition(res.bound(res.model.model), {"z": bk.asarray(zb)})
        site = _checked(bk.get_trace, bk.seed(fn, seed), None, n=len(zb), **kw)["x"]
        out.append(bk.to_numpy(_site_mean(site) if mean else site["value"]))
    return np.asarray(np.concatenate(out), dtype=np.float32)


def interpolate(res, x_start, x_end, steps=8, y=None, seed=0):
    """Decode evenly spaced points on the line between two inputs' posterior means.

    Parameters
    ----------
    res : FitResult
    x_start, x_end : array (input_dim,)
        The two inputs; their codes are ``encode(res, x)``.
    steps : int
        Number of points, both ends included.
    y : int, optional
        For models with labels: the class to decode under at every step (default: the
        classifier's guess for ``x_start``), so the path changes style, not class.
    seed : int

    Returns
    -------
    numpy.ndarray, shape (steps, input_dim)

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> interpolate(res, data.test.x[0], data.test.x[1], steps=5).shape
    (5, 64)
    """
    steps = int(steps)
    if steps < 2:
        raise ValueError(f"interpolate needs steps >= 2 (both ends), got {steps}")
    _check_generated(res, steps, "pv.interpolate", name="steps",
                     per=_decoded_bytes(res) + 12 * _latent_dim(res) + 4,
                     fix=lambda k: f"fewer steps, e.g. steps={max(k, 2)}")
    pair = np.stack([np.asarray(x_start, np.float32).ravel(),
                     np.asarray(x_end, np.float32).ravel()])
    pair = model_batch(res.model, pair, "x_start/x_end", res.options.get("missing"))["x"]
    if getattr(res.model, "is_classifier", False) and y is None:
        y = int(predict(res, pair[:1]).argmax())
    y = None if y is None else int(check_labels(res.model, y, 1)[0])
    z = encode(res, pair, seed=seed, y=None if y is None else [y, y])
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return decode(res, (1 - t) * z[0] + t * z[1], y=y, seed=seed)


def traverse(res, x=None, z=None, dims=None, values=None, y=None, seed=0):
    """Latent traversals: vary one latent dim at a time from an anchor and decode.

    Parameters
    ----------
    res : FitResult
    x : array (input_dim,), optional
        Anchor input; the anchor code is its posterior mean.
    z : array (latent_dim,), optional
        Anchor code given directly (default: zeros, the prior's centre for the usual priors).
    dims : sequence of int, optional
        Dims to traverse (default: all).
    values : array (steps,) or (len(dims), steps), optional
        Values the traversed dim takes (absolute, not offsets): one grid for every dim, or one
        row per dim, e.g. per-dim quantiles of the codes of a data set. Default
        ``linspace(-3, 3, 7)``.
    y : int, optional
        Class to decode under, for models with labels (default: the classifier's guess for
        ``x``, or class 0 when only ``z`` is given).
    seed : int

    Returns
    -------
    numpy.ndarray, shape (len(dims), steps, input_dim)

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=3, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> traverse(res, x=data.test.x[0], values=[-2, 0, 2]).shape
    (3, 3, 64)
    """
    dim = _latent_dim(res)
    if x is not None and z is not None:
        raise ValueError("traverse takes an anchor x or z, not both")
    if getattr(res.model, "is_classifier", False) and y is None:
        y = 0 if x is None else int(predict(res, np.asarray(x, np.float32).reshape(1, -1)).argmax())
    y = None if y is None else int(check_labels(res.model, y, 1)[0])
    if x is not None:
        x = np.asarray(x, np.float32).reshape(1, -1)
        anchor = encode(res, x, seed=seed, y=None if y is None else [y])[0]
    else:
        anchor = np.zeros(dim, np.float32) if z is None else np.asarray(z, np.float32).ravel()
        if anchor.shape != (dim,):
            raise ValueError(f"z must have shape ({dim},), got {anchor.shape}")
    dims = list(range(dim)) if dims is None else [int(d) for d in np.atleast_1d(dims)]
    if not dims or min(dims) < 0 or max(dims) >= dim:
        raise ValueError(f"dims must be latent dims in 0..{dim - 1}, got {dims}")
    values = np.linspace(-3, 3, 7) if values is None else np.asarray(values, np.float32)
    if values.ndim == 1:
        values = np.broadcast_to(values, (len(dims), len(values)))
    if values.ndim != 2 or values.shape[0] != len(dims) or values.shape[1] < 1:
        raise ValueError(f"values must have shape (steps,) or ({len(dims)}, steps), "
                         f"got {values.shape}")
    steps = values.shape[1]
    codes = np.repeat(anchor[None, None], len(dims), 0).repeat(steps, 1)   # (dims, steps, latent)
    for row, d in enumerate(dims):
        codes[row, :, d] = values[row]
    out = decode(res, codes.reshape(-1, dim), y=y, seed=seed)
    return out.reshape(len(dims), steps, -1)


def synthesize(res, n, y=None, seed=0, mean=None):
    """Synthetic examples for data augmentation or release: z from the prior, x from the decoder.

    Parameters
    ----------
    res : FitResult
    n : int
    y : int or array (n,), optional
        Models with labels only: the classes to generate. Default: balanced classes
        (``0, 1, ..., K-1, 0, 1, ...``).
    seed : int
    mean : bool, optional
        E[x | z] or a draw from p(x | z). Default: the mean, except for a model of a table
        (``VAE.for_table``), which draws every cell and returns a DataFrame with the table's
        columns, levels and dtypes.

    Returns
    -------
    numpy.ndarray (n, input_dim)
        For models without labels.
    (numpy.ndarray (n, input_dim), numpy.ndarray (n,) of int)
        For models with labels: the examples and their classes.

    Raises
    ------
    probvae.memory.TooLargeError
        Before drawing anything, when ``n`` rows would not fit in half of the memory
        available: synthesize in chunks of a smaller ``n``.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(32,))
    >>> res = pv.fit(ss, data.train, labels=data.train.label_subset(n_per_class=2),
    ...              objective="enum", epochs=1, progress=False)
    >>> x, y = synthesize(res, 20)
    >>> x.shape, y[:12].tolist()
    ((20, 64), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
    """
    n = _check_count(n)
    k = getattr(res.model, "num_classes", None)
    lik = getattr(res.model, "likelihood", None)
    # beside sample's own: a table's DataFrame (a value and a temporary per cell), or labels
    extra = (16 * len(lik.table().names) if k is None and hasattr(lik, "decode") else
             24 if k is not None else 0)
    _check_generated(res, n, "pv.synthesize", extra=extra)
    if k is None:
        if y is not None:
            raise ValueError(f"{type(res.model).__name__} has no labels; drop y=")
        if hasattr(lik, "decode"):                        # a table: rows as a DataFrame
            return lik.decode(sample(res, n=n, seed=seed, mean=bool(mean)))
        return sample(res, n=n, seed=seed, mean=True if mean is None else mean)
    mean = True if mean is None else mean
    y = np.resize(np.arange(k), n) if y is None else check_labels(res.model, y, n)
    return sample(res, n=n, seed=seed, mean=mean, y=y), np.asarray(y, dtype=np.int64)
