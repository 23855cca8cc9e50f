"""Pyro on several hosts: torchrun's c10d rendezvous, two "hosts" on 127.0.0.1 (two
launchers, --nnodes=2, one process each; -m slow), and a lost process: a killed one, a frozen
one given up after $PROBVAE_DIST_TIMEOUT seconds, the run resumed in one plain process."""
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import probvae as pv
from probvae.inference import distributed

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
#: the CLI run of these tests: digits, a tiny VAE, a quick evaluation
CLI = ["train", "--backend", "pyro", "--batch-size", "64", "--hidden", "16", "--latent-dim", "2",
       "--eval-samples", "5", "--no-progress"]
LOST = "another process of this run stopped or cannot be reached"

# a user's script: pv.fit on digits; KILL_AT_EPOCH=k makes rank 1 SIGKILL itself as epoch k
# starts (k epochs done and checkpointed)
SCRIPT = r"""
import json, os, signal, sys, numpy as np, probvae as pv
from probvae.inference import distributed, pyro_loop
out_dir, epochs = sys.argv[1], int(sys.argv[2])
rank = int(os.environ.get("RANK", "0"))
kill_at = int(os.environ.get("KILL_AT_EPOCH", "-1"))
if rank == 1 and kill_at >= 0:
    epoch = pyro_loop.Loop.epoch
    def dying(self, e, stop=None):
        if e >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return epoch(self, e, stop)
    pyro_loop.Loop.epoch = dying
d = pv.data.load("digits", seed=0)
vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,), backend="pyro")
res = pv.fit(vae, d.train, validation=d.valid, epochs=epochs, batch_size=64, seed=0,
             progress=False, checkpoint=os.path.join(out_dir, "run"))
np.savez(os.path.join(out_dir, f"params{rank}.npz"),
         **{k: v.detach().numpy() for k, v in res.param_state["params"].items()})
json.dump(res.history, open(os.path.join(out_dir, f"history{rank}.json"), "w"))
distributed.finish()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours(mark) -> dict:
    """``{pid: RANK}`` of the live processes started with ``PROBVAE_TEST_MARK=mark`` (the
    launchers and their workers: torchrun starts each worker in a session of its own)."""
    found = {}
    if not Path("/proc/self/environ").exists():
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = dict(kv.split("=", 1) for kv in
                       (entry / "environ").read_bytes().decode(errors="replace").split("\0")
                       if "=" in kv)
        except OSError:
            continue
        if env.get("PROBVAE_TEST_MARK") == mark:
            found[int(entry.name)] = env.get("RANK")
    return found


class Hosts:
    """Two torchrun launchers, ``--nnodes=2 --node_rank=0/1``, one process each, meeting at
    a c10d rendezvous on 127.0.0.1: two hosts as a cluster would start them. On exit every
    process they started is killed."""

    def __init__(self, target, tmp, env=None):
        """``target(node)``: what torchrun runs on host ``node`` (a script and its arguments,
        or ``-m probvae ...``)."""
        self.mark, self.logs, self.procs = uuid.uuid4().hex, [], []
        port = _free_port()
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   PROBVAE_TEST_MARK=self.mark, **(env or {}))
        for node in (0, 1):
            log = open(Path(tmp) / f"launcher{node}.log", "w+")
            cmd = TORCHRUN + ["--nnodes=2", f"--node_rank={node}", "--nproc_per_node=1",
                              "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
                              *target(node)]
            self.logs.append(log)
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                               env=env, cwd=tmp, start_new_session=True))

    def wait(self, timeout) -> float:
        """Seconds until both launchers exit; fails the test after ``timeout``."""
        start = time.monotonic()
        for proc in self.procs:
            left = timeout - (time.monotonic() - start)
            try:
                proc.wait(timeout=max(left, 0.1))
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running after {timeout} s:\n{self.output()[-4000:]}")
        return time.monotonic() - start

    def worker(self, rank) -> int:
        """The pid of the worker process of ``rank``."""
        pids = [pid for pid, r in _ours(self.mark).items() if r == str(rank)]
        assert len(pids) == 1, (rank, _ours(self.mark))
        return pids[0]

    def output(self) -> str:
        """What both launchers and their workers printed."""
        text = []
        for log in self.logs:
            log.flush()
            log.seek(0)
            text.append(log.read())
        return "\n".join(text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for pid in _ours(self.mark):        # nothing lingers, whatever happened
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            proc.wait(timeout=60)
        for log in self.logs:
            log.close()
        return False


def _params(path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _fit_here(epochs, **kw):
    """The same fit as SCRIPT's, in this one plain process."""
    d = pv.data.load("digits", seed=0)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,), backend="pyro")
    return pv.fit(vae, d.train, validation=d.valid, epochs=epochs, batch_size=64, seed=0,
                  progress=False, **kw)


