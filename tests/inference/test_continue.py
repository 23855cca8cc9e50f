"""Save, load and continue any fit: a user's (model, guide) pair saves and loads like a built-in
model (its functions passed again, checked against the saved sites and shapes), and
``pv.fit(res, data, epochs=N)`` continues a result, fitted or loaded, to the same numbers as an
unbroken fit of N epochs (bit for bit on NumPyro, within float32 round-off on Pyro)."""
import json
import re
import shutil

import numpy as np
import pytest

import probvae as pv
from probvae.inference import checkpoint
from probvae.outputs import DamagedFileError
from user_pairs import hierarchy


def fit_pair(backend, data, epochs, **kw):
    return pv.fit(hierarchy(backend), data, backend=backend, epochs=epochs, batch_size=32,
                  progress=False, **kw)


def assert_same_fit(got, want, backend):
    """Parameters and history as one unbroken fit's: bit for bit on NumPyro, within float32
    round-off on Pyro (as tests/inference/test_long_runs.py checks a resumed run)."""
    a, b = got.bk.params_to_numpy(got.param_state), want.bk.params_to_numpy(want.param_state)
    assert sorted(a) == sorted(b)
    assert len(got.history["train_loss"]) == len(want.history["train_loss"])
    if backend == "numpyro":
        for k in a:
            assert np.array_equal(a[k], b[k]), k
        assert got.history["train_loss"] == want.history["train_loss"]
        assert got.history["valid_loss"] == want.history["valid_loss"]
    else:
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(got.history["train_loss"], want.history["train_loss"],
                                   rtol=1e-6)
    assert got.best_epoch == want.best_epoch and got.status == "completed"


def test_a_users_pair_saves_loads_and_continues(backend, small, tmp_path):
    full = fit_pair(backend, small.train, 4)
    half = fit_pair(backend, small.train, 2)
    # in memory: the result carries its parameters, optimizer and random state
    assert_same_fit(pv.fit(half, small.train, epochs=4, progress=False), full, backend)
    # saved and loaded with the pair passed again: the same scores ...
    run = pv.save(half, tmp_path / "run")
    with pytest.raises(ValueError, match=r"model=\(model, guide\)"):
        pv.load(run)
    loaded = pv.load(run, model=hierarchy(backend))
    assert loaded.model.contract == half.model.contract
    scores = [pv.evaluate(r, small.test, num_samples=4, seed=1) for r in (half, loaded)]
    assert scores[0]["elbo"] == pytest.approx(scores[1]["elbo"], rel=1e-6)
    # ... and it continues, loaded or resumed from the folder, to the unbroken fit's numbers
    assert_same_fit(pv.fit(loaded, small.train, epochs=4, progress=False), full, backend)
    resumed = fit_pair(backend, small.train, 4, resume=run, checkpoint=tmp_path / "resumed")
    assert_same_fit(resumed, full, backend)
    assert half.history["train_loss"] == full.history["train_loss"][:2]   # half unchanged
    assert pv.load(tmp_path / "resumed", model=hierarchy(backend)).history == resumed.history


def test_a_pair_that_does_not_match_is_refused(backend, small, tmp_path):
    run = pv.save(fit_pair(backend, small.train, 1), tmp_path / "run")
    with pytest.raises(ValueError, match="saved latent site 'top' is not in the pair"):
        pv.load(run, model=hierarchy(backend, top="peak"))
    with pytest.raises(ValueError, match=r"latent site 'mid' has event shape \(2,\) in the "
                                         r"saved run and \(3,\) in the pair"):
        pv.load(run, model=hierarchy(backend, mid=3))
    name, shapes = (("enc$$$weight", "(6, 64) in params.npz and (7, 64)") if backend == "pyro"
                    else ("a", "(64, 6) in params.npz and (64, 7)"))
    with pytest.raises(ValueError, match=re.escape(f"parameter '{name}' has shape {shapes} "
                                                   "in the pair")):
        pv.load(run, model=hierarchy(backend, extra=1))
    with pytest.raises(TypeError, match="model= takes the"):
        pv.load(run, model=hierarchy(backend)[0])


def test_continuing_needs_the_same_data(small):
    half = fit_pair("numpyro", small.train, 1)
    with pytest.raises(ValueError, match="cannot continue this result: data was .* other "
                                         "data"):
        pv.fit(half, small.valid, epochs=2, progress=False)
    with pytest.raises(ValueError, match="resume="):
        pv.fit(half, small.train, epochs=2, resume=True, progress=False)


