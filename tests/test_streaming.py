"""Data larger than memory: pv.data.stream over .npy and IDX files, trained chunk by chunk."""
import gzip
import tracemalloc

import numpy as np
import pytest

import probvae as pv
from probvae.data.streaming import StreamChangedError
from probvae.inference import train_state


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("stream") / "digits.npy"
    np.save(path, digits.train.x)
    return path


def _idx(path, array):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}
    with open(path, "wb") as f:
        f.write(bytes([0, 0, codes[array.dtype], array.ndim]))
        f.write(np.asarray(array.shape, ">u4").tobytes())
        f.write(array.tobytes())


def test_npy_and_idx_read_the_same_rows(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(30, 4, 5), dtype=np.uint8)
    np.save(tmp_path / "a.npy", pixels)
    _idx(tmp_path / "a.idx", pixels)
    a, b = pv.data.stream(tmp_path / "a.npy", 8), pv.data.stream(tmp_path / "a.idx", 8)
    assert (len(a), a.dim, a.image_shape, a.num_chunks) == (30, 20, (4, 5), 4)
    assert np.array_equal(a.read(0, 30), b.read(0, 30))
    np.testing.assert_allclose(a.read(5, 7), pixels[5:7].reshape(2, -1) / 255.0, rtol=1e-6)
    assert np.array_equal(np.concatenate([c for _, c in a.chunks()]), a.read(0, 30))


@pytest.mark.parametrize("case, message", [
    ("missing", "no file"), ("gzipped", "gunzip it first"), ("one-dim", "one row per example"),
    ("truncated", "truncated"), ("fortran", "Fortran order"), ("text", "neither a .npy"),
    ("chunk", "chunk_rows must be an integer >= 1"),
])
def test_bad_files_fail_clearly(tmp_path, case, message):
    path = tmp_path / "f.npy"
    x = np.zeros((10, 3), np.float32)
    chunk = 4
    if case == "gzipped":
        np.save(path, x)
        path.write_bytes(gzip.compress(path.read_bytes()))
    elif case == "one-dim":
        np.save(path, np.zeros(10, np.float32))
    elif case == "truncated":
        np.save(path, x)
        path.write_bytes(path.read_bytes()[:-8])
    elif case == "fortran":
        np.save(path, np.asfortranarray(np.zeros((10, 3), np.float32)))
    elif case == "text":
        path.write_text("a,b\n1,2\n")
    elif case == "chunk":
        np.save(path, x)
        chunk = 0
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        pv.data.stream(path, chunk)


def test_training_on_a_stream(backend, digits_file, digits):
    source = pv.data.stream(digits_file, chunk_rows=300)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,), backend=backend)
    res = pv.fit(vae, source, validation=digits.valid, epochs=4, batch_size=64, progress=False)
    loss = res.history["valid_loss"]
    assert res.status == "completed" and len(loss) == 4 and loss[-1] < loss[0]
    scores = pv.evaluate(res, digits.test, num_samples=4)
    assert np.isfinite(scores["elbo"])


def test_stream_resumes_like_one_run(digits_file, tmp_path):
    source = pv.data.stream(digits_file, chunk_rows=500)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,))
    whole = pv.fit(vae, source, epochs=3, batch_size=64, progress=False)
    pv.fit(vae, source, epochs=2, batch_size=64, progress=False, checkpoint=tmp_path / "run")
    again = pv.fit(vae, source, epochs=3, batch_size=64, progress=False,
                   resume=tmp_path / "run")
    np.testing.assert_allclose(again.history["train_loss"], whole.history["train_loss"],
                               rtol=1e-6)


def test_bad_rows_in_a_later_chunk_are_named(tmp_path, digits, digits_file):
    x = digits.train.x[:200].copy()
    x[150, 3] = 2.0                                    # outside [0, 1]
    np.save(tmp_path / "bad.npy", x)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), likelihood="continuous_bernoulli")
    with pytest.raises(ValueError, match=r"rows 100\.\.199 of .*bad\.npy"):
        pv.fit(vae, pv.data.stream(tmp_path / "bad.npy", 100), epochs=1, progress=False)
    with pytest.raises(ValueError, match="smaller than batch_size"):
        pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,)),
               pv.data.stream(digits_file, 10), epochs=1, batch_size=32, progress=False)
    with pytest.raises(ValueError, match="labels= needs the data in memory"):
        pv.fit(pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(8,)),
               pv.data.stream(digits_file, 100), labels=np.arange(10), objective="enum",
               epochs=1, progress=False)


