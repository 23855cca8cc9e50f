"""The smaller mistakes a new user makes: each gets a clear error naming the argument and the fix."""
import numpy as np
import pytest

import probvae as pv


@pytest.fixture(scope="module")
def res(digits):
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))
    return pv.fit(vae, digits.train.x[:64], epochs=1, progress=False)


@pytest.fixture(scope="module")
def ss_res(digits):
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(8,))
    return pv.fit(ss, digits.train, labels=digits.train.label_subset(1), objective="enum",
                  epochs=1, progress=False)


def test_integer_mask_as_labels(digits):
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(8,))
    mask = np.zeros(len(digits.train), int)
    mask[digits.train.label_subset(1)] = 1
    with pytest.raises(ValueError, match="0/1 mask stored as integers.*dtype=bool"):
        pv.fit(ss, digits.train, labels=mask, objective="enum", epochs=1, progress=False)


def test_hidden_as_a_number():
    with pytest.raises(ValueError, match=r"hidden takes a tuple .*hidden=\(16,\)"):
        pv.models.VAE(input_dim=64, hidden=16)
    with pytest.raises(ValueError, match=r"hidden=\(16,\)"):
        pv.models.SSVAE(input_dim=64, hidden=16)


@pytest.mark.parametrize("kw,message", [
    ({"lr": "0.01"}, "lr must be a number > 0, got '0.01' .*write lr=0.01"),
    ({"epochs": 2.5}, "epochs must be an integer >= 1, got 2.5"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
])
def test_fit_argument_types(digits, kw, message):
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match=message):
        pv.fit(vae, digits.train.x[:32], progress=False, **{"epochs": 1, **kw})


def test_misspelled_fit_keyword(digits):
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'; did you mean "
                                        "'epochs'"):
        pv.fit(vae, digits.train.x[:32], epoch=5, progress=False)
    with pytest.raises(TypeError, match="did you mean 'num_particles'"):
        pv.fit(vae, digits.train.x[:32], objective="iwae", num_particle=4, progress=False)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
@pytest.mark.parametrize("seed", [-1, 2 ** 32, 1.5, True])
def test_seed_range_is_the_same_on_both_backends(backend, seed, digits):
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend=backend)
    with pytest.raises(ValueError, match=r"seed must be an integer in 0..4294967295"):
        pv.fit(vae, digits.train.x[:32], epochs=1, seed=seed, progress=False)


def test_seed_checks_outside_fit(res):
    for call in (lambda: pv.sample(res, n=2, seed=-3),
                 lambda: pv.evaluate(res, np.full((2, 64), 0.5), num_samples=2, seed=2 ** 40),
                 lambda: pv.encode(res, np.full((2, 64), 0.5), seed=-1)):
        with pytest.raises(ValueError, match="seed must be an integer in 0..4294967295"):
            call()
    assert pv.sample(res, n=2, seed=2 ** 32 - 1).shape == (2, 64)


def test_encode_of_one_1d_row(res, digits):
    with pytest.raises(ValueError, match=r"one 1-D row of 64 values.*x.reshape\(1, -1\)"):
        pv.encode(res, digits.test.x[0])
    assert pv.encode(res, digits.test.x[0].reshape(1, -1)).shape == (1, 2)


def test_sample_and_synthesize_counts(res, ss_res):
    with pytest.raises(ValueError, match="n .*must be an integer >= 1, got None"):
        pv.sample(res, n=None)
    with pytest.raises(ValueError, match="n .*must be an integer >= 1, got -3"):
        pv.synthesize(ss_res, -3)


def test_idx_file_with_no_images(tmp_path):
    import gzip  # noqa: F401 (plain files here)
    for stem, shape in (("train-images-idx3-ubyte", (0, 28, 28)),
                        ("train-labels-idx1-ubyte", (0,)),
                        ("t10k-images-idx3-ubyte", (0, 28, 28)),
                        ("t10k-labels-idx1-ubyte", (0,))):
        header = bytes([0, 0, 8, len(shape)]) + b"".join(int(s).to_bytes(4, "big") for s in shape)
        (tmp_path / stem).write_bytes(header)
    with pytest.raises(ValueError, match="holds 0 images"):
        pv.data.load("mnist", path=tmp_path)
