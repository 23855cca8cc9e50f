"""Traced programs kept between runs (NumPyro): a later fit with the same settings loads them
instead of tracing, and trains exactly as a fit that traces."""
import shutil

import numpy as np
import pytest

import probvae as pv
from probvae.backends import numpyro_backend as nb
from probvae.inference import numpyro_loop, objectives, programs


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """probvae's caches in a fresh folder for this module (XLA's compiled programs are shared
    by its tests); what was set before comes back after."""
    was_on = nb.BACKEND.program_cache.start() is not None   # as a first fit leaves it
    root = tmp_path_factory.mktemp("cache")
    yield root
    numpyro_loop._COMPILED.clear()
    nb.compilation_cache("default" if was_on else None)


@pytest.fixture
def program_dir(cache_root):
    """An empty folder of traced programs, and nothing compiled in memory (a new process)."""
    nb.compilation_cache(cache_root / "jax")
    shutil.rmtree(cache_root / "programs", ignore_errors=True)
    numpyro_loop._COMPILED.clear()
    return cache_root / "programs"


@pytest.fixture
def exports(monkeypatch):
    """Counts the programs traced (exported) from here on."""
    calls = []
    real = programs.export

    def counting(fn, *args):
        calls.append(fn)
        return real(fn, *args)
    monkeypatch.setattr(programs, "export", counting)
    return calls


def _fit(model, data, valid, **kw):
    kw.setdefault("seed", 3)
    return pv.fit(model, data, validation=valid, epochs=2, batch_size=16, progress=False, **kw)


def _vae(**kw):
    return pv.models.VAE(input_dim=64, latent_dim=3, hidden=(16,), backend="numpyro", **kw)


class MyVAE(pv.models.VAE):
    """A user's subclass: its code may change between runs under the same name."""


class MyGaussian(pv.likelihoods.Gaussian):
    """A user's likelihood, inside a built-in model."""


def test_a_second_run_loads_the_programs_and_trains_the_same(small, program_dir, exports):
    _fit(_vae(), small.train, small.valid)
    assert len(list(program_dir.glob("*.npz"))) == 1 and len(exports) == 2  # epoch, valid
    numpyro_loop._COMPILED.clear()                            # as a new process
    other = pv.data.from_arrays(small.train.x[::-1].copy())  # new data, the same shapes
    warm = _fit(_vae(), other, small.valid, seed=4)       # and another seed
    assert len(exports) == 2                                  # nothing traced this time
    numpyro_loop._COMPILED.clear()
    plain = _fit(MyVAE(input_dim=64, latent_dim=3, hidden=(16,), backend="numpyro"), other,
                 small.valid, seed=4)                         # a user's class: plain jit
    assert len(exports) == 2 and len(list(program_dir.glob("*.npz"))) == 1   # never kept
    np.testing.assert_allclose(warm.history["train_loss"], plain.history["train_loss"],
                               rtol=1e-6)
    np.testing.assert_allclose(warm.history["valid_loss"], plain.history["valid_loss"],
                               rtol=1e-6)


def test_a_damaged_file_is_traced_again_and_settings_have_their_own(small, program_dir, exports):
    first = _fit(_vae(), small.train, small.valid)
    (path,) = program_dir.glob("*.npz")
    path.write_bytes(b"not a program")
    numpyro_loop._COMPILED.clear()
    again = _fit(_vae(), small.train, small.valid)
    assert len(exports) == 4                                  # traced both times
    assert again.history["train_loss"] == first.history["train_loss"]
    assert sorted(programs.load(path.stem)) == ["epoch", "eval"]   # kept again
    _fit(_vae(), small.train, small.valid, lr=1e-2)          # lr is inside Adam's program:
    assert len(list(program_dir.glob("*.npz"))) == 2         # other settings, other programs


def test_a_refit_with_another_validation_size_gets_its_own_program(small, program_dir):
    first = _fit(_vae(), small.train, small.valid)
    half = pv.data.from_arrays(small.valid.x[:16])            # same model and data, in memory
    second = _fit(_vae(), small.train, half)
    assert second.history["train_loss"] == first.history["train_loss"]
    assert second.history["valid_loss"] != first.history["valid_loss"]
    assert len(list(program_dir.glob("*.npz"))) == 2


def test_a_program_that_holds_weights_is_not_kept(program_dir):
    import jax
    import jax.numpy as jnp
    weights = jnp.arange(100.0)
    held = programs.export(jax.jit(lambda x: x * weights), jnp.ones(100))
    np.testing.assert_allclose(held.compile()(jnp.ones(100)), weights)   # right for this run
    assert programs._largest_constant(held.exported) == 100
    assert programs.save(programs.key("held"), {"f": held}) is None     # never kept
    small = programs.export(jax.jit(lambda x: x * jnp.arange(4.0)), jnp.ones(4))
    assert programs.save(programs.key("small"), {"f": small, "g": held}) is None
    assert programs.save(programs.key("small"), {"f": small}) is not None
    assert [p.name for p in program_dir.glob("*.npz")] == [f"{programs.key('small')}.npz"]


def test_only_probvaes_own_code_is_kept(small, program_dir):
    assert programs.own_code(_vae(prior="vamp"), pv.models.SSVAE(input_dim=64, num_classes=10))
    assert not programs.own_code(MyVAE(input_dim=64, latent_dim=3))
    assert not programs.own_code(_vae(likelihood=MyGaussian()))  # a user's part inside
    assert programs.own_code(objectives.get("elbo"))
    mine = objectives.register("test_programs_elbo", pyro=lambda bk: bk.infer.Trace_ELBO(),
                               numpyro=lambda bk: bk.infer.Trace_ELBO(), overwrite=True)
    try:
        assert not programs.own_code(mine)   # re-registered under the same name, other code
        _fit(_vae(), small.train, small.valid, objective="test_programs_elbo")
        assert not list(program_dir.glob("*.npz"))
    finally:
        objectives._REGISTRY.pop("test_programs_elbo", None)   # other tests list the names
    nb.compilation_cache(None)                                # the cache off: nothing kept
    assert nb.program_cache_dir() is None and programs.load(programs.key("x")) == {}


def test_init_is_traced_once_and_a_refit_traces_nothing(small, program_dir, monkeypatch):
    """A first fit traces SVI's init once (the abstract evaluation of its output's shapes for
    the epoch and validation programs reuses that trace); a refit of the same configuration on
    other data of the same shape (an estimator's refit) traces no init again."""
    from numpyro.infer import SVI
    calls, real = [], SVI.init

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(SVI, "init", counting)
    first = _fit(_vae(), small.train, small.valid)
    assert len(calls) == 1
    other = pv.data.from_arrays(small.train.x[::-1].copy())
    again = _fit(_vae(), other, small.valid)
    assert len(calls) == 1
    assert np.isfinite(again.history["train_loss"]).all()
    assert again.history["train_loss"] != first.history["train_loss"]
