"""fit's ``optimizer=`` and ``lr=`` (a number or a schedule) on both backends: the optimizer
chosen is the one that steps, a schedule's rate is applied at each step, clipping works with
every form, and a run stopped at an epoch and resumed ends with the parameters of one never
stopped (the optimizer's state and step count are checkpointed)."""
import shutil

import numpy as np
import optax
import pytest
import torch

import probvae as pv
from probvae import backends
from probvae.backends.base import OPTIMIZER_NAMES

ROWS, BATCH = 128, 32
STEPS = ROWS // BATCH              # optimizer steps per epoch


@pytest.fixture(scope="module")
def x():
    return pv.data.load("digits", seed=0).train.x[:ROWS]


def _vae(backend):
    return pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,), backend=backend)


def _fit(backend, x, epochs=1, **kw):
    return pv.fit(_vae(backend), x, epochs=epochs, batch_size=BATCH, seed=0, validation=None,
                  progress=False, **kw)


def _same(a, b, backend):
    """Equal parameters: bit for bit on NumPyro, within float rounding on Pyro."""
    assert sorted(a.params) == sorted(b.params)
    for k in a.params:
        if backend == "numpyro":
            np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
        else:
            np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-6, atol=1e-7, err_msg=k)


def _distance(a, b) -> float:
    return max(float(np.abs(a.params[k] - b.params[k]).max()) for k in a.params)


def _cut(step_limit, lr):
    """A schedule: ``lr`` for the first ``step_limit`` steps, then 0 (in jax.numpy, which both
    backends can call: NumPyro traces it, Pyro calls it with an int)."""
    import jax.numpy as jnp
    return lambda step: jnp.where(step < step_limit, lr, 0.0)


def test_every_name_builds_on_both_backends():
    for name in OPTIMIZER_NAMES:
        assert isinstance(backends.get("numpyro").optimizer(name, 1e-3),
                          optax.GradientTransformation)
        assert backends.get("pyro").optimizer(name, 1e-3).pt_optim_args["lr"] == 1e-3


def test_the_optimizer_named_is_the_one_that_steps(backend, x):
    adam, sgd = _fit(backend, x), _fit(backend, x, optimizer="sgd", lr=1e-3)
    momentum = _fit(backend, x, optimizer=("sgd", {"momentum": 0.9}), lr=1e-3)
    assert _distance(adam, sgd) > 1e-4 and _distance(sgd, momentum) > 1e-6
    assert "optimizer" not in adam.options and adam.options["lr"] == 1e-3   # as before
    assert sgd.options["optimizer"] == "sgd"
    assert momentum.options["optimizer"] == {"name": "sgd", "options": {"momentum": 0.9}}


def test_a_schedule_sets_the_rate_of_each_step(backend, x):
    """lr for one epoch's steps, then 0: two epochs end where one epoch at lr ends."""
    one = _fit(backend, x, optimizer="sgd", lr=0.01)
    cut = _fit(backend, x, epochs=2, optimizer="sgd", lr=_cut(STEPS, 0.01))
    _same_close(one, cut)
    assert _distance(_fit(backend, x, epochs=2, optimizer="sgd", lr=0.01), one) > 1e-5
    assert cut.options["lr"]["custom"].endswith("test_optimizers._cut.<locals>.<lambda>")
    still = _fit(backend, x, lr=lambda step: 0.0 * step)     # a rate of 0: nothing moves
    assert _distance(still, _fit(backend, x, lr=_cut(0, 0.01))) == 0


