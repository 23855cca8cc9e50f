"""Tests for probvae.data (fast; no downloads)."""
import doctest
import gzip
import struct

import numpy as np
import pytest

import probvae.data as data_mod
from probvae.data import Dataset, Split, as_split, from_arrays, load, read_idx

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def write_idx(path, arr, gz=False):
    """Write ``arr`` as an IDX file (big-endian), gzipped when ``gz``."""
    arr = np.asarray(arr)
    header = bytes([0, 0, IDX_CODES[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def make_mnist_dir(root, gz=False, suffix=True, n_train=20, n_test=10, seed=0):
    """Tiny MNIST-like directory; returns the arrays written."""
    rng = np.random.default_rng(seed)
    out = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labs = (np.arange(n) % 10).astype(np.uint8)
        ext = ".gz" if gz and suffix else ""
        write_idx(root / f"{stem}-images-idx3-ubyte{ext}", imgs, gz)
        write_idx(root / f"{stem}-labels-idx1-ubyte{ext}", labs, gz)
        out[stem] = (imgs, labs)
    return out


def test_docstring_examples_run():
    result = doctest.testmod(data_mod)
    data_mod._LOADERS.pop("toy", None)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------- digits
def test_digits_shapes_dtypes_ranges():
    ds = load("digits")
    assert isinstance(ds, Dataset) and ds.name == "digits"
    assert ds.image_shape == (8, 8) and ds.num_classes == 10
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (1257, 180, 360)
    for s in (ds.train, ds.valid, ds.test):
        assert s.x.dtype == np.float32 and s.x.shape[1] == 64
        assert s.y.dtype == np.int64 and s.y.shape == (len(s),)
        assert s.x.min() >= 0.0 and s.x.max() <= 1.0
        assert s.image_shape == (8, 8)
    assert ds.train.x.max() == 1.0
    assert "train=1257" in repr(ds) and "test=360" in repr(ds)


def test_digits_stratified():
    ds = load("digits")
    full = np.bincount(np.concatenate([ds.train.y, ds.valid.y, ds.test.y])) / 1797
    for s in (ds.train, ds.valid, ds.test):
        np.testing.assert_allclose(np.bincount(s.y, minlength=10) / len(s), full, atol=0.02)


def test_digits_seed_determinism():
    a, b, c = load("digits", seed=3), load("digits", seed=3), load("digits", seed=4)
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(a, name).x, getattr(b, name).x)
        np.testing.assert_array_equal(getattr(a, name).y, getattr(b, name).y)
    assert not np.array_equal(a.test.x, c.test.x)


@pytest.mark.parametrize("n,k", [(1797, 10), (1617, 10), (50, 3), (23, 4), (12, 6), (7, 2)])
def test_splits_match_sklearn(n, k):
    """The digits splits stay scikit-learn's: the same indices as ``train_test_split``
    (stratified, or plain where a class is too small), for these seeds and sizes."""
    from sklearn.model_selection import train_test_split
    from probvae.data.splits import split_off
    rng = np.random.default_rng(n)
    for seed in range(8):
        y = rng.integers(0, k, 3 * n)
        idx = np.sort(rng.choice(3 * n, n, replace=False))
        for size in (0.1, 0.2, 0.5, 0.1 / 0.8):
            try:
                want = train_test_split(idx, test_size=size, stratify=y[idx], random_state=seed)
                stratified = True
            except ValueError:
                want = train_test_split(idx, test_size=size, random_state=seed)
                stratified = False
            keep, taken, strat = split_off(idx, y, size, seed)
            np.testing.assert_array_equal(keep, want[0])
            np.testing.assert_array_equal(taken, want[1])
            assert (strat is True) == stratified


def test_digits_load_without_sklearn():
    """The digits come from scikit-learn's CSV without importing it (1-2 s), and are the
    arrays ``load_digits`` gives."""
    import subprocess
    import sys
    code = ("import sys, probvae as pv; pv.data.load('digits'); "
            "assert 'sklearn' not in sys.modules, 'sklearn imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    from sklearn.datasets import load_digits
    pixels, labels = data_mod._digits_arrays()
    d = load_digits()
    np.testing.assert_array_equal(pixels, d.data)
    np.testing.assert_array_equal(labels, d.target)


def test_digits_custom_fractions_and_bad_fractions():
    ds = load("digits", valid_fraction=0.2, test_fraction=0.3)
    assert abs(len(ds.test) - 0.3 * 1797) <= 1 and abs(len(ds.valid) - 0.2 * 1797) <= 1
    with pytest.raises(ValueError, match="must be < 1"):
        load("digits", valid_fraction=0.5, test_fraction=0.6)
    with pytest.raises(ValueError, match="valid_fraction must be in"):
        load("digits", valid_fraction=0.0)


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ValueError, match="cifar") as info:
        load("cifar")
    for known in ("digits", "mnist", "fashion_mnist"):
        assert known in str(info.value)


# ---------------------------------------------------------------- Split methods
def test_binarize():
    s = from_arrays(np.array([[0.1, 0.5, 0.7], [1.0, 0.0, 0.51]]), y=[0, 1])
    b = s.binarize()
    assert b.x.dtype == np.float32
    np.testing.assert_array_equal(b.x, [[0, 0, 1], [1, 0, 1]])
    np.testing.assert_array_equal(s.binarize(0.05).x, [[1, 1, 1], [1, 0, 1]])
    assert b.y is s.y and s.x[0, 0] == np.float32(0.1)  # original unchanged


def test_label_subset():
    s = load("digits").train
    idx = s.label_subset(5, seed=1)
    assert idx.dtype.kind == "i" and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(np.bincount(s.y[idx]), np.full(10, 5))
    np.testing.assert_array_equal(idx, s.label_subset(5, seed=1))
    assert not np.array_equal(idx, s.label_subset(5, seed=2))


def test_label_subset_errors():
    with pytest.raises(ValueError, match="y=None"):
        from_arrays(np.zeros((4, 2))).label_subset(1)
    s = from_arrays(np.zeros((4, 2)), y=[0, 0, 0, 1])
    with pytest.raises(ValueError, match="class 1 has only 1"):
        s.label_subset(2)
    with pytest.raises(ValueError, match="positive integer"):
        s.label_subset(0)


# ---------------------------------------------------------------- from_arrays / as_split
def test_from_arrays_conversions():
    s = from_arrays(np.arange(12, dtype=np.int32).reshape(2, 2, 3), y=[1.0, 2.0])
    assert s.x.shape == (2, 6) and s.x.dtype == np.float32 and s.image_shape == (2, 3)
    assert s.y.dtype == np.int64 and len(s) == 2
    assert from_arrays([[1, 2]]).y is None and from_arrays([[1, 2]]).image_shape is None
    assert from_arrays(np.zeros((1, 4)), image_shape=(2, 2)).image_shape == (2, 2)


@pytest.mark.parametrize("x, y, match", [
    (np.array([[0.0, np.nan], [np.nan, np.inf]]), None, r"2 NaN, 1 inf.*impute"),
    (np.zeros(5), None, r"2-D \(N, D\) or 3-D"),
    (np.zeros((2, 2, 2, 2)), None, r"shape \(2, 2, 2, 2\)"),
    (np.zeros((0, 3)), None, "N == 0"),
    (np.zeros((3, 2)), [0, 1], "length 2 but x has N=3"),
    (np.zeros((3, 2)), [[0], [1], [2]], "1-D"),
    (np.zeros((3, 2)), [0, -1, 2], "negative labels"),
    (np.zeros((3, 2)), [0.5, 1, 2], "integer class labels"),
    (np.zeros((3, 2)), ["a", "b", "c"], "integer class labels"),
    ([["a", "b"]], None, "numeric"),
])
def test_from_arrays_errors(x, y, match):
    with pytest.raises(ValueError, match=match):
        from_arrays(x, y)


def test_from_arrays_image_shape_mismatch():
    with pytest.raises(ValueError, match="image_shape"):
        from_arrays(np.zeros((2, 5)), image_shape=(2, 2))


def test_as_split():
    s = from_arrays(np.ones((2, 3)))
    assert isinstance(s, Split) and as_split(s) is s
    assert as_split(np.ones((4, 2, 2))).x.shape == (4, 4)
    assert as_split([[1, 2]]).x.dtype == np.float32
    with pytest.raises(TypeError, match="Split"):
        as_split("not data")
    with pytest.raises(TypeError, match="data.train"):
        as_split(load("digits"))


# ---------------------------------------------------------------- IDX / MNIST
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, dtype, gz):
    arr = (np.arange(24) - 5).reshape(2, 3, 4).astype(dtype)
    out = read_idx(write_idx(tmp_path / "a.idx", arr, gz))
    assert out.shape == arr.shape and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
@pytest.mark.parametrize("gz, suffix", [(False, False), (True, True), (True, False)])
def test_load_idx_datasets(tmp_path, name, gz, suffix):
    arrays = make_mnist_dir(tmp_path, gz=gz, suffix=suffix)
    with pytest.warns(UserWarning, match="stratif"):  # 20 examples: too few to stratify 10%
        ds = load(name, path=tmp_path)
    assert ds.name == name and ds.image_shape == (28, 28) and ds.num_classes == 10
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (18, 2, 10)
    imgs, labs = arrays["t10k"]
    np.testing.assert_allclose(ds.test.x, imgs.reshape(10, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.test.y, labs)
    assert ds.train.x.dtype == np.float32 and ds.train.x.shape == (18, 784)
    # train + valid are exactly the train file's rows, once each
    timgs, tlabs = arrays["train"]
    got = np.concatenate([ds.train.x, ds.valid.x]) * 255.0
    order = np.argsort([bytes(r) for r in np.rint(got).astype(np.uint8)])
    want = np.argsort([bytes(r) for r in timgs.reshape(20, 784)])
    np.testing.assert_array_equal(np.rint(got[order]).astype(np.uint8), timgs.reshape(20, 784)[want])
    np.testing.assert_array_equal(np.concatenate([ds.train.y, ds.valid.y])[order], tlabs[want])


def test_load_mnist_stratified_valid_and_seed(tmp_path):
    make_mnist_dir(tmp_path, n_train=40)
    a = load("mnist", path=tmp_path, valid_fraction=0.5, seed=1)
    b = load("mnist", path=tmp_path, valid_fraction=0.5, seed=1)
    np.testing.assert_array_equal(np.bincount(a.valid.y), np.full(10, 2))
    np.testing.assert_array_equal(a.valid.x, b.valid.x)


def test_missing_files_listed(tmp_path):
    make_mnist_dir(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte") as info:
        load("mnist", path=tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and "train-images-idx3-ubyte" not in msg


def test_missing_directory_and_none_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        load("fashion_mnist", path=tmp_path / "nope")
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert stem in str(info.value)
    with pytest.raises(FileNotFoundError, match="path="):
        load("mnist")


def test_truncated_and_extra_data(tmp_path):
    f = write_idx(tmp_path / "x", np.zeros((3, 4), np.uint8))
    raw = f.read_bytes()
    f.write_bytes(raw[:-1])
    with pytest.raises(ValueError, match=r"12 data bytes.*found 11.*truncated") as info:
        read_idx(f)
    assert str(f) in str(info.value)
    f.write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="found 13"):
        read_idx(f)
    f.write_bytes(raw[:6])
    with pytest.raises(ValueError, match="header"):
        read_idx(f)
    f.write_bytes(gzip.compress(raw)[:-8])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(f)


def test_bad_magic_and_dtype(tmp_path):
    f = tmp_path / "bad"
    f.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="magic.*found 01 02 08 01"):
        read_idx(f)
    f.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        read_idx(f)
    f.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="dtype code 0x07"):
        read_idx(f)


def test_image_label_count_mismatch(tmp_path):
    make_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(19, dtype=np.uint8) % 10)
    with pytest.raises(ValueError, match="20 images.*19 labels"):
        load("mnist", path=tmp_path)