def test_params_are_constrained_and_named_alike(small):
    """res.params is the same on both backends: constrained values under the names the pair
    gave them (res.param_state is each backend's own state; Pyro's holds unconstrained)."""
    def pair(backend):
        bk = pv.backends.get(backend)

        def model(x):
            w = bk.param("w", np.full((2, 64), 0.01, np.float32))
            df = bk.param("df", np.array(3.0, np.float32),
                          constraint=bk.constraints.greater_than(1.0))
            with bk.plate("rows", x.shape[0]):
                z = bk.sample("z", bk.dist.Normal(0.0, 1.0).expand([2]).to_event(1))
                bk.sample("obs", bk.dist.StudentT(df, z @ w, 0.5).to_event(1), obs=x)

        def guide(x):
            a = bk.param("a", np.full((64, 2), 0.01, np.float32))
            s = bk.param("s", np.ones(2, np.float32), constraint=bk.constraints.positive)
            with bk.plate("rows", x.shape[0]):
                bk.sample("z", bk.dist.Normal(x @ a, s).to_event(1))
        return model, guide
    values = {}
    for backend in ("pyro", "numpyro"):
        res = pv.fit(pair(backend), small.train, backend=backend, epochs=1, batch_size=32,
                     lr=0.05, progress=False)
        values[backend] = res.params
        assert values[backend]["df"] > 1 and np.all(values[backend]["s"] > 0)
        assert all(isinstance(v, np.ndarray) for v in values[backend].values())
    assert sorted(values["pyro"]) == sorted(values["numpyro"]) == ["a", "df", "s", "w"]
    assert values["pyro"]["w"].shape == values["numpyro"]["w"].shape == (2, 64)
    # the hierarchy's own df on both backends, beside its networks' arrays
    for backend in ("pyro", "numpyro"):
        res = fit_pair(backend, small.train, 1)
        assert res.params["df"] > 1
        if backend == "pyro":                 # its torch networks: "<module>.<torch name>"
            assert {"dec.weight", "enc.bias", "up.weight"} <= set(res.params)
    pyro_res = pv.fit(pair("pyro"), small.train, backend="pyro", epochs=1, progress=False)
    assert float(pyro_res.param_state["params"]["df"]) < float(pyro_res.params["df"])


def test_the_vae_saves_loads_and_continues(backend, make_vae, small, tmp_path):
    def fit(model, epochs, **kw):
        return pv.fit(model, small.train, epochs=epochs, batch_size=16,
                      validation=small.valid, progress=False, **kw)
    full = fit(make_vae(backend), 4)
    half = fit(make_vae(backend), 2)
    assert_same_fit(fit(half, 4), full, backend)
    loaded = pv.load(pv.save(half, tmp_path / "run"))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint.json", "config.json", "history.json", "params.npz",
        json.loads((tmp_path / "run" / "checkpoint.json").read_text())["arrays"]]
    assert_same_fit(fit(loaded, 4), full, backend)
    assert_same_fit(fit(make_vae(backend), 4, resume=tmp_path / "run",
                        checkpoint=tmp_path / "resumed"), full, backend)
    # saved without its training state: it loads and scores, and says it cannot continue
    bare = pv.load(pv.save(half, tmp_path / "bare", training_state=False))
    with pytest.raises(ValueError, match="carries no training state"):
        fit(bare, 4)
    with pytest.raises(ValueError, match="without model="):
        pv.load(tmp_path / "run", model=hierarchy(backend))


@pytest.fixture(scope="module")
def pair_run(small, tmp_path_factory):
    """A run folder of the hierarchy on NumPyro, saved after one epoch."""
    return pv.save(fit_pair("numpyro", small.train, 1), tmp_path_factory.mktemp("pair") / "run")


@pytest.mark.parametrize("field, value, named", [
    (("contract", "data_plate"), None, "model.contract.data_plate"),
    (("contract", "latents", 0, "event_shape"), [2 ** 40], "model.contract.latents[0]"
                                                           ".event_shape[0]"),
    (("contract", "latents", 1, "name"), "top", "model.contract.latents[1].name"),
    (("inputs", "x", "dtype"), "object", "model.inputs.x.dtype"),
    (("inputs", "x", "shape"), [2 ** 20, 2 ** 20], "model.inputs.x.shape"),
    (("backend",), 3, "model.backend"),
])
def test_a_damaged_pair_record_is_named(pair_run, tmp_path, field, value, named):
    run = shutil.copytree(pair_run, tmp_path / "run")
    cfg = json.loads((run / "config.json").read_text())
    where = cfg["model"]
    for key in field[:-1]:
        where = where[key]
    where[field[-1]] = value
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DamagedFileError, match=re.escape(f"config.json: field '{named}")):
        checkpoint.read_config(run)
    with pytest.raises(DamagedFileError, match="config.json: field"):
        pv.load(run, model=hierarchy("numpyro"))