def _same_close(a, b):
    for k in a.params:              # (an epoch at a constant rate vs the schedule's program)
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("form", ["name", "own"])
def test_clip_norm_bounds_every_step(backend, x, form):
    """SGD at rate 1 with the gradient clipped to norm c moves the parameters by at most c a
    step: with clip_norm=1e-4 the first epoch moves each value by at most 4e-4."""
    own = optax.sgd(1.0) if backend == "numpyro" else torch.optim.SGD
    kw = ({"optimizer": "sgd", "lr": 1.0} if form == "name" else
          {"optimizer": own} if backend == "numpyro" else {"optimizer": own, "lr": 1.0})
    start = _fit(backend, x, lr=lambda step: 0.0 * step)
    clipped = _fit(backend, x, clip_norm=1e-4, **kw)
    assert 0 < _distance(clipped, start) <= STEPS * 1e-4 * (1 + 1e-3)


def test_the_librarys_own_optimizer(backend, x):
    if backend == "numpyro":
        own = _fit(backend, x, optimizer=optax.adamw(1e-3, weight_decay=1e-2))
        assert own.options["optimizer"] == {"custom": "optax.GradientTransformation"}
        assert own.options["lr"] is None
    else:
        own = _fit(backend, x, optimizer=torch.optim.AdamW, lr=1e-3)
        assert own.options["optimizer"] == {"custom": "torch.optim.AdamW"}
        sgd = _fit(backend, x, optimizer=(torch.optim.SGD, {"momentum": 0.9}), lr=1e-3)
        _same(sgd, _fit(backend, x, optimizer=("sgd", {"momentum": 0.9}), lr=1e-3), backend)
    _same_close(own, _fit(backend, x, optimizer="adamw", lr=1e-3))


def _schedule():
    """A decaying rate (an optax schedule: it takes a JAX or a Python step)."""
    return optax.exponential_decay(0.02, STEPS, 0.5)


def test_a_resumed_run_ends_as_one_never_stopped(backend, x, tmp_path):
    kw = {"optimizer": ("sgd", {"momentum": 0.9}), "lr": _schedule()}
    full = _fit(backend, x, epochs=3, **kw)
    _fit(backend, x, epochs=1, checkpoint=tmp_path / "run", **kw)
    for copy in ("shifted", "loaded", "refused"):      # (a resumed run writes its folder)
        shutil.copytree(tmp_path / "run", tmp_path / copy)
    resumed = _fit(backend, x, epochs=3, resume=tmp_path / "run", **kw)
    _same(resumed, full, backend)
    # the schedule continues from the saved step count: counted from 0 again, it would end
    # elsewhere
    restarted = _fit(backend, x, epochs=3, resume=tmp_path / "shifted",
                     optimizer=kw["optimizer"], lr=lambda step: _schedule()(step - STEPS))
    assert _distance(restarted, full) > 1e-6
    # continued in memory and from a loaded folder: the schedule is given again
    half = _fit(backend, x, epochs=1, **kw)
    _same(pv.fit(half, x, epochs=3, lr=_schedule(), progress=False), full, backend)
    _same(pv.fit(pv.load(tmp_path / "loaded"), x, epochs=3, lr=_schedule(), progress=False),
          full, backend)
    with pytest.raises(ValueError, match="schedule .* pass it again, lr="):
        pv.fit(half, x, epochs=3, progress=False)
    with pytest.raises(ValueError, match="schedule .* pass the schedule again, lr="):
        _fit(backend, x, epochs=3, resume=tmp_path / "refused", optimizer=kw["optimizer"])
    with pytest.raises(ValueError, match="optimizer {'name': 'sgd'.*resume with the same"):
        _fit(backend, x, epochs=3, resume=tmp_path / "refused", lr=_schedule())
    with pytest.raises(ValueError, match="lr is a number now: pass the schedule again"):
        pv.fit(half, x, epochs=3, lr=0.01, progress=False)