def test_memory_stays_with_one_chunk(tmp_path):
    """What Python allocates while training on a file 16 chunks long is about what it
    allocates for a file of one chunk (after a first fit has compiled the program): far less
    than the file (measured: 1.1 MB for one chunk, 1.6-2.1 MB for 16, the file is 8 MB)."""
    chunk = 2000

    def peak(rows):
        x = np.random.default_rng(0).random((rows, 64), dtype=np.float32)
        np.save(tmp_path / f"{rows}.npy", x)
        source = pv.data.stream(tmp_path / f"{rows}.npy", chunk_rows=chunk)
        vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,), likelihood="gaussian")
        tracemalloc.start()
        try:
            pv.fit(vae, source, epochs=1, batch_size=500, progress=False)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(chunk)                                          # compiles
    one, sixteen = peak(chunk), peak(16 * chunk)
    size16 = 16 * chunk * 64 * 4                         # 8 MB
    assert sixteen < one + size16 / 4, (one, sixteen)   # loading the file would add all 8 MB


class _ChangedMidFit(pv.data.Stream):
    """A stream whose file ``change(path)`` alters on the first read after the fit's first
    checkpoint is in ``run``: a file rewritten or cut while a fit trains on it."""

    def __init__(self, path, chunk_rows, run, change):
        super().__init__(path, chunk_rows)
        self.run, self.change, self.changed = run, change, False

    def read(self, start, stop):
        if not self.changed and train_state.exists(self.run):
            self.change(self.path)
            self.changed = True
        return super().read(start, stop)


def _rewrite(path):                    # the same size and header, other values
    x = np.load(path)
    np.save(path, x[::-1].copy())


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-64 * 4 * 30])      # 30 rows fewer, header unchanged


@pytest.mark.parametrize("change", [_rewrite, _truncate])
def test_a_file_changed_during_a_fit_stops_it(backend, digits, tmp_path, change):
    path, run = tmp_path / "x.npy", tmp_path / "run"
    np.save(path, digits.train.x[:200])
    source = _ChangedMidFit(path, 100, run, change)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend=backend)
    with pytest.raises(StreamChangedError, match="changed while training on it") as err:
        pv.fit(vae, source, epochs=3, batch_size=50, progress=False, checkpoint=run)
    assert source.changed and err.value.path == path and str(path) in str(err.value)
    assert "start a new fit on the new file" in str(err.value)
    assert isinstance(err.value, ValueError)
    if change is _rewrite:
        assert "holds other values" in str(err.value)
        np.save(path, digits.train.x[:200])          # restored: the run resumes from epoch 1
        res = pv.fit(vae, pv.data.stream(path, 100), epochs=3, batch_size=50, progress=False,
                     resume=run)
        assert res.status == "completed" and len(res.history["train_loss"]) == 3
    else:
        assert "bytes when opened" in str(err.value)


def test_reading_rows_no_longer_in_the_file_says_so(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((10, 3), np.float32))
    source = pv.data.stream(path, chunk_rows=4)
    path.write_bytes(path.read_bytes()[:-3 * 4 * 4])            # 4 rows fewer
    with pytest.raises(StreamChangedError, match=r"x\.npy changed since pv\.data\.stream "
                       r"opened it \(it held \d+ bytes when opened and holds \d+ now"):
        source.read(4, 10)
    source.size = path.stat().st_size          # (as if cut between the size check and the read)
    with pytest.raises(StreamChangedError, match=r"2 of these 4 rows are left, seen reading "
                       r"rows 4\.\.7"):
        source.read(4, 8)
    np.save(path, np.zeros((10, 3), np.float32))
    source = pv.data.stream(path, chunk_rows=4)
    with open(path, "ab") as f:                                  # grown
        f.write(b"\0" * 12)
    with pytest.raises(StreamChangedError, match="bytes when opened"):
        source.read(0, 1)
    path.unlink()
    with pytest.raises(StreamChangedError, match="the file is gone"):
        source.read(0, 1)
