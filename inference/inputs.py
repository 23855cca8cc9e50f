"""Input checks: data, labels and missing values become a checked batch (the bottom of inference).

Every entry point (fit, evaluate, predict, generate, impute, the diagnostics) turns what the
user passed into a batch here (a dict of per-example NumPy arrays, see :mod:`probvae.batch`),
so a shape, a NaN or a label out of range fails the same way, with the fix in the message.
"""
from __future__ import annotations

import hashlib
import numbers
import zlib

import numpy as np

from probvae import batch as batching
from probvae.data import as_split
from probvae.data.streaming import Stream, StreamChangedError

__all__ = ["MISSING", "check_missing", "model_batch", "StreamedBatch", "labelled_batch", "check_labels",
           "check_batch_keys", "check_seed", "check_count", "check_positive", "check_binarize",
           "hold_out", "MAX_SEED", "check_condition"]

#: seeds are integers 0..MAX_SEED on both backends (no silent wrap-around)
MAX_SEED = 2 ** 32 - 1


def check_seed(seed, name="seed") -> int:
    """``seed`` as an int in 0..2**32-1, the same rule on both backends.

    Examples
    --------
    >>> check_seed(2 ** 32)
    Traceback (most recent call last):
    ...
    ValueError: seed must be an integer in 0..4294967295 (2**32 - 1), got 4294967296
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) \
            or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"{name} must be an integer in 0..{MAX_SEED} (2**32 - 1), got {seed!r}")
    return int(seed)


def check_count(value, name, minimum=1) -> int:
    """``value`` as an int >= ``minimum`` (a whole-number float is accepted).

    Examples
    --------
    >>> check_count("5", "epochs")
    Traceback (most recent call last):
    ...
    ValueError: epochs must be an integer >= 1, got '5' (a str); write epochs=5
    """
    ok = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not ok or int(value) < minimum:
        hint = f"; write {name}={value}" if isinstance(value, str) else ""
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}"
                         f"{f' (a {type(value).__name__})' if isinstance(value, str) else ''}"
                         f"{hint}")
    return int(value)


def check_positive(value, name) -> float:
    """``value`` as a float > 0 (and finite).

    Examples
    --------
    >>> check_positive("0.01", "lr")
    Traceback (most recent call last):
    ...
    ValueError: lr must be a number > 0, got '0.01' (a str); write lr=0.01
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not np.isfinite(value) or not value > 0:
        hint = f" (a str); write {name}={value}" if isinstance(value, str) else ""
        raise ValueError(f"{name} must be a number > 0, got {value!r}{hint}")
    return float(value)

#: what ``missing=`` accepts: ``None`` (NaN is an error) or ``"mask"`` (NaN cells are left out)
MISSING = (None, "mask")


def check_missing(missing):
    """``missing`` checked: ``None`` or ``"mask"``.

    Examples
    --------
    >>> check_missing("drop")
    Traceback (most recent call last):
    ...
    ValueError: missing must be None (NaN is an error) or 'mask' (NaN cells are left out of the likelihood), got 'drop'
    """
    if missing not in MISSING:
        raise ValueError("missing must be None (NaN is an error) or 'mask' (NaN cells are left "
                         f"out of the likelihood), got {missing!r}")
    return missing


def _model_dim(model):
    return model.input_dim


def _takes_condition(model) -> bool:
    keys = model.batch_keys
    return keys is None or "condition" in keys


