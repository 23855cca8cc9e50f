"""Using a fitted model: generate, encode, reconstruct. Arrays in and out are NumPy."""
from __future__ import annotations

import numpy as np

from .fit import prepare_x

__all__ = ["sample", "encode", "reconstruct"]

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
    try:
        tr = bk.get_trace(bk.seed(res.bound(res.model.model), seed), None, n=int(n), **model_kwargs)
    except TypeError as err:
        raise TypeError("sample needs a model that accepts model(x=None, n=N): "
                        f"{err}") from None
    site = tr["x"]
    return np.asarray(bk.to_numpy(_site_mean(site) if mean else site["value"]), dtype=np.float32)


def _guide_z(res, x, seed):
    bk = res.bk
    out = []
    for i in range(0, len(x), _CHUNK):
        tr = bk.get_trace(bk.seed(res.bound(res.model.guide), seed), bk.asarray(x[i:i + _CHUNK]))
        out.append(bk.to_numpy(_site_mean(tr["z"])))
    return np.concatenate(out)


def encode(res, data, seed=0):
    """Posterior means E_q[z|x] for each example (a feature extractor).

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
    return np.asarray(_guide_z(res, x, seed), dtype=np.float32)


def reconstruct(res, data, seed=0):
    """Decode each example's posterior mean: the likelihood's mean at z = E_q[z|x].

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
    z = _guide_z(res, x, seed)
    out = []
    for i in range(0, len(x), _CHUNK):
        fn = bk.condition(res.bound(res.model.model), {"z": bk.asarray(z[i:i + _CHUNK])})
        tr = bk.get_trace(bk.seed(fn, seed), bk.asarray(x[i:i + _CHUNK]))
        out.append(bk.to_numpy(_site_mean(tr["x"])))
    return np.asarray(np.concatenate(out), dtype=np.float32)
