"""A batch is a dict of per-example NumPy arrays, sliced, shuffled, padded and chunked here only.

Keys are the keyword arguments a model and its guide take: ``x`` (N, D) float32 data, ``mask``
(N, D) bool (True where ``x`` is observed), ``y`` (N,) integer labels, ``condition`` (N, C)
float32, and any other per-example input a model declares. The training loops, scoring,
prediction, generation and diagnostics all take their batches from these functions and hand
them to ``model(**batch)`` / ``guide(**batch)``; a new per-example input is one new key.

Examples
--------
>>> import numpy as np
>>> b = make(x=np.zeros((5, 3)), y=np.arange(5))
>>> size(b), take(b, [0, 2])["y"].tolist()
(5, [0, 2])
>>> [(start, size(c), n) for start, c, n in chunks(b, 2, padded=True)]
[(0, 2, 2), (2, 2, 2), (4, 2, 1)]
"""
from __future__ import annotations

import numpy as np

__all__ = ["make", "size", "take", "pad", "chunks", "to_backend", "with_keys", "DTYPES"]

#: dtype each known key is stored in (other keys keep theirs)
DTYPES = {"x": np.float32, "mask": np.bool_, "y": np.int64, "condition": np.float32}


def make(**arrays) -> dict:
    """A batch from per-example arrays (``None`` values are dropped); checks equal lengths.

    Examples
    --------
    >>> make(x=np.zeros((2, 3)), y=[1, 0])["y"].dtype
    dtype('int64')
    >>> make(x=np.zeros((2, 3)), y=[1])
    Traceback (most recent call last):
    ...
    ValueError: every array of a batch needs one row per example: x has 2, y has 1
    """
    out = {}
    for key, value in arrays.items():
        if value is None:
            continue
        value = np.asarray(value)
        if key in DTYPES:
            value = value.astype(DTYPES[key], copy=False)
        if value.ndim == 0:
            raise ValueError(f"batch entry {key!r} must have one row per example, got a scalar")
        out[key] = value
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("every array of a batch needs one row per example: "
                         + ", ".join(f"{k} has {n}" for k, n in lengths.items()))
    return out


def size(batch: dict) -> int:
    """Number of examples in ``batch``.

    Examples
    --------
    >>> size({"x": np.zeros((4, 2))})
    4
    """
    return len(next(iter(batch.values())))


def take(batch: dict, idx) -> dict:
    """Rows ``idx`` (an index array or a slice) of every entry.

    Examples
    --------
    >>> take({"x": np.arange(6).reshape(3, 2)}, slice(1, 3))["x"].tolist()
    [[2, 3], [4, 5]]
    """
    return {k: v[idx] for k, v in batch.items()}


def pad(batch: dict, n: int) -> dict:
    """``batch`` grown to ``n`` rows by repeating its last row (one compiled shape for every
    chunk); the caller drops the padded rows from the results.

    Examples
    --------
    >>> pad({"y": np.array([1, 2])}, 4)["y"].tolist()
    [1, 2, 2, 2]
    """
    extra = n - size(batch)
    if extra <= 0:
        return batch
    return {k: np.concatenate([v, np.repeat(v[-1:], extra, axis=0)]) for k, v in batch.items()}


def chunks(batch: dict, chunk_size: int, padded: bool = False):
    """Yield ``(start, chunk, n_valid)`` over consecutive rows; with ``padded`` every chunk has
    ``chunk_size`` rows (the last one padded) and ``n_valid`` says how many are real.

    Examples
    --------
    >>> [n for _, _, n in chunks({"x": np.zeros((5, 1))}, 4)]
    [4, 1]
    """
    n = size(batch)
    chunk_size = max(1, min(int(chunk_size), n))
    for start in range(0, n, chunk_size):
        part = take(batch, slice(start, start + chunk_size))
        n_valid = size(part)
        yield start, (pad(part, chunk_size) if padded else part), n_valid


def to_backend(bk, batch: dict) -> dict:
    """Each entry as the backend's array type: floats float32, integers int, masks bool.

    Examples
    --------
    >>> from probvae import backends
    >>> out = to_backend(backends.get("numpyro"), make(x=np.zeros((2, 3)), mask=np.ones((2, 3))))
    >>> str(out["x"].dtype), str(out["mask"].dtype)
    ('float32', 'bool')
    """
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        if v.dtype == np.bool_:
            out[k] = bk.asarray_bool(v)
        elif np.issubdtype(v.dtype, np.integer):
            out[k] = bk.asarray_int(v)
        else:
            out[k] = bk.asarray(v)
    return out


def with_keys(batch: dict, keys) -> dict:
    """Only the entries a function takes (``keys``; ``None`` keeps all).

    Examples
    --------
    >>> sorted(with_keys({"x": 1, "mask": 2, "y": 3}, ("x", "y")))
    ['x', 'y']
    """
    if keys is None:
        return dict(batch)
    return {k: v for k, v in batch.items() if k in keys}
