"""NumPyro on several processes joined by ``jax.distributed`` (issue 37): two "hosts" on the
loopback address, each a separate process with its CPU (gloo collectives). The runs are in
``-m slow``; the checks of the joining and of a lost process's error run in ``make test``
(the sharded scoring's bit-for-bit check is in tests/test_devices.py)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import probvae as pv
from probvae.inference import distributed

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, os, sys, threading, time
import numpy as np
import probvae as pv
from probvae.inference import distributed
processes = int(os.environ.get("JAX_NUM_PROCESSES", "1"))
if processes > 1:
    distributed.initialize()                 # from JAX_COORDINATOR_ADDRESS & co.
if os.environ.get("DIE_AFTER"):              # this process is killed part-way (a lost host)
    threading.Thread(target=lambda: (time.sleep(float(os.environ["DIE_AFTER"])),
                                     os.kill(os.getpid(), 9)), daemon=True).start()
if os.environ.get("TERM_AFTER"):             # asked to stop (SIGTERM) part-way
    threading.Thread(target=lambda: (time.sleep(float(os.environ["TERM_AFTER"])),
                                     os.kill(os.getpid(), 15)), daemon=True).start()
out_dir, mode = sys.argv[1], sys.argv[2]
d = pv.data.load("digits", seed=0)
vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,), backend="numpyro")
run = os.path.join(out_dir, "run")
res = pv.fit(vae, d.train, epochs=int(os.environ.get("EPOCHS", "3")), batch_size=64,
             progress=False, checkpoint=run, resume=run if mode == "resume" else None)
scores = pv.evaluate(res, d.test, num_samples=200, seed=3)
print(json.dumps({"process": distributed.processes()[0], "train": res.history["train_loss"],
                  "status": res.status, "stopped_by": res.stopped_by,
                  "valid": res.history["valid_loss"], "options": res.options,
                  "params": {k: np.asarray(v).tolist() for k, v in res.params.items()},
                  "scores": [scores[k] for k in ("elbo", "log_likelihood", "kl")]}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    env.pop("XLA_FLAGS", None)
    return env


def _start(args, env, cwd):
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                            start_new_session=True)


def _finish(procs, timeout):
    """Each process's (returncode, stdout, stderr); every one is killed at ``timeout``."""
    deadline, results = time.monotonic() + timeout, []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                if q.poll() is None:
                    os.killpg(q.pid, signal.SIGKILL)
            out, err = p.communicate()
            results.append((None, out, err))
            continue
        results.append((p.returncode, out, err))
    return results


def _two_processes(args, cwd, timeout=240, extra=None):
    """``python ARGS`` as processes 0 and 1 of one jax.distributed run on 127.0.0.1."""
    port, extra = _free_port(), extra or {}
    procs = [_start(args, _env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                               JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i),
                               **extra.get(i, {})), cwd) for i in (0, 1)]
    return _finish(procs, timeout)


def _last_json(text):
    return json.loads(text.strip().splitlines()[-1])