def check_condition(model, condition, n, what="condition", broadcast=False):
    """``condition`` as ``(n, K)`` float32 rows for a model that takes the batch key
    ``condition`` (a conditional VAE: ``K = condition_dim``), with the fix in every error:
    an array ``(n, K)`` (or ``(K,)``/one row, repeated ``n`` times with ``broadcast``; a 1-D
    array of ``n`` numbers when ``K == 1``), or for a model of a table conditioned on some of
    its columns a DataFrame holding them. ``None`` for no condition, which a conditional
    model refuses.

    Examples
    --------
    >>> from probvae.models import VAE
    >>> cvae = VAE(input_dim=4, latent_dim=2, condition_dim=3)
    >>> check_condition(cvae, [0, 1, 0], 2, broadcast=True).tolist()
    [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
    >>> check_condition(cvae, None, 2)
    Traceback (most recent call last):
    ...
    ValueError: VAE(input_dim=4, latent_dim=2, condition_dim=3) is conditional: pass condition=, an array (2, 3) with one row per example (class labels y: condition=pv.data.one_hot(y, 3))
    >>> check_condition(VAE(input_dim=4), np.zeros((2, 3)), 2)
    Traceback (most recent call last):
    ...
    ValueError: VAE(input_dim=4, latent_dim=8) takes no condition: drop condition=, or make a conditional VAE, VAE(..., condition_dim=3)
    """
    dim, table = model.condition_dim, model.condition_table
    if condition is None:
        if dim is not None:
            hint = (f", or DataFrame columns {table.names}" if table is not None else
                    f" (class labels y: {what}=pv.data.one_hot(y, {dim}))")
            raise ValueError(f"{model.describe()} is conditional: pass {what}=, an array "
                             f"({n}, {dim}) with one row per example{hint}")
        return None
    if not _takes_condition(model):
        width = np.shape(condition)[-1] if np.ndim(condition) else "K"
        raise ValueError(f"{model.describe()} takes no condition: drop {what}=, or make a "
                         f"conditional VAE, VAE(..., condition_dim={width})")
    if type(condition).__name__ == "DataFrame":
        if table is None:
            raise ValueError(f"{what} is a DataFrame, but {model.describe()} was not made for "
                             "a table's condition columns: VAE.for_table(table, condition=["
                             "...]); or pass the condition as an array")
        condition = table.encode(condition)
    c = np.asarray(condition)
    if c.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold numbers, got dtype {c.dtype}")
    if c.ndim == 1 and dim == 1:
        c = c[:, None]
    elif c.ndim == 1 and broadcast and (dim is None or len(c) == dim):
        c = c[None]
    if c.ndim == 1 and dim is not None and np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"{what} looks like class labels (integers, shape {c.shape}); a "
                         f"conditional VAE takes rows of {dim} values: "
                         f"{what}=pv.data.one_hot(labels, {dim})")
    if c.ndim != 2 or (dim is not None and c.shape[1] != dim):
        raise ValueError(f"{what} must have shape ({n}, {dim or 'K'}): one row of "
                         f"{dim or 'K'} values per example; got shape {c.shape}")
    if len(c) == 1 and broadcast:
        c = np.repeat(c, n, axis=0)
    if len(c) != n:
        raise ValueError(f"{what} has {len(c)} rows for {n} examples; give one row per "
                         "example" + (" (or one row for all)" if broadcast else ""))
    c = c.astype(np.float32)
    if not np.isfinite(c).all():
        raise ValueError(f"{what} has NaN or infinite values; a condition must be known for "
                         "every example (drop or fill those rows)")
    return c


def model_batch(model, data, what="data", missing=None, binarize=None, condition=None) -> dict:
    """The batch a model trains on or is scored on: ``x`` checked against the model's
    ``input_dim`` and likelihood, plus ``mask`` (True where observed) with ``missing="mask"``
    and ``condition`` for a conditional model (:func:`check_condition`: given here, in a batch
    dict, or for a model of a table the condition columns of a DataFrame).

    With ``missing="mask"`` NaN cells are missing: they get the likelihood's ``fill`` value in
    ``x`` and are left out of the likelihood through ``mask``. With ``binarize="dynamic"`` the
    grey values in [0, 1] are kept: the training loop draws binary pixels from them each
    step. A batch made here (a dict with ``x``) passes through as it is. A Split's labels
    ``y`` go into the batch of a user's pair that takes ``y`` (a model that learns labels,
    like SSVAE, gets them through ``fit(labels=...)`` instead).

    Examples
    --------
    >>> import numpy as np
    >>> from probvae.models import VAE
    >>> vae = VAE(input_dim=2, latent_dim=1)
    >>> b = model_batch(vae, np.array([[0.5, np.nan]]), missing="mask")
    >>> b["x"].tolist(), b["mask"].tolist()
    ([[0.5, 0.0]], [[True, False]])
    """
    missing = check_missing(missing)
    dim = _model_dim(model)
    if isinstance(data, dict) and data.get("condition") is not None:
        if condition is not None:
            raise ValueError(f"{what} holds a condition already; drop condition=")
        data = dict(data)
        condition = data.pop("condition")
    if (condition is None and model.condition_table is not None
            and type(data).__name__ == "DataFrame"):        # a table's condition columns
        condition = data
    data = _encoded(model, data)
    if isinstance(data, dict):
        if "x" not in data:
            raise ValueError(f"{what}: a batch needs an entry 'x', got {sorted(data)}")
        batch = batching.make(**data)
        if dim is not None and batch["x"].shape[-1] != dim:
            raise ValueError(f"{what} has {batch['x'].shape[-1]} features but the model's "
                             f"input_dim is {dim}")
        return _conditioned(model, batch, condition, what)
    split = as_split(data, allow_missing=missing == "mask")
    x = split.x
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what} has {x.shape[1]} features but the model's input_dim is {dim}")
    mask = None
    if missing == "mask":
        if np.isinf(x).any():
            raise ValueError(f"{what} has inf values; mark missing cells with NaN")
        mask = ~np.isnan(x)
        empty = np.flatnonzero(~mask.any(axis=1))
        if len(empty) == len(x):
            raise ValueError(f"{what} has no observed value at all; every cell is NaN")
    lik = model.likelihood
    if binarize is not None:
        x = _grey(x, mask, lik, what)
    elif lik is not None:
        x = lik.check(x, mask)
    elif mask is not None:
        x = np.where(mask, x, np.float32(0.0))
    keys = model.batch_keys
    if split.y is not None and not model.is_classifier and (keys is None or "y" in keys):
        batch = batching.make(x=x, mask=mask, y=split.y)   # a user's pair that takes y
    else:
        batch = batching.make(x=x, mask=mask)
    return _conditioned(model, batch, condition, what)