def test_a_split_slices_and_masks_like_an_array():
    ds = load("digits")
    head = ds.test[:100]
    assert isinstance(head, Split) and len(head) == 100 and head.image_shape == (8, 8)
    np.testing.assert_array_equal(head.x, ds.test.x[:100])
    np.testing.assert_array_equal(head.y, ds.test.y[:100])
    threes = ds.test[ds.test.y == 3]
    assert len(threes) == int((ds.test.y == 3).sum()) and set(threes.y.tolist()) == {3}
    picked = ds.test[[7, 2]]
    np.testing.assert_array_equal(picked.x, ds.test.x[[7, 2]])
    assert len(ds.test[-1]) == 1 and np.array_equal(ds.test[-1].x[0], ds.test.x[-1])
    unlabelled = Split(np.zeros((3, 2), np.float32))
    assert unlabelled[1:].y is None and "no labels" in repr(unlabelled)


@pytest.mark.parametrize("index, match", [
    ((slice(None), 0), "indexed by examples only"),
    (np.ones(5, bool), "boolean mask must have shape"),
    (np.zeros((2, 2), int), "1-d array of integers"),
    (10, "out of range"),
])
def test_a_split_indexed_wrongly_says_how(index, match):
    s = Split(np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1]))
    with pytest.raises((TypeError, IndexError), match=match):
        s[index]


def test_image_grid_takes_the_shape_from_the_images_and_names_a_misplaced_path(tmp_path):
    from probvae.plots import image_grid
    assert len(image_grid(np.zeros((4, 64))).axes) == 4
    assert len(image_grid(np.zeros((3, 7, 9))).axes) == 3
    with pytest.raises(TypeError, match="path='f.png'"):
        image_grid(np.zeros((4, 64)), "f.png")
    with pytest.raises(ValueError, match="pass image_shape"):
        image_grid(np.zeros((4, 60)))
    image_grid(np.zeros((4, 64)), path=tmp_path / "g.png")
    assert (tmp_path / "g.png").is_file() and not (tmp_path / "f.png").exists()
