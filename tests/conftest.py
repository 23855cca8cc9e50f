"""Shared fixtures: a tiny digits split, a backend parametrisation and a cache of small fits.

Everything here is sized so the whole default suite runs in a couple of minutes on two CPU
cores: 64 training rows, latent_dim 3, one hidden layer of 16 units, 2 epochs.
"""
import os
from types import SimpleNamespace

import numpy as np
import pytest

import probvae as pv

# The tests train tiny networks, where torch's second OpenMP thread gains nothing; while another
# process holds a core it makes every parallel torch op wait for that thread's time slice (the
# Pyro long-run and ADGM tests took 2 min 59 s beside a training run, 1 min 13 s with one
# thread). Set before torch loads (probvae loads it with the first Pyro model); child
# processes inherit it. A value of your own wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

BACKENDS = ("pyro", "numpyro")
INPUT_DIM = 64
LATENT_DIM = 3
HIDDEN = (16,)
N_TRAIN, N_VALID, N_TEST = 64, 32, 16

#: which data each likelihood trains on ("unit": [0, 1], "binary": {0, 1}, "counts": 0..16)
LIKELIHOOD_DATA = {"continuous_bernoulli": "unit", "gaussian": "unit", "laplace": "unit",
                   "beta": "unit", "bernoulli": "binary", "poisson": "counts",
                   "negative_binomial": "counts"}


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run a test once per backend."""
    return request.param


@pytest.fixture(scope="session")
def digits():
    return pv.data.load("digits", seed=0)


def _splits(digits, transform):
    def make(x):
        return pv.data.from_arrays(transform(x), image_shape=(8, 8))
    return SimpleNamespace(train=make(digits.train.x[:N_TRAIN]),
                           valid=make(digits.valid.x[:N_VALID]),
                           test=make(digits.test.x[:N_TEST]))


@pytest.fixture(scope="session")
def small(digits):
    """Tiny splits of digits in [0, 1] (train 64, valid 32, test 16 rows)."""
    return _splits(digits, lambda x: x)


@pytest.fixture(scope="session")
def small_data(digits):
    """The tiny splits for each kind of data: ``unit``, ``binary`` and ``counts``."""
    return {"unit": _splits(digits, lambda x: x),
            "binary": _splits(digits, lambda x: (x > 0.5).astype(np.float32)),
            "counts": _splits(digits, lambda x: np.round(x * 16).astype(np.float32))}


@pytest.fixture(scope="session")
def data_for(small_data):
    """``data_for(likelihood)``: the tiny splits a likelihood trains on (in its support). A
    fixture, since ``from conftest import ...`` finds whichever conftest loaded last."""
    return lambda likelihood: small_data[LIKELIHOOD_DATA[likelihood]]


@pytest.fixture(scope="session")
def make_vae():
    """``make_vae(backend, **kw)``: a tiny VAE for the digits (64 features)."""
    def make(backend, **kw):
        kw.setdefault("latent_dim", LATENT_DIM)
        kw.setdefault("hidden", HIDDEN)
        return pv.models.VAE(input_dim=INPUT_DIM, backend=backend, **kw)
    return make


@pytest.fixture(scope="session")
def quick_fit():
    """``quick_fit(model, data, **kw)``: ``pv.fit`` with small defaults and no progress bar."""
    def run(model, data, **kw):
        kw.setdefault("epochs", 2)
        kw.setdefault("batch_size", 32)
        kw.setdefault("progress", False)
        return pv.fit(model, data, **kw)
    return run


@pytest.fixture(scope="session")
def fitted(small_data, make_vae, quick_fit):
    """``fitted(backend, prior, likelihood)``: a cached 2-epoch fit (seed 0) on the right data.

    Shared by the model, prior, likelihood and evaluation tests so each configuration is
    compiled and trained once per session. Returns ``(result, splits)``.
    """
    cache = {}

    def get(backend, prior="normal", likelihood="continuous_bernoulli"):
        key = (backend, prior, likelihood)
        if key not in cache:
            data = small_data[LIKELIHOOD_DATA[likelihood]]
            vae = make_vae(backend, prior=prior, likelihood=likelihood)
            cache[key] = (quick_fit(vae, data.train, seed=0), data)
        return cache[key]
    return get

