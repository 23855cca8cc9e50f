"""Long runs lose nothing: checkpoints, exact resume after SIGKILL or Ctrl-C, divergence kept
and explained, gradient clipping, runs that refuse to be replaced by accident."""
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import probvae as pv
from probvae.inference.tracker import Tracker

N_TRAIN, EPOCHS = 256, 12
#: the training both the child process and the test run: same model, data, settings and seed
SCRIPT = """
import sys, json, numpy as np, probvae as pv
backend, run, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = pv.data.load("digits", seed=0)
vae = pv.models.VAE(input_dim=64, latent_dim=3, hidden=(32,), backend=backend)
res = pv.fit(vae, data.train.x[:{n}], validation=data.valid.x[:64], epochs=epochs,
             batch_size=8, seed=3, progress=False, checkpoint=run, checkpoint_every=1,
             resume=True)
print(json.dumps({{"status": res.status, "message": res.message}}))
""".format(n=N_TRAIN)


def train_in_process(backend, run=None, resume=None, epochs=EPOCHS):
    data = pv.data.load("digits", seed=0)
    vae = pv.models.VAE(input_dim=64, latent_dim=3, hidden=(32,), backend=backend)
    return pv.fit(vae, data.train.x[:N_TRAIN], validation=data.valid.x[:64], epochs=epochs,
                  batch_size=8, seed=3, progress=False, checkpoint=run, checkpoint_every=1,
                  resume=resume)


def flat_params(res):
    return res.bk.params_to_numpy(res.param_state)


@pytest.fixture(scope="module")
def uninterrupted():
    cache = {}

    def get(backend):
        if backend not in cache:
            cache[backend] = train_in_process(backend)
        return cache[backend]
    return get