def _conditioned(model, batch, condition, what):
    """``batch`` with its ``condition`` checked (:func:`check_condition`)."""
    try:
        c = check_condition(model, condition, batching.size(batch))
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    if c is not None:
        batch["condition"] = c
    return batch


def _encoded(model, data):
    """A DataFrame goes through the table encoding of a model for tables (a ``Columns``
    likelihood); anything else is returned as it is."""
    if type(data).__name__ != "DataFrame":
        return data
    lik = model.likelihood
    if not hasattr(lik, "encode"):
        numeric = data.select_dtypes("number")
        if numeric.shape[1] != data.shape[1]:
            raise ValueError("this model takes numbers; for a table with text or category "
                             "columns build it with VAE.for_table(pv.data.from_frame(df))")
        return numeric.to_numpy(np.float32)
    return lik.encode(data)


def _grey(x, mask, lik, what):
    """Grey pixels for dynamic binarization: in [0, 1], for a likelihood of binary data."""
    if lik is not None and lik.support != "{0, 1}":
        raise ValueError(f"binarize='dynamic' draws binary pixels for a likelihood of binary "
                         f"data (bernoulli); this model's likelihood is {lik.name!r}")
    if mask is not None:
        x = np.where(mask, x, np.float32(0.0))
    bad = ~np.isfinite(x) | (x < 0) | (x > 1)
    if bad.any():
        raise ValueError(f"{what}: binarize='dynamic' needs grey values in [0, 1] (each pixel is "
                         f"drawn with that probability), but {int(bad.sum())} values are "
                         "outside; rescale x to [0, 1]")
    return x


def check_binarize(binarize):
    """``binarize`` checked: ``None`` or ``"dynamic"``."""
    if binarize not in (None, "dynamic"):
        raise ValueError("binarize must be None (train on the data as it is) or 'dynamic' (a "
                         f"fresh Bernoulli draw of every pixel at each step), got {binarize!r}")
    return binarize