def _checkpoint(run) -> dict:
    return json.loads((Path(run) / "checkpoint.json").read_text())


def _cli_here(*argv) -> int:
    from probvae.applications.cli import main
    return main(list(argv))


# ---------------------------------------------------------------------------- fast
class _Lost:
    """torch.distributed as a process of a 2-process run sees it once the other process is
    gone: every ``all_reduce`` after ``run`` holds a checkpoint of epoch 2 fails as gloo's
    does."""

    def __init__(self, run):
        self.run, self.barriers, self.destroyed = Path(run), 0, 0

    def all_reduce(self, t, op=None):
        if (self.run / "checkpoint.json").exists() and _checkpoint(self.run)["epoch"] >= 2:
            import torch.distributed as dist
            raise dist.DistBackendError(
                "[/__w/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
                "[10.1.2.3]:4242: Connection reset by peer. This is typically caused by a "
                "remote worker hanging or bugs in the application. GLHF!")

    def barrier(self):
        self.barriers += 1

    def destroy_process_group(self):
        self.destroyed += 1


@pytest.fixture
def lost_world(monkeypatch, tmp_path):
    """This process as rank 0 of 2 under torchrun, its peer lost after epoch 2."""
    import torch.distributed as dist
    fake = _Lost(tmp_path / "run")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    for name in ("all_reduce", "barrier", "destroy_process_group"):
        monkeypatch.setattr(dist, name, getattr(fake, name))
    return fake


def test_a_lost_process_stops_the_fit_with_what_to_do_and_one_process_resumes(
        lost_world, small, tmp_path, monkeypatch):
    """The collective that fails when another process is gone (gloo's error) stops the fit
    with a PeerLostError that says so and how to resume, not as a divergence; finish() then
    waits for no one; the checkpoint resumes in one plain process."""
    run = tmp_path / "run"
    vae = pv.models.VAE(input_dim=small.train.x.shape[1], latent_dim=2, hidden=(8,),
                        backend="pyro")
    with pytest.raises(distributed.PeerLostError) as info:
        pv.fit(vae, small.train, validation=small.valid, epochs=4, batch_size=32, seed=0,
               progress=False, checkpoint=run)
    text = str(info.value)
    assert "process 0 of 2" in text and LOST in text and "resume" in text
    assert "Connection reset by peer" in text and "GLHF" not in text and "pair.cc" not in text
    distributed.finish()
    assert lost_world.barriers == 0 and lost_world.destroyed == 1
    saved = _checkpoint(run)
    assert saved["epoch"] == 2 and saved["status"] == "running"
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    res = pv.fit(vae, small.train, validation=small.valid, epochs=3, batch_size=32, seed=0,
                 progress=False, checkpoint=run, resume=True)
    assert res.status == "completed" and len(res.history["train_loss"]) == 3
    assert res.history["train_loss"][:2] == saved["history"]["train_loss"]


def test_the_process_group_waits_timeout_seconds(monkeypatch):
    """torchrun's process group is made with $PROBVAE_DIST_TIMEOUT (default 300 s), so a
    silent process is given up after it (torch's own default: 30 min)."""
    import torch.distributed as dist
    made = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: made.update(kw))
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setenv("PROBVAE_DIST_TIMEOUT", "7")
    assert distributed.world() == (1, 2)
    assert made["timeout"] == datetime.timedelta(seconds=7)
    monkeypatch.delenv("PROBVAE_DIST_TIMEOUT")
    distributed.world()
    assert made["timeout"] == datetime.timedelta(seconds=300)