def start_child(backend, run, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(script), backend, str(run), str(EPOCHS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epoch(proc, run, epoch, timeout=120):
    """Block until the run's checkpoint has reached ``epoch``."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if json.loads((run / "checkpoint.json").read_text())["epoch"] >= epoch:
                return
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            raise AssertionError(f"the child ended early: {proc.stderr.read()[-2000:]}")
        time.sleep(0.005)
    raise AssertionError("no checkpoint appeared in time")


def assert_same_run(resumed, full, backend):
    a, b = flat_params(resumed), flat_params(full)
    assert sorted(a) == sorted(b)
    for key in ("train_loss", "valid_loss"):
        assert len(resumed.history[key]) == len(full.history[key]) == EPOCHS
    if backend == "numpyro":       # bit for bit
        for k in a:
            assert np.array_equal(a[k], b[k]), k
        assert resumed.history["train_loss"] == full.history["train_loss"]
        assert resumed.history["valid_loss"] == full.history["valid_loss"]
    else:                          # Pyro: same within float32 round-off
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(resumed.history["train_loss"], full.history["train_loss"],
                                   rtol=1e-6)
    assert resumed.best_epoch == full.best_epoch


def test_sigkill_then_resume_ends_like_the_uninterrupted_run(backend, tmp_path, uninterrupted):
    run = tmp_path / "run"
    proc = start_child(backend, run, tmp_path)
    wait_for_epoch(proc, run, 3)
    time.sleep(np.random.default_rng().uniform(0, 0.05))     # anywhere, even mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = json.loads((run / "checkpoint.json").read_text())["epoch"]
    assert killed_at < EPOCHS, "the child finished before it was killed"
    assert pv.load(run).status == "running"                  # a killed run still loads
    resumed = train_in_process(backend, run=run, resume=run)
    assert resumed.status == "completed"
    assert_same_run(resumed, uninterrupted(backend), backend)
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("state-")) == [
        "state-%06d.npz" % json.loads((run / "checkpoint.json").read_text())["counter"]]


def test_ctrl_c_stops_cleanly_and_resumes(backend, tmp_path, uninterrupted):
    run = tmp_path / "run"
    proc = start_child(backend, run, tmp_path)
    wait_for_epoch(proc, run, 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    if not out.strip():
        pytest.fail(f"no result printed: {err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "interrupted", result
    assert "stopped by Ctrl-C" in err and f"resume={str(run)!r}" in err
    assert "probvae train" not in err        # the CLI resumes only the runs it started
    resumed = train_in_process(backend, run=run, resume=run)
    assert_same_run(resumed, uninterrupted(backend), backend)


def test_checkpointed_run_folder(backend, tmp_path):
    run = tmp_path / "run"
    res = train_in_process(backend, run=run, epochs=3)
    names = sorted(p.name for p in run.iterdir())
    assert names == ["checkpoint.json", "config.json", "history.json", "params.npz",
                     "state-000003.npz"]
    loaded = pv.load(run)
    assert loaded.status == "completed" and loaded.history["train_loss"] == \
        res.history["train_loss"]
    with pytest.raises(ValueError, match="resume=.*overwrite=True"):
        train_in_process(backend, run=run, epochs=3)
    # a finished run resumed with more epochs continues where it stopped
    longer = train_in_process(backend, run=run, resume=run, epochs=5)
    assert len(longer.history["train_loss"]) == 5
    assert longer.history["train_loss"][:3] == res.history["train_loss"]


def test_resume_refuses_other_settings_or_data(tmp_path):
    run = tmp_path / "run"
    train_in_process("numpyro", run=run, epochs=2)
    data = pv.data.load("digits", seed=0)
    vae = pv.models.VAE(input_dim=64, latent_dim=3, hidden=(32,))
    with pytest.raises(ValueError, match="batch_size was 8 there and is 16 now"):
        pv.fit(vae, data.train.x[:N_TRAIN], validation=data.valid.x[:64], epochs=4,
               batch_size=16, seed=3, progress=False, resume=run)
    with pytest.raises(ValueError, match="data was"):
        pv.fit(vae, data.train.x[1:N_TRAIN + 1], validation=data.valid.x[:64], epochs=4,
               batch_size=8, seed=3, progress=False, resume=run)
    with pytest.raises(ValueError, match="model was"):
        pv.fit(pv.models.VAE(input_dim=64, latent_dim=4, hidden=(32,)), data.train.x[:N_TRAIN],
               validation=data.valid.x[:64], epochs=4, batch_size=8, seed=3, progress=False,
               resume=run)
    with pytest.raises(FileNotFoundError, match="no training checkpoint"):
        pv.fit(vae, data.train.x, resume=tmp_path / "nothing", progress=False)



def test_resume_true_starts_again_over_a_run_that_crashed_before_its_first_checkpoint(
        tmp_path, monkeypatch):
    """A run that crashed in its first epoch left only its config.json: nothing learned, so
    ``resume=True`` starts it again (it refused before: 'holds an earlier probvae run')."""
    from probvae.inference import numpyro_loop
    run = tmp_path / "run"

    def crash(self):
        raise RuntimeError("crashed in the first validation")
    with monkeypatch.context() as m:
        m.setattr(numpyro_loop.Loop, "validate", crash)
        with pytest.raises(RuntimeError, match="first validation"):
            train_in_process("numpyro", run=run, resume=True, epochs=2)
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    res = train_in_process("numpyro", run=run, resume=True, epochs=2)
    assert len(res.history["train_loss"]) == 2 and (run / "params.npz").is_file()
    # a folder with a checkpoint is continued, and one with other files is still refused
    assert len(train_in_process("numpyro", run=run, resume=True, epochs=3)
               .history["train_loss"]) == 3
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    with pytest.raises(Exception, match="did not write"):
        train_in_process("numpyro", run=other, resume=True, epochs=2)
    assert (other / "config.json").read_text() == "{}"

# ---------------------------------------------------------------- divergence
def test_divergence_stops_and_keeps_the_best_parameters(backend, small, make_vae, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = pv.fit(make_vae(backend), small.train, validation=small.valid, lr=1e8,
                     epochs=20, batch_size=16, progress=False, checkpoint=tmp_path / "run")
    assert res.status == "diverged" and res.diverged
    assert "diverged at epoch" in res.message and "lr" in res.message
    assert any("diverged at epoch" in str(w.message) for w in caught)
    last = res.history["train_loss"][-1]
    assert not np.isfinite(last) or last > 1e6         # NaN, or finite only in name
    assert len(res.history["train_loss"]) < 20
    flat = flat_params(res)
    assert all(np.all(np.isfinite(v)) for v in flat.values())
    assert np.isfinite(pv.evaluate(res, small.test, num_samples=4)["elbo"])
    loaded = pv.load(tmp_path / "run")                         # kept on disk, finite
    assert loaded.status == "diverged"


def test_growing_loss_warns_once():
    t = Tracker(epochs=4, patience=None, has_valid=False, progress=False)
    t.record(0, -80.0, None, 1.0)
    with pytest.warns(RuntimeWarning, match="grew from -80 to 5e\\+04 at epoch 2"):
        t.record(1, 5e4, None, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.record(2, 1e9, None, 1.0)                           # warned once already


def test_clip_norm_limits_the_steps(backend, small, make_vae):
    free = pv.fit(make_vae(backend), small.train, epochs=1, batch_size=16, progress=False)
    tight = pv.fit(make_vae(backend), small.train, epochs=1, batch_size=16, progress=False,
                   clip_norm=1e-12)
    start = pv.fit(make_vae(backend), small.train, epochs=1, batch_size=16, progress=False,
                   lr=1e-30)
    moved = lambda r: max(float(np.abs(flat_params(r)[k] - flat_params(start)[k]).max())  # noqa
                          for k in flat_params(r))
    assert moved(free) > 1e-4 and moved(tight) < 1e-5
    with pytest.raises(ValueError, match="clip_norm must be a number > 0"):
        pv.fit(make_vae(backend), small.train, epochs=1, progress=False, clip_norm=-1)


def test_ctrl_c_in_probvae_train_names_the_command_that_resumes_it(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "probvae", "train", "--out", str(run),
                             "--epochs", "200", "--hidden", "16", "--latent-dim", "2",
                             "--backend", "numpyro", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_epoch(proc, run, 1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert f"resume with probvae train --resume {run}" in err and "pv.fit" not in err
    from probvae.applications.cli import main
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 0
    assert pv.load(run).status == "completed"


def _fused_flags(run):
    """The ``fused`` setting of every Adam in a Pyro run's checkpoint."""
    found = []

    def walk(node):
        if isinstance(node, list):
            if len(node) == 2 and node[0] == "fused":
                found.append(node[1])
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)
    walk(json.loads((run / "checkpoint.json").read_text())["loop"]["optim"])
    return found


def test_a_pyro_run_saved_with_the_per_tensor_adam_resumes_with_the_fused_one(tmp_path,
                                                                            monkeypatch):
    import pyro

    from probvae.backends.pyro_backend import PyroBackend
    run = tmp_path / "run"
    with monkeypatch.context() as m:       # as runs were saved before the fused Adam
        m.setattr(PyroBackend, "adam", staticmethod(lambda lr: pyro.optim.Adam({"lr": lr})))
        first = train_in_process("pyro", run=run, epochs=2)
    flags = _fused_flags(run)
    assert flags and set(flags) == {None}
    resumed = train_in_process("pyro", run=run, resume=run, epochs=4)
    assert resumed.status == "completed" and len(resumed.history["train_loss"]) == 4
    assert resumed.history["train_loss"][:2] == first.history["train_loss"]
    assert set(_fused_flags(run)) == {True}


def test_a_version_1_run_folder_counts_its_best_epoch_from_1_when_loaded(tmp_path):
    """config.json version 1 counted best_epoch from 0; pv.load gives it counted from 1."""
    import json
    data = pv.data.load("digits", seed=0)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))
    res = pv.fit(vae, data.train[:200], epochs=3, validation=data.valid[:50], progress=False)
    pv.save(res, tmp_path / "r", training_state=False)
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["version"] == 2 and cfg["best_epoch"] == res.best_epoch
    assert pv.load(tmp_path / "r").best_epoch == res.best_epoch
    cfg.update(version=1, best_epoch=res.best_epoch - 1)          # as an older probvae wrote it
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    assert pv.load(tmp_path / "r").best_epoch == res.best_epoch