def labelled_batch(model, data, labels, missing=None, binarize=None) -> dict:
    """The labelled examples of ``data`` as a batch with ``y``: ``labels`` is a boolean mask
    (N,) or an integer index of the examples whose label ``data.y`` is observed.

    Examples
    --------
    >>> import numpy as np
    >>> from probvae.data import from_arrays
    >>> from probvae.models import SSVAE
    >>> ss = SSVAE(input_dim=2, num_classes=2)
    >>> split = from_arrays(np.full((4, 2), 0.5), y=[0, 1, 0, 1])
    >>> labelled_batch(ss, split, [0, 1])["y"].tolist()
    [0, 1]
    >>> labelled_batch(ss, split, np.array([0, 1, 0, 1]))
    Traceback (most recent call last):
    ...
    ValueError: labels= looks like a 0/1 mask stored as integers (values 0 and 1, one per example); pass it as booleans, labels=np.asarray(labels, dtype=bool), or pass the indices of the labelled examples
    """
    k = model.num_classes
    if not model.is_classifier:
        raise ValueError("labels= is for models that learn from labels (e.g. SSVAE); "
                         f"{type(model).__name__} does not use them. To condition a VAE on "
                         "known classes, make it VAE(..., condition_dim=K) and pass "
                         "condition=pv.data.one_hot(y, K)")
    split = as_split(data, allow_missing=missing == "mask")
    if split.y is None:
        raise ValueError("labels= needs data with labels: pass a Split whose y is set "
                         "(e.g. data.train)")
    n = len(split)
    labels = np.asarray(labels)
    if labels.dtype == bool:
        if labels.shape != (n,):
            raise ValueError(f"a labels mask needs one entry per example ({n}), got shape "
                             f"{labels.shape}")
        idx = np.flatnonzero(labels)
    elif labels.ndim == 1 and (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
        if (n > 2 and labels.shape == (n,) and set(np.unique(labels).tolist()) <= {0, 1}):
            raise ValueError("labels= looks like a 0/1 mask stored as integers (values 0 and 1, "
                             "one per example); pass it as booleans, labels=np.asarray(labels, "
                             "dtype=bool), or pass the indices of the labelled examples")
        if labels.size and (labels.min() < 0 or labels.max() >= n):
            raise ValueError(f"labels index out of range: the data has {n} examples, got indices "
                             f"from {labels.min()} to {labels.max()}")
        idx = np.unique(labels).astype(np.int64)
    else:
        raise TypeError("labels= takes a boolean mask (N,) or an integer index of labelled "
                        f"examples, got dtype {labels.dtype} and shape {labels.shape}")
    if len(idx) == 0:
        raise ValueError("labels= selects no example; label at least one per class, e.g. "
                         "labels=data.train.label_subset(n_per_class=5)")
    y = split.y[idx]
    bad = (y < 0) | (y >= k)
    if bad.any():
        raise ValueError(f"labels must lie in 0..{k - 1} for num_classes={k}; found "
                         f"{sorted(set(y[bad].tolist()))[:5]}")
    missing_classes = sorted(set(range(k)) - set(y.tolist()))
    if missing_classes:
        raise ValueError(f"no labelled example of class(es) {missing_classes}; label at least "
                         "one example per class (data.train.label_subset(n_per_class=...))")
    out = model_batch(model, split.x[idx], "labelled data", missing, binarize)
    out["y"] = y.astype(np.int64)
    return out


def check_labels(model, y, n) -> np.ndarray:
    """``y`` as ``n`` integer labels in ``0..num_classes-1`` (one label is repeated ``n`` times).

    Examples
    --------
    >>> from probvae.models import SSVAE
    >>> check_labels(SSVAE(input_dim=2, num_classes=3), 2, 4).tolist()
    [2, 2, 2, 2]
    """
    k = model.num_classes
    if k is None:
        raise ValueError(f"{type(model).__name__} has no labels; drop y=")
    y = np.asarray(y)
    if y.ndim == 0:
        y = np.full(n, y)
    if y.shape != (n,) or not (np.issubdtype(y.dtype, np.integer)
                               or (y.dtype.kind == "f" and np.all(y == np.round(y)))):
        raise ValueError(f"y must be one integer label or {n} integer labels, got shape "
                         f"{y.shape} and dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"y must lie in 0..{k - 1}, got values from {y.min()} to {y.max()}")
    return y


def hold_out(batch: dict, rows: int, seed: int, y=None) -> tuple:
    """``(train, valid)``: ``rows`` examples of ``batch`` held out for validation, drawn by
    ``seed`` (the same seed, data and count give the same rows) and, with labels ``y``,
    stratified by them (each class gives its share, within a row); both keep the batch's
    order.

    Examples
    --------
    >>> b = batching.make(x=np.arange(10.0)[:, None], y=[0] * 5 + [1] * 5)
    >>> train, valid = hold_out(b, 4, seed=0, y=b["y"])
    >>> batching.size(train), sorted(valid["y"].tolist())
    (6, [0, 0, 1, 1])
    """
    n = batching.size(batch)
    order = np.random.default_rng([seed, 2]).permutation(n)
    if y is not None:              # each class's examples spread evenly over [0, 1), in order
        y = np.asarray(y)[order]
        place = np.empty(n)
        for c in np.unique(y):
            members = np.flatnonzero(y == c)
            place[members] = (np.arange(len(members)) + 0.5) / len(members)
        order = order[np.argsort(place, kind="stable")]
    valid = np.zeros(n, bool)
    valid[order[:rows]] = True
    return batching.take(batch, ~valid), batching.take(batch, valid)


def check_batch_keys(model, batch: dict):
    """Raise a clear error when ``batch`` has an input the model's functions do not take.

    Examples
    --------
    >>> from probvae.models import CustomModel
    >>> pair = CustomModel(lambda x: None, lambda x: None, backend="numpyro")
    >>> check_batch_keys(pair, {"x": 0, "mask": 1})
    Traceback (most recent call last):
    ...
    ValueError: the data has mask but the model's functions take only x; add a mask=None keyword to model and guide (a mask is True where x is observed)
    """
    keys = model.batch_keys
    if keys is None:
        return
    extra = [k for k in batch if k not in keys]
    if extra:
        hint = (" (a mask is True where x is observed)" if "mask" in extra else "")
        raise ValueError(f"the data has {', '.join(extra)} but the model's functions take only "
                         f"{', '.join(keys)}; add a {'=None, '.join(extra)}=None keyword to model "
                         f"and guide{hint}")


class StreamedBatch:
    """Training data read from disk a chunk at a time (a :class:`~probvae.data.Stream`):
    each chunk becomes the batch :func:`model_batch` makes of it. Every chunk is checked
    once, up front (one pass over the file, one chunk in memory), which also gives the data's
    fingerprint for resuming and a digest of each chunk: a chunk read again (each epoch) that
    differs from its digest, as a file rewritten, truncated or grown during the fit would,
    raises :class:`~probvae.data.streaming.StreamChangedError` naming the file and the rows.
    (The digest is CRC-32: it reads at about the speed of the file read itself, where SHA-256
    and BLAKE2 take 2.5-5 times as long; it is there to see a change, not to resist forgery.)

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from probvae.data import stream
    >>> from probvae.models import VAE
    >>> p = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(p, np.random.default_rng(0).random((50, 4), dtype=np.float32))
    >>> sb = StreamedBatch(VAE(input_dim=4, latent_dim=1), stream(p, chunk_rows=20))
    >>> len(sb), sb.num_chunks, batching.size(sb.chunk(2))
    (50, 3, 10)
    """

    def __init__(self, model, source: Stream, missing=None, binarize=None, what="training data"):
        self.model, self.source, self.what = model, source, what
        self.missing, self.binarize = missing, binarize
        h = hashlib.sha256(str((len(source), source.dim)).encode())
        self._digests = []                          # chunk i's CRC-32, from this one pass
        for i in range(source.num_chunks):
            rows = self._rows(i)
            self._digests.append(zlib.crc32(rows))
            for key, a in sorted(self._batch(i, rows).items()):
                h.update(key.encode())
                h.update(np.ascontiguousarray(a).tobytes())
        self.fingerprint = h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.source)

    @property
    def num_chunks(self) -> int:
        return self.source.num_chunks

    @property
    def chunk_rows(self) -> int:
        return self.source.chunk_rows

    def first_chunk(self, batch_size: int, labelled=None) -> dict:
        """The first chunk's batch, for a training loop to build and compile on; checks the
        stream fits the loop (no labelled data; a chunk holds at least a batch)."""
        if labelled is not None:
            raise ValueError("labelled data cannot come with a stream from disk")
        first = self.chunk(0)
        if batching.size(first) < min(batch_size, len(self)):
            raise ValueError(f"chunk_rows={self.chunk_rows} is smaller than "
                             f"batch_size={batch_size}: give the stream more rows per chunk")
        return first

    def chunk(self, i: int) -> dict:
        """The batch of chunk ``i`` (read from disk now, and checked against its digest)."""
        try:
            rows = self._rows(i)
        except StreamChangedError as err:        # cut or grown: said as a fit's error
            raise StreamChangedError(err.path, err.rows, err.detail, fitting=True) from None
        if zlib.crc32(rows) != self._digests[i]:
            raise StreamChangedError(self.source.path, self.source.bounds(i),
                                     f"chunk {i} holds other values than when the fit began",
                                     fitting=True)
        return self._batch(i, rows)

    def _rows(self, i: int) -> np.ndarray:
        """Chunk ``i``'s rows as the stream reads them (C-contiguous float32)."""
        return np.ascontiguousarray(self.source.read(*self.source.bounds(i)))

    def _batch(self, i: int, rows: np.ndarray) -> dict:
        start, stop = self.source.bounds(i)
        try:
            return model_batch(self.model, rows, self.what, self.missing, self.binarize)
        except ValueError as err:
            raise ValueError(f"{err} (rows {start}..{stop - 1} of {self.source.path})") from None