def test_all_sum_takes_one_round_trip_per_dtype(monkeypatch):
    """Between hosts each all_reduce costs a round trip: a step's gradients (and its float64
    loss) go in one per dtype, each tensor summed in place, in its shape."""
    import torch
    import torch.distributed as dist
    calls = []

    def twice(t, op=None):               # what two processes with equal shares would sum
        calls.append((t.dtype, t.numel()))
        t.mul_(2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "all_reduce", twice)
    grads = [torch.ones(3, 4), torch.arange(5.0), torch.full((), 7.0)]
    total = torch.tensor([1.5, 0.0], dtype=torch.float64)
    distributed.all_sum(grads + [total])
    assert sorted(calls, key=str) == sorted([(torch.float32, 18), (torch.float64, 2)], key=str)
    assert grads[0].shape == (3, 4) and bool((grads[0] == 2).all())
    assert grads[1].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0] and float(grads[2]) == 14.0
    assert total.tolist() == [3.0, 0.0]


# ---------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_two_hosts_fit_as_one_process(tmp_path):
    """pv.fit in a user's script on two hosts: the same numbers, to the bit, as two processes
    on one host (torchrun --standalone), so the losses are one process's to Monte Carlo noise
    (each process draws z for its share: rtol 0.05, as in test_devices); the parameters are
    equal on both hosts; rank 0 alone writes its run folder."""
    script = tmp_path / "fit_script.py"
    script.write_text(SCRIPT)
    nodes = [tmp_path / "node0", tmp_path / "node1"]       # each "host" a folder of its own
    for n in nodes:
        n.mkdir()
    with Hosts(lambda node: [str(script), str(nodes[node]), "3"], tmp_path,
               env={"PROBVAE_DIST_TIMEOUT": "60"}) as hosts:
        hosts.wait(300)
        assert [p.returncode for p in hosts.procs] == [0, 0], hosts.output()[-4000:]
    # c10d numbers the hosts itself (--node_rank is for the static rendezvous): find rank 0
    main = [n for n in nodes if (n / "history0.json").exists()]
    other = [n for n in nodes if (n / "history1.json").exists()]
    assert len(main) == 1 and len(other) == 1 and main != other
    main, other = main[0], other[0]
    assert (main / "run" / "checkpoint.json").exists() and not (other / "run").exists()
    two = json.loads((main / "history0.json").read_text())
    assert json.loads((other / "history1.json").read_text())["train_loss"] == two["train_loss"]
    a, b = _params(main / "params0.npz"), _params(other / "params1.npz")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)   # in sync
    one = _fit_here(3)
    np.testing.assert_allclose(two["train_loss"], one.history["train_loss"], rtol=0.05)
    # validation: each process scores its share of the rows with its own z draws (one draw
    # per row, as one process): equal to Monte Carlo noise
    np.testing.assert_allclose(two["valid_loss"], one.history["valid_loss"], rtol=0.05,
                               atol=0.25)
    single = {k: v.detach().numpy() for k, v in one.param_state["params"].items()}
    gaps = {k: np.linalg.norm(a[k] - single[k]) / np.linalg.norm(single[k]) for k in a}
    assert sorted(single) == sorted(a) and max(gaps.values()) < 0.15, gaps   # 0.068 measured
    local = tmp_path / "one_host"
    local.mkdir()
    proc = subprocess.run(TORCHRUN + ["--standalone", "--nproc_per_node=2", str(script),
                                      str(local), "3"], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    here = json.loads((local / "history0.json").read_text())
    assert all(here[k] == two[k] for k in two if k != "seconds")
    c = _params(local / "params0.npz")
    assert all(np.array_equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_two_hosts_cli_writes_once_as_one_process(tmp_path):
    """probvae train on two hosts into one (shared) --out: one writer, one report, the
    history of one process's run."""
    out, plain = tmp_path / "run", tmp_path / "plain"
    with Hosts(lambda node: ["-m", "probvae", *CLI, "--epochs", "3", "--out", str(out)],
               tmp_path, env={"PROBVAE_DIST_TIMEOUT": "60"}) as hosts:
        hosts.wait(300)
        text = hosts.output()
        assert [p.returncode for p in hosts.procs] == [0, 0], text[-4000:]
    assert text.count("wrote ") == 1 and text.count("training VAE") == 1
    assert (out / "params.npz").exists() and (out / "metrics.json").exists()
    assert _cli_here(*CLI, "--epochs", "3", "--out", str(plain)) == 0
    two, one = _checkpoint(out)["history"], _checkpoint(plain)["history"]
    np.testing.assert_allclose(two["train_loss"], one["train_loss"], rtol=0.05)
    np.testing.assert_allclose(two["valid_loss"], one["valid_loss"], rtol=0.05, atol=0.25)


@pytest.mark.slow
def test_a_killed_host_stops_the_other_and_one_process_resumes(tmp_path):
    """Rank 1 is killed (SIGKILL) as epoch 2 starts: rank 0 stops at once with the message
    (no wait for the time-out), keeping the checkpoint of epoch 2, which pv.fit resumes in
    one plain process."""
    script = tmp_path / "fit_script.py"
    script.write_text(SCRIPT)
    with Hosts(lambda node: [str(script), str(tmp_path), "50"], tmp_path,
               env={"KILL_AT_EPOCH": "2", "PROBVAE_DIST_TIMEOUT": "120"}) as hosts:
        seconds = hosts.wait(100)          # far less than the time-out: the kill is seen
        text = hosts.output()
        assert all(p.returncode != 0 for p in hosts.procs), text[-4000:]
    assert "process 0 of 2: " + LOST in text and "by peer" in text     # reset or closed
    assert "resume" in text and "SIGKILL" in text
    run = tmp_path / "run"
    saved = _checkpoint(run)
    assert saved["epoch"] == 2 and saved["status"] == "running"
    res = _fit_here(4, checkpoint=run, resume=True)
    assert res.status == "completed" and len(res.history["train_loss"]) == 4
    assert res.history["train_loss"][:2] == saved["history"]["train_loss"]
    print(f"two hosts, rank 1 killed at epoch 2: both launchers out after {seconds:.1f} s")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker in /proc")
def test_a_frozen_host_is_given_up_after_the_timeout_and_the_cli_resumes(tmp_path):
    """probvae train on two hosts; rank 1 freezes (SIGSTOP: a host that cannot be reached):
    rank 0 waits $PROBVAE_DIST_TIMEOUT seconds, then says so in one line (no traceback) and
    stops; probvae train --resume continues the run in one plain process."""
    out, wait = tmp_path / "run", 15
    with Hosts(lambda node: ["-m", "probvae", *CLI, "--epochs", "200", "--out", str(out)],
               tmp_path, env={"PROBVAE_DIST_TIMEOUT": str(wait)}) as hosts:
        deadline = time.monotonic() + 300
        while not ((out / "checkpoint.json").exists() and _checkpoint(out)["epoch"] >= 2):
            assert time.monotonic() < deadline and all(p.poll() is None for p in hosts.procs), \
                hosts.output()[-4000:]
            time.sleep(0.1)
        os.kill(hosts.worker(1), signal.SIGSTOP)
        start = time.monotonic()
        # rank 0's launcher ends once its worker gave up (rank 1's waits on its frozen one)
        while all(p.poll() is None for p in hosts.procs):
            assert time.monotonic() - start < wait + 120, hosts.output()[-4000:]
            time.sleep(0.1)
        seconds = time.monotonic() - start
        text = hosts.output()
    assert wait - 1 <= seconds <= wait + 60, (seconds, text[-3000:])
    assert "probvae train: error: " in text and "stopped in process 0 of 2: " + LOST in text
    assert "timed out" in text.lower() and "exitcode  : 4" in text, text[-3000:]   # status 4
    # one line from probvae (torchrun's own report of the failed worker follows it)
    assert "[rank0]:" not in text and "PeerLostError" not in text and "DistBackendError" \
        not in text, text[-3000:]
    saved = _checkpoint(out)
    done = saved["epoch"]
    assert done >= 2
    assert _cli_here("train", "--resume", str(out), "--epochs", str(done + 1),
                     "--no-progress", "--eval-samples", "5") == 0
    resumed = _checkpoint(out)
    assert resumed["status"] == "completed" and resumed["epoch"] == done + 1
    assert resumed["history"]["train_loss"][:done] == saved["history"]["train_loss"]
    print(f"rank 1 frozen: rank 0 gave up after {seconds:.1f} s (PROBVAE_DIST_TIMEOUT={wait})")
