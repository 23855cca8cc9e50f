"""Datasets for probvae: validated NumPy splits, a loader registry and an IDX reader.

Examples
--------
>>> from probvae.data import load
>>> ds = load("digits")
>>> ds.train.x.shape[1], ds.image_shape, ds.num_classes
(64, (8, 8), 10)
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .splits import split_off

__all__ = ["Split", "Dataset", "from_arrays", "as_split", "read_idx", "register", "load",
           "from_frame", "Table", "Column", "stream", "Stream", "StreamChangedError", "one_hot"]


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a dataset: ``x`` float32 of shape (N, D), ``y`` int64 of shape (N,) or None.

    Examples
    --------
    >>> import numpy as np
    >>> len(Split(np.zeros((3, 4), np.float32), np.array([0, 1, 1])))
    3
    """

    x: np.ndarray
    y: np.ndarray | None = None
    image_shape: tuple | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index) -> "Split":
        """The examples at ``index``, as a :class:`Split` (labels and image shape kept): a
        slice, an integer array or list, or a boolean mask of length N, as NumPy takes them.
        One integer gives a Split of one example.

        Examples
        --------
        >>> import numpy as np
        >>> s = Split(np.arange(12, dtype=np.float32).reshape(6, 2), np.array([0, 1, 0, 1, 0, 1]))
        >>> len(s[:4]), s[s.y == 1].y.tolist(), s[[5, 0]].x[:, 0].tolist(), len(s[2])
        (4, [1, 1, 1], [10.0, 0.0], 1)
        """
        if isinstance(index, tuple):
            raise TypeError("a Split is indexed by examples only (split[:100], split[mask], "
                            "split[[3, 7]]); take columns from split.x")
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= int(index) < len(self):
                raise IndexError(f"example {index} is out of range for a Split of {len(self)}")
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == bool:
                if index.shape != (len(self),):
                    raise IndexError(f"a boolean mask must have shape ({len(self)},), the "
                                     f"Split's length; got {index.shape}")
            elif not np.issubdtype(index.dtype, np.integer) or index.ndim != 1:
                raise IndexError("index a Split with a slice, an integer, a 1-d array of "
                                 "integers or a boolean mask of its length; got "
                                 f"{index.dtype} of shape {index.shape}")
        return replace(self, x=self.x[index], y=None if self.y is None else self.y[index])

    def __repr__(self) -> str:
        n, k = len(self), None if self.y is None else len(np.unique(self.y))
        labels = "no labels" if k is None else f"labels of {k} class{'es' if k != 1 else ''}"
        return (f"Split({n} example{'s' if n != 1 else ''} of {self.x.shape[1]} features, "
                f"{labels}" + (f", image_shape={self.image_shape})" if self.image_shape else ")"))

    def binarize(self, threshold: float = 0.5, stochastic: bool = False,
                 seed: int = 0) -> "Split":
        """Return a copy with binary pixels (float32 0.0 / 1.0): ``x > threshold``, or with
        ``stochastic=True`` one Bernoulli draw per pixel with probability ``x`` (the fixed
        binarization of a test set that goes with training by ``fit(binarize="dynamic")``).

        Examples
        --------
        >>> import numpy as np
        >>> Split(np.array([[0.2, 0.9]], np.float32)).binarize().x
        array([[0., 1.]], dtype=float32)
        >>> Split(np.array([[0.0, 1.0]], np.float32)).binarize(stochastic=True, seed=3).x
        array([[0., 1.]], dtype=float32)
        """
        if stochastic:
            if (self.x < 0).any() or (self.x > 1).any():
                raise ValueError("stochastic binarization draws each pixel with probability x, "
                                 "so x must lie in [0, 1]")
            u = np.random.default_rng(seed).random(self.x.shape)
            return replace(self, x=(u < self.x).astype(np.float32))
        return replace(self, x=(self.x > threshold).astype(np.float32))

    def label_subset(self, n_per_class: int, seed: int = 0) -> np.ndarray:
        """Sorted indices of ``n_per_class`` examples drawn at random from every class.

        Raises ValueError if the split has no labels or a class has too few examples.

        Examples
        --------
        >>> import numpy as np
        >>> s = Split(np.zeros((6, 2), np.float32), np.array([0, 0, 0, 1, 1, 1]))
        >>> s.label_subset(2).shape
        (4,)
        """
        if self.y is None:
            raise ValueError("label_subset needs labels, but this split has y=None; "
                             "build it with from_arrays(x, y) to attach labels.")
        if int(n_per_class) != n_per_class or n_per_class < 1:
            raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}.")
        rng, chosen = np.random.default_rng(seed), []
        for c in np.unique(self.y):
            idx = np.flatnonzero(self.y == c)
            if len(idx) < n_per_class:
                raise ValueError(f"class {c} has only {len(idx)} examples but n_per_class="
                                 f"{n_per_class} were asked for; lower n_per_class.")
            chosen.append(rng.choice(idx, size=int(n_per_class), replace=False))
        return np.sort(np.concatenate(chosen)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/valid/test splits plus metadata, as returned by :func:`load`.

    Examples
    --------
    >>> ds = load("digits")
    >>> len(ds.train) + len(ds.valid) + len(ds.test)
    1797
    """

    train: Split
    valid: Split
    test: Split
    name: str
    image_shape: tuple | None = None
    num_classes: int | None = None

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.train)}, valid={len(self.valid)}, "
                f"test={len(self.test)}, dim={self.train.x.shape[1]}, "
                f"image_shape={self.image_shape}, num_classes={self.num_classes})")


def from_arrays(x, y=None, image_shape: tuple | None = None, allow_missing: bool = False) -> Split:
    """Validate array-likes and build a :class:`Split`.

    ``x`` of shape (N, D) is kept; (N, H, W) is flattened to (N, H*W) and ``image_shape``
    defaults to (H, W). ``x`` becomes float32 and ``y`` int64. NaN marks a missing cell, allowed
    only with ``allow_missing=True`` (for models trained with ``missing="mask"``); inf never is.

    Examples
    --------
    >>> s = from_arrays([[[0, 1], [1, 0]]], y=[3])
    >>> s.x.shape, s.image_shape, s.y.dtype
    ((1, 4), (2, 2), dtype('int64'))
    """
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"x must be a numeric array (N, D) or (N, H, W); could not convert it "
                         f"to float32 ({err}). Pass a rectangular numeric array.") from None
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be 2-D (N, D) or 3-D (N, H, W) but has shape {x.shape}; "
                         f"reshape it, e.g. x.reshape(len(x), -1).")
    if x.shape[0] == 0:
        raise ValueError("x has N == 0 examples; pass at least one row.")
    if x.ndim == 3:
        image_shape = tuple(image_shape) if image_shape is not None else tuple(x.shape[1:])
        x = x.reshape(x.shape[0], -1)
    if image_shape is not None and int(np.prod(image_shape)) != x.shape[1]:
        raise ValueError(f"image_shape {tuple(image_shape)} has {int(np.prod(image_shape))} "
                         f"pixels but x has D={x.shape[1]} features; fix image_shape.")
    bad = np.isinf(x) if allow_missing else ~np.isfinite(x)
    if bad.any():
        n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        fix = ("replace inf by a finite value or NaN (missing)" if allow_missing else
               "to leave NaN cells out of the model pass missing='mask' (e.g. "
               "pv.fit(model, x, missing='mask')), or impute them or drop those rows, e.g. "
               "x[np.isfinite(x).all(axis=1)]")
        raise ValueError(f"x has non-finite values ({n_nan} NaN, {n_inf} inf, in "
                         f"{int(bad.any(axis=1).sum())} rows); {fix}.")
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D of shape (N,) but has shape {y.shape}; "
                             f"for one-hot labels pass y.argmax(axis=1).")
        if len(y) != len(x):
            raise ValueError(f"y has length {len(y)} but x has N={len(x)} rows; they must match.")
        if not (y.dtype.kind in "iub" or (y.dtype.kind == "f" and np.all(np.isfinite(y))
                                           and np.all(y == np.round(y)))):
            raise ValueError(f"y must hold integer class labels but has dtype {y.dtype} "
                             f"with non-integer values; map labels to 0..K-1 first.")
        if (y < 0).any():
            raise ValueError(f"y has {int((y < 0).sum())} negative labels (min {y.min()}); "
                             f"class labels must be 0..K-1, e.g. np.unique(y, return_inverse=True).")
        y = y.astype(np.int64)
    return Split(x=np.ascontiguousarray(x), y=y,
                 image_shape=tuple(image_shape) if image_shape is not None else None)


def one_hot(labels, num_classes: int) -> np.ndarray:
    """Class labels as one-hot rows, float32 ``(N, num_classes)`` (one label: one row), the
    condition of a class-conditional VAE (``VAE(condition_dim=num_classes)``).

    Examples
    --------
    >>> one_hot([0, 2], 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    >>> one_hot(1, 3).shape
    (1, 3)
    """
    y = np.atleast_1d(np.asarray(labels))
    k = int(num_classes)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer)
                           or (y.dtype.kind == "f" and np.all(y == np.round(y)))):
        raise ValueError(f"one_hot takes integer labels (one, or an array (N,)), got shape "
                         f"{y.shape} and dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in 0..{k - 1} for num_classes={k}, got values from "
                         f"{y.min()} to {y.max()}")
    return np.eye(k, dtype=np.float32)[y.astype(np.int64)]


def as_split(data, allow_missing: bool = False) -> Split:
    """Coerce training input to a :class:`Split`: a Split passes, an array goes through
    :func:`from_arrays` (NaN allowed with ``allow_missing``), anything else raises TypeError.

    Examples
    --------
    >>> as_split([[1, 2, 3], [4, 5, 6]]).x.dtype
    dtype('float32')
    """
    if isinstance(data, Split):
        return data
    if isinstance(data, Dataset):
        raise TypeError("got a Dataset where one split is expected; pass data.train (or "
                        "data.valid / data.test).")
    if isinstance(data, (list, tuple)) or hasattr(data, "__array__"):
        return from_arrays(data, allow_missing=allow_missing)
    raise TypeError(f"expected a probvae.data.Split or an array of shape (N, D) / (N, H, W), "
                    f"got {type(data).__name__}; wrap it with from_arrays(x, y).")


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (as used by MNIST), plain or gzipped (detected by magic bytes).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "labels"
    >>> _ = f.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(f)
    array([7, 8, 9], dtype=uint8)
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: gzip data is corrupt or truncated ({err}).") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file: expected magic 00 00 <dtype> <ndim>, "
                         f"found {raw[:4].hex(' ') or 'an empty file'}.")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X}; expected one of {known}.")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: IDX header expected ndim >= 1 and {header} header bytes, "
                         f"found ndim={ndim} and {len(raw)} bytes.")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX header declares shape {shape} ({expected} data bytes) "
                         f"but found {len(raw) - header} data bytes (truncated or extra data).")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


_LOADERS: dict[str, Callable[..., Dataset]] = {}


def register(name: str):
    """Decorator adding ``fn(path, seed, valid_fraction, test_fraction) -> Dataset`` to the
    registry used by :func:`load`.

    Examples
    --------
    >>> @register("toy")
    ... def _toy(path, seed, valid_fraction, test_fraction):
    ...     return Dataset(*[from_arrays([[0.0, 1.0]])] * 3, name="toy")
    >>> len(load("toy").train)
    1
    """
    def deco(fn):
        _LOADERS[name] = fn
        return fn
    return deco


def load(name: str, path=None, seed: int = 0, valid_fraction: float = 0.1,
         test_fraction: float = 0.2) -> Dataset:
    """Load a registered dataset by name ("digits", "mnist", "fashion_mnist", ...).

    Examples
    --------
    >>> ds = load("digits", seed=1)
    >>> ds.train.x.dtype, float(ds.train.x.max()) <= 1.0
    (dtype('float32'), True)
    """
    key = str(name).lower().replace("-", "_")
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_LOADERS))}.")
    for label, frac in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 1.0:
            raise ValueError(f"{label} must be in (0, 1), got {frac!r}.")
    return _LOADERS[key](path, seed=seed, valid_fraction=valid_fraction,
                         test_fraction=test_fraction)


def _split_off(idx: np.ndarray, y: np.ndarray, size: float, seed: int):
    """Split ``idx`` into (keep, taken) with ``size`` of it taken, stratified by ``y[idx]``
    (scikit-learn's ``train_test_split`` indices, without importing it: :mod:`.splits`)."""
    keep, taken, stratified = split_off(idx, y, size, seed)
    if stratified is not True:
        warnings.warn(f"stratified split impossible ({stratified}); splitting without "
                      "stratification. With more examples, or a larger fraction for the "
                      "smaller part, each class keeps its share.", stacklevel=3)
    return keep, taken


def _digits_arrays():
    """scikit-learn's 8x8 digits as (pixels 0-16, labels), read from the CSV it ships
    (``load_digits`` reads the same file) without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    roots = spec.submodule_search_locations if spec is not None else None
    csv = next((Path(r) / "datasets" / "data" / "digits.csv.gz" for r in roots or ()), None)
    if csv is None or not csv.is_file():
        try:
            from sklearn.datasets import load_digits
        except ImportError as err:
            raise ImportError("the digits dataset ships with scikit-learn: pip install "
                              "scikit-learn") from err
        d = load_digits()
        return d.data, d.target
    with gzip.open(csv, "rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int)


@register("digits")
def _load_digits(path, seed, valid_fraction, test_fraction) -> Dataset:
    if valid_fraction + test_fraction >= 1.0:
        raise ValueError(f"valid_fraction + test_fraction must be < 1, got {valid_fraction} + "
                         f"{test_fraction}; shrink one of them.")
    pixels, labels = _digits_arrays()
    x, y = (pixels / 16.0).astype(np.float32), labels.astype(np.int64)
    rest, test = _split_off(np.arange(len(y)), y, test_fraction, seed)
    train, valid = _split_off(rest, y, valid_fraction / (1.0 - test_fraction), seed)
    parts = [from_arrays(x[i], y[i], image_shape=(8, 8)) for i in (train, valid, test)]
    return Dataset(*parts, name="digits", image_shape=(8, 8), num_classes=10)


_IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _load_idx_dataset(path, seed, valid_fraction, test_fraction, *, name) -> Dataset:
    if path is None:
        raise FileNotFoundError(f"{name} is not downloaded automatically; pass path=<directory> "
                                f"holding {', '.join(_IDX_STEMS)} (each optionally .gz).")
    root = Path(path).expanduser()
    found = {s: next((root / f for f in (s, s + ".gz") if (root / f).is_file()), None)
             for s in _IDX_STEMS}
    missing = [s for s, f in found.items() if f is None]
    if missing:
        where = "does not exist" if not root.is_dir() else "is missing"
        raise FileNotFoundError(f"{name}: directory {root} {where}; missing files (plain or "
                                f".gz): {', '.join(missing)}.")
    splits = []
    for img_stem, lab_stem in zip(_IDX_STEMS[::2], _IDX_STEMS[1::2]):
        imgs, labs = read_idx(found[img_stem]), read_idx(found[lab_stem])
        if imgs.ndim != 3 or labs.ndim != 1:
            raise ValueError(f"expected images of shape (N, H, W) in {found[img_stem]} and labels "
                             f"of shape (N,) in {found[lab_stem]}; found {imgs.shape} and {labs.shape}.")
        if len(imgs) == 0:
            raise ValueError(f"{found[img_stem]} holds 0 images (its header says N = 0); the "
                             "file is empty or damaged: restore it from the original archive")
        if len(imgs) != len(labs):
            raise ValueError(f"image/label count mismatch: expected equal counts, found "
                             f"{len(imgs)} images in {found[img_stem]} and {len(labs)} labels "
                             f"in {found[lab_stem]}.")
        splits.append((imgs.astype(np.float32) / 255.0, labs.astype(np.int64)))
    (x, y), (xt, yt) = splits
    train, valid = _split_off(np.arange(len(y)), y, valid_fraction, seed)
    parts = [from_arrays(x[i], y[i]) for i in (train, valid)] + [from_arrays(xt, yt)]
    return Dataset(*parts, name=name, image_shape=parts[0].image_shape, num_classes=10)


for _name in ("mnist", "fashion_mnist"):
    register(_name)(functools.partial(_load_idx_dataset, name=_name))


from .tables import Column, Table, from_frame  # noqa: E402 (tables build on Split)
from .streaming import Stream, StreamChangedError, stream  # noqa: E402 (IDX header as read_idx)
