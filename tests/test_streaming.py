"""Data larger than memory: pv.data.stream over .npy and IDX files, trained chunk by chunk."""
import gzip
import tracemalloc

import numpy as np
import pytest

import probvae as pv


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
