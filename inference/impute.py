"""Missing values filled from a fitted model: the importance-weighted posterior predictive."""
from __future__ import annotations

import numpy as np
from scipy.special import softmax

from probvae import batch as batching
from probvae.data import Split
from probvae.memory import check_allocation, round_down

from .generate import decode
from .inputs import model_batch
from .scoring import _observed_width, check_samples, label_site, log_weights

__all__ = ["impute"]

#: decoded values (examples x draws x features) held at once
_MAX_VALUES = 1 << 24


def _original(data):
    """The user's array (dtype kept) whose observed cells are returned unchanged."""
    if isinstance(data, Split):
        return data.x
    x = np.asarray(data)
    if x.dtype.kind not in "fiu":
        x = x.astype(np.float32)
    return x.reshape(len(x), -1) if x.ndim == 3 else x


def impute(res, data, num_samples=100, multiple=None, seed=0, condition=None):
    """Fill the missing (NaN) cells of ``data`` from the model; observed cells are unchanged.

    Each example's missing cells get the importance-weighted posterior predictive mean
    sum_k w_k E[x_miss | z_k], with z_k ~ q(z|x_obs) and w_k proportional to
    p(x_obs, z_k) / q(z_k|x_obs) (MIWAE's single imputation). With ``multiple=m`` it returns
    m draws instead (multiple imputation): z resampled by the weights, then x_miss drawn
    from p(x_miss | z). Here z is every latent site of the model's contract (a label too),
    each draw decoded with all of them fixed. Observed cells are copied from ``data`` bit for
    bit.

    Parameters
    ----------
    res : FitResult
        Best trained with ``missing="mask"`` on data with gaps like these.
    data : Split, array (N, D) or DataFrame
        NaN marks a missing cell. A DataFrame (for a model made by ``VAE.for_table``) comes
        back as a DataFrame like it: same columns, index and dtypes, gaps filled (numbers by
        their predictive mean, categories and binary columns by their likeliest level).
    num_samples : int
        Importance samples per example.
    multiple : int, optional
        Number of imputations to draw; ``None`` gives the single (mean) imputation.
    seed : int
    condition : array (N, K), optional
        For a conditional model: each row's condition (a table model conditioned on some of
        its columns takes them from the DataFrame).

    Returns
    -------
    numpy.ndarray or DataFrame
        (N, D) in the dtype of ``data``; ``(multiple, N, D)`` with ``multiple`` (a list of
        DataFrames for a DataFrame).

    Raises
    ------
    probvae.memory.TooLargeError
        Before any work, when ``num_samples`` or ``multiple`` would need more than half of
        the memory available.

    References
    ----------
    Mattei & Frellsen (2019), "MIWAE: Deep Generative Modelling and Imputation of Incomplete
    Data Sets", ICML.

    Examples
    --------
    >>> import numpy as np, probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> x = data.train.x.copy(); x[np.random.default_rng(0).random(x.shape) < 0.3] = np.nan
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=4, hidden=(32,)), x,
    ...              missing="mask", epochs=2, progress=False)
    >>> filled = pv.impute(res, x[:5], num_samples=20)
    >>> bool(np.isnan(filled).any()), bool((filled[~np.isnan(x[:5])] == x[:5][~np.isnan(x[:5])]).all())
    (False, True)
    >>> pv.impute(res, x[:5], num_samples=20, multiple=3).shape
    (3, 5, 64)
    """
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or int(num_samples) < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    if multiple is not None and (isinstance(multiple, bool) or int(multiple) != multiple
                                 or int(multiple) < 1):
        raise ValueError(f"multiple must be None (one mean imputation) or an integer >= 1 "
                         f"(that many draws), got {multiple!r}")
    if type(data).__name__ == "DataFrame":
        return _impute_frame(res, data, num_samples, multiple, seed, condition)
    original = _original(data)
    _check_sizes(res, original, int(num_samples), multiple)
    batch = model_batch(res.model, data, "data to impute", missing="mask", condition=condition)
    mask = batch["mask"]
    s = int(num_samples)
    width = batch["x"].shape[1]
    rng = np.random.default_rng(seed)
    rows = max(1, _MAX_VALUES // (s * width))
    names, label = res.model.contract.latent_names, label_site(res.model)
    fills = []
    for start, part, _ in batching.chunks(batch, rows):
        lw = log_weights(res, part, num_samples=s, seed=seed + start, keep=names)
        w = softmax(lw["log_w"], axis=1)                                   # (n, s)
        # every latent's draws (n, s, ...); a label goes to decode as y=, the rest as codes
        z = {name: lw[f"value_{name}"] for name in names if f"value_{name}" in lw}
        y = None if label is None else z.pop(label.name, None)
        k = len(w)
        given = part.get("condition")                          # (n, K): each row's condition
        if multiple is None:
            flat_z = {name: v.reshape(k * s, *v.shape[2:]) for name, v in z.items()}
            flat_y = None if y is None else y.reshape(-1).astype(np.int64)
            means = decode(res, flat_z, y=flat_y, seed=seed, condition=None if given is None
                           else np.repeat(given, s, axis=0)).reshape(k, s, width)
            fills.append(np.einsum("ns,nsd->nd", w, means)[None])
        else:
            draws = []
            for m in range(int(multiple)):
                pick = np.array([rng.choice(s, p=row) for row in w])
                zy = y[np.arange(k), pick].astype(np.int64) if y is not None else None
                draws.append(decode(res, {name: v[np.arange(k), pick] for name, v in z.items()},
                                    y=zy, mean=False, seed=seed + 7919 * (m + 1) + start,
                                    condition=given))
            fills.append(np.stack(draws))
    filled = np.concatenate(fills, axis=1)                                 # (m, n, d)
    out = np.repeat(original[None], len(filled), axis=0).copy()
    out[:, ~mask] = filled[:, ~mask].astype(out.dtype)
    return out[0] if multiple is None else out


def _check_sizes(res, original, s, multiple):
    """Refuse, before any work, ``num_samples`` whose block of rows does not fit in memory
    (the weights with every latent kept, and for the single imputation the decoded mean of every
    draw, float32 chunks and their concatenation), and ``multiple`` imputations whose result
    does not: per cell the float32 draws and their concatenation, and the output (twice, in the
    data's dtype)."""
    n, width = len(original), _observed_width(res.model)
    rows = min(n, max(1, _MAX_VALUES // (s * width)))
    check_samples(res.model, rows, s, "pv.impute", keep=res.model.contract.latent_names,
                  per_draw=0 if multiple is not None else 12 * width)
    if multiple is None:
        return
    m, per = int(multiple), n * width * (8 + 2 * original.dtype.itemsize)
    check_allocation(m * per, f"multiple={m}",
                     lambda budget: f"fewer imputations, e.g. multiple={round_down(budget // per)}, "
                                    "or impute the rows in parts",
                     what="pv.impute", detail=f"multiple x {n} rows x {width} columns")


def _impute_frame(res, df, num_samples, multiple, seed, condition=None):
    """Impute in the encoded space, decode, and copy every observed cell from ``df``."""
    lik = res.model.likelihood
    if not hasattr(lik, "decode"):
        raise ValueError("a DataFrame is imputed by a model for tables: build it with "
                         "VAE.for_table(pv.data.from_frame(df))")
    x = lik.encode(df)
    if condition is None and res.model.condition_table is not None:
        condition = df                               # its condition columns
    filled = impute(res, x, num_samples=num_samples, multiple=multiple, seed=seed,
                    condition=condition)
    frames = [lik.decode(f, index=df.index)
              for f in (filled if multiple is not None else [filled])]
    out = []
    for frame in frames:
        result = df.copy()
        for name in lik.table().names:
            gaps = df[name].isna()
            if gaps.any():
                if str(result[name].dtype) == "category":
                    result[name] = result[name].astype(object)
                result.loc[gaps, name] = frame.loc[gaps, name]
                result[name] = result[name].astype(df[name].dtype, errors="ignore")
        out.append(result)
    return out if multiple is not None else out[0]