def test_a_users_optimizer_resumes_when_given_again(backend, x, tmp_path):
    opt = (optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(_schedule(), momentum=0.5))
           if backend == "numpyro" else (torch.optim.RMSprop, {"momentum": 0.5}))
    kw = {"optimizer": opt} if backend == "numpyro" else {"optimizer": opt, "lr": _schedule()}
    full = _fit(backend, x, epochs=2, **kw)
    half = _fit(backend, x, epochs=1, checkpoint=tmp_path / "run", **kw)
    with pytest.raises(ValueError, match="user's optimizer .* pass it again, optimizer="):
        _fit(backend, x, epochs=2, resume=tmp_path / "run")
    _same(_fit(backend, x, epochs=2, resume=tmp_path / "run", **kw), full, backend)
    with pytest.raises(ValueError, match="user's optimizer .* pass it again, optimizer="):
        pv.fit(half, x, epochs=2, progress=False)
    _same(pv.fit(half, x, progress=False, epochs=2, **kw), full, backend)


def test_a_pyro_optimizer_that_changes_its_settings_resumes_exactly(x, tmp_path):
    """Pyro's ClippedAdam decays its lr in its parameter group as it steps: the group's
    settings are part of the checkpoint too."""
    import pyro.optim
    opt = pyro.optim.ClippedAdam({"lr": 1e-2, "lrd": 0.9})
    full = _fit("pyro", x, epochs=2, optimizer=opt)
    _fit("pyro", x, epochs=1, optimizer=opt, checkpoint=tmp_path / "run")
    _same(_fit("pyro", x, epochs=2, optimizer=opt, resume=tmp_path / "run"), full, "pyro")
    assert full.options["optimizer"]["custom"].startswith("pyro.optim.PyroOptim(pyro.optim."
                                                          "clipped_adam.ClippedAdam")


def test_an_optimizer_of_the_other_backend_is_named(x):
    with pytest.raises(TypeError, match="backend='numpyro'.*torch optimizer class"):
        _fit("pyro", x, optimizer=optax.adam(1e-3))
    with pytest.raises(TypeError, match="backend='pyro'.*optax transformation"):
        _fit("numpyro", x, optimizer=torch.optim.Adam, lr=1e-3)
    with pytest.raises(TypeError, match="the torch optimizer's class, not an instance"):
        _fit("pyro", x, optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], 0.1))


@pytest.mark.parametrize("kw, error, words", [
    ({"optimizer": optax.adam(1e-3), "lr": 1e-2}, ValueError, "holds its own learning rate"),
    ({"optimizer": "adamm"}, ValueError, "did you mean 'adam'"),
    ({"optimizer": ("sgd", {"momentun": 0.9})}, ValueError, "does not take the option"),
    ({"optimizer": ("sgd", {"lr": 0.1})}, ValueError, "not among the optimizer's options"),
    ({"lr": "0.01"}, ValueError, "write lr=0.01"),
    ({"lr": lambda step: 0.01 if step < 10 else 0.001}, TypeError, "jnp.where"),
    ({"lr": lambda step: -1.0}, ValueError, "not a learning rate"),
])
def test_bad_settings_are_named(x, kw, error, words):
    with pytest.raises(error, match=words):
        _fit("numpyro", x, **kw)


def test_bad_torch_settings_are_named(x):
    with pytest.raises(ValueError, match=r"torch.optim.SGD\) refuses"):
        _fit("pyro", x, optimizer=("sgd", {"momentum": -1.0}), lr=0.1)
    with pytest.raises(ValueError, match="holds its settings"):
        import pyro.optim
        _fit("pyro", x, optimizer=(pyro.optim.Adam({"lr": 1e-3}), {"eps": 1e-6}))


def test_the_command_line_takes_a_name(tmp_path, capsys):
    from probvae.applications.cli import main
    run = tmp_path / "run"
    fast = ["--hidden", "8", "--latent-dim", "2", "--eval-samples", "4", "--no-progress",
            "--backend", "pyro"]
    assert main(["train", "--epochs", "1", "--optimizer", "sgd", "--lr", "0.001", *fast,
                 "--out", str(run)]) == 0
    config = pv.load(run).options
    assert config["optimizer"] == "sgd" and config["lr"] == 0.001
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert pv.load(run).options["optimizer"] == "sgd"