# ---------------------------------------------------------------- make test: the pieces
def test_initialize_says_what_is_missing(monkeypatch):
    for key in (*distributed.JAX_ENV, "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match="JAX_COORDINATOR_ADDRESS"):
        distributed.initialize()
    with pytest.raises(ValueError, match="num_processes and process_id"):
        distributed.initialize("127.0.0.1:1234")
    with pytest.raises(ValueError, match="process_id=2 is not one of the 2 processes"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="whole number"):
        distributed.initialize("127.0.0.1:1234", process_id=0)
    assert distributed.processes() == (0, 1) and distributed.is_main()


def test_wait_time_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("PROBVAE_DIST_TIMEOUT", raising=False)
    assert distributed.timeout(default=300) == 300
    monkeypatch.setenv("PROBVAE_DIST_TIMEOUT", "20")
    assert distributed.timeout() == 20
    monkeypatch.setenv("PROBVAE_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="PROBVAE_DIST_TIMEOUT"):
        distributed.timeout()


def test_a_broken_collective_becomes_a_lost_process_error(monkeypatch):
    monkeypatch.setattr(distributed, "processes", lambda: (1, 2))
    with pytest.raises(distributed.PeerLostError, match="process 1 of 2: another process"):
        with distributed.watching_peers():
            raise RuntimeError("UNKNOWN: Gloo all-reduce failed: Connection reset by peer")
    with pytest.raises(ZeroDivisionError):             # other errors pass as they are
        with distributed.watching_peers():
            1 / 0
    monkeypatch.setattr(distributed, "processes", lambda: (0, 1))
    with pytest.raises(RuntimeError, match="Gloo"):    # one process: nothing is lost
        with distributed.watching_peers():
            raise RuntimeError("Gloo all-reduce failed")


def test_cli_refuses_jax_settings_for_pyro(tmp_path, capsys):
    from probvae.applications.cli import main
    status = main(["train", "--backend", "pyro", "--coordinator", "127.0.0.1:1",
                   "--out", str(tmp_path / "run")])
    assert status == 2 and "torchrun" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--devices", "none", "--out", str(tmp_path / "run")])


# ---------------------------------------------------------------- -m slow: two processes
@pytest.mark.slow
def test_two_processes_train_one_model_like_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    [(rc, out, err)] = _finish([_start([str(script), str(tmp_path / "one"), "new"], _env(),
                                       ROOT)], 240)
    assert rc == 0, err[-3000:]
    single = _last_json(out)
    both = _two_processes([str(script), str(tmp_path / "two"), "new"], ROOT)
    assert all(rc == 0 for rc, _, _ in both), [e[-2000:] for _, _, e in both]
    first, second = (_last_json(out) for _, out, _ in both)
    assert first["process"] == 0 and second["process"] == 1
    assert first["params"] == second["params"] and first["train"] == second["train"]
    assert first["options"]["processes"] == 2 and first["options"]["devices"] == 2
    assert single["options"]["processes"] == 1 and single["options"]["devices"] == 1
    # the same global batches, the work split: one process's figures to float rounding
    np.testing.assert_allclose(first["train"], single["train"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(first["valid"], single["valid"], rtol=1e-4, atol=1e-4)
    for k in single["params"]:
        np.testing.assert_allclose(first["params"][k], single["params"][k], rtol=1e-3,
                                   atol=1e-4)
    # scoring split across the two processes: both get the whole, as one process scores it
    assert first["scores"] == second["scores"]
    np.testing.assert_allclose(first["scores"], single["scores"], rtol=1e-4)
    written = json.loads((tmp_path / "two" / "run" / "config.json").read_text())
    assert written["options"]["processes"] == 2
    # continued on one process from the two processes' checkpoint
    [(rc, out, err)] = _finish([_start([str(script), str(tmp_path / "two"), "resume"],
                                       _env(EPOCHS="5"), ROOT)], 240)
    assert rc == 0, err[-3000:]
    resumed = _last_json(out)
    assert resumed["train"][:3] == first["train"] and len(resumed["train"]) == 5
    assert resumed["options"]["processes"] == 1


@pytest.mark.slow
def test_a_lost_process_stops_the_other_and_the_run_resumes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    started = time.monotonic()
    both = _two_processes([str(script), str(tmp_path), "new"], ROOT, timeout=200,
                          extra={0: {"EPOCHS": "5000", "PROBVAE_DIST_TIMEOUT": "20"},
                                 1: {"EPOCHS": "5000", "PROBVAE_DIST_TIMEOUT": "20",
                                     "DIE_AFTER": "15"}})
    (rc0, _, err0), (rc1, _, _) = both
    assert rc1 == -9                                   # killed
    assert rc0 not in (None, 0), "process 0 went on without process 1"
    assert "another process of this run stopped or cannot be reached" in err0, err0[-2000:]
    assert time.monotonic() - started < 150
    state = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    done = state["epoch"]                  # what the two learned before process 1 was lost
    assert done >= 1 and state["history"]["train_loss"]
    [(rc, out, err)] = _finish([_start([str(script), str(tmp_path), "resume"],
                                       _env(EPOCHS=str(done + 2)), ROOT)], 240)
    assert rc == 0, err[-3000:]
    resumed = _last_json(out)
    assert resumed["options"]["processes"] == 1 and len(resumed["train"]) == done + 2
    assert resumed["train"][:done] == state["history"]["train_loss"][:done]


def _slurm_port() -> int:
    """A free port in the range JAX derives from a Slurm job id (61440 + id % 4096)."""
    rng = np.random.default_rng()
    for port in rng.permutation(np.arange(61440, 65536))[:200]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", int(port)))
            except OSError:
                continue
            return int(port)
    pytest.skip("no free port in 61440..65535")


@pytest.mark.slow
def test_cli_under_srun_environment_writes_once(tmp_path):
    """As the Slurm recipe in docs/devices.md runs it: ``srun probvae train ...`` with no
    address given; JAX reads the coordinator, count and index from what srun sets."""
    args = ["-m", "probvae", "train", "--epochs", "2", "--batch-size", "64", "--hidden", "16",
            "--latent-dim", "2", "--eval-samples", "20", "--no-progress", "--devices", "all",
            "--out", str(tmp_path / "run")]
    job = _slurm_port() - 61440
    procs = [_start(args, _env(SLURM_JOB_ID=str(job), SLURM_STEP_ID="0", SLURM_NTASKS="2",
                               SLURM_STEP_NODELIST="localhost", SLURM_PROCID=str(i),
                               SLURM_LOCALID=str(i), SLURM_STEP_NUM_NODES="2"), tmp_path)
             for i in (0, 1)]
    both = _finish(procs, 240)
    assert all(rc == 0 for rc, _, _ in both), [e[-2000:] for _, _, e in both]
    outs = "".join(out for _, out, _ in both)
    assert outs.count("wrote ") == 1 and outs.count("training VAE") == 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert np.isfinite(metrics["test"]["elbo"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["options"][
        "processes"] == 2


@pytest.mark.slow
def test_a_stop_signal_to_one_process_stops_both_at_the_same_epoch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    both = _two_processes([str(script), str(tmp_path), "new"], ROOT, timeout=200,
                          extra={0: {"EPOCHS": "5000"},
                                 1: {"EPOCHS": "5000", "TERM_AFTER": "12"}})
    assert all(rc == 0 for rc, _, _ in both), [e[-2000:] for _, _, e in both]
    first, second = (_last_json(out) for _, out, _ in both)
    assert first["status"] == second["status"] == "interrupted"
    assert first["stopped_by"] == second["stopped_by"] == "SIGTERM"
    assert first["train"] == second["train"] and 0 < len(first["train"]) < 5000
    assert first["params"] == second["params"]
    state = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert state["epoch"] == len(first["train"])
