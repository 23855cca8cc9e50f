"""Nothing lost, round 2: hostile run folders, two writers, SIGTERM and SIGHUP, checks made
before training, stale temporary files, and messages that say what happened.

Each test is a case a probe found: it fails on the code before the fix.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import probvae as pv
from probvae.applications.cli import main
from probvae.inference import train_state
from probvae.outputs import FolderBusyError, OutputError, writing

FAST = ["--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--eval-samples", "4",
        "--no-progress", "--prior", "normal"]


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def trained_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(capsys, "train", *FAST, "--out", run)[0] == 0
    return run


def set_manifest(run, marker, files):
    cfg = json.loads((run / marker).read_text())
    cfg["files"] = files
    (run / marker).write_text(json.dumps(cfg))


# ---------------------------------------------------------------- 1. the manifest is literal
def test_a_star_in_the_manifest_removes_nothing_of_yours(trained_run, capsys):
    run = trained_run
    (run / "thesis.tex").write_text("mine")
    (run / "data.csv").write_text("a,b")
    before = snapshot(run)
    set_manifest(run, "config.json", ["*"])            # lists none of the files: refused
    code, out, err = cli(capsys, "train", *FAST, "--out", run, "--overwrite")
    assert code == 2 and "does not list" in err and "params.npz" in err
    after = snapshot(run)
    assert {k: v for k, v in after.items() if k != "config.json"} == {
        k: v for k, v in before.items() if k != "config.json"}
    set_manifest(run, "config.json", ["*", *train_state.RUN_FILES])
    code, out, err = cli(capsys, "train", *FAST, "--out", run, "--overwrite")
    assert code == 0, err
    assert (run / "thesis.tex").read_text() == "mine" and (run / "data.csv").read_text() == "a,b"
    assert pv.load(run).status == "completed"


def test_a_manifest_naming_your_file_does_not_remove_it(trained_run, capsys):
    run = trained_run
    (run / "thesis.tex").write_text("mine")
    set_manifest(run, "config.json", [*train_state.RUN_FILES, "thesis.tex", "../x"])
    assert cli(capsys, "train", *FAST, "--out", run, "--overwrite")[0] == 0
    assert (run / "thesis.tex").read_text() == "mine"


def test_diagnose_over_a_star_manifest_keeps_yours_and_what_it_wrote(trained_run, tmp_path,
                                                                      capsys):
    out = tmp_path / "diag"
    args = ["diagnose", trained_run, "--out", out, "--n", "4", "--num-samples", "8"]
    assert cli(capsys, *args)[0] == 0
    (out / "notes.txt").write_text("mine")
    names = json.loads((out / "report.json").read_text())["files"]
    set_manifest(out, "report.json", ["*"])
    code, stdout, err = cli(capsys, *args, "--overwrite")
    assert code == 2 and "does not list" in err and "wrote" not in stdout
    assert all((out / name).is_file() for name in names)
    set_manifest(out, "report.json", ["*", *names])
    code, stdout, err = cli(capsys, *args, "--overwrite")
    assert code == 0 and "wrote" in stdout
    assert (out / "notes.txt").read_text() == "mine"
    written = json.loads((out / "report.json").read_text())["files"]
    assert all((out / name).is_file() for name in written)        # it kept what it wrote


# ---------------------------------------------------------------- 2. state files of yours
def test_files_named_like_states_are_never_pruned(tmp_path, make_vae, small, backend):
    run = tmp_path / "run"
    run.mkdir()
    mine = {"state-backup.npz": b"backup", "state-notes.npz": b"notes",
            "state-1.npz": b"short number"}
    for name, content in mine.items():
        (run / name).write_bytes(content)
    with pytest.raises(OutputError, match="did not write"):     # not a run folder: refused
        pv.fit(make_vae(backend), small.train, epochs=2, checkpoint=run, progress=False)
    for name in mine:
        (run / name).unlink()
    pv.fit(make_vae(backend), small.train, epochs=1, checkpoint=run, progress=False)
    for name, content in mine.items():      # now in a run folder, beside its checkpoints
        (run / name).write_bytes(content)
    pv.fit(make_vae(backend), small.train, epochs=3, checkpoint=run, resume=run,
           progress=False)
    assert {n: (run / n).read_bytes() for n in mine} == mine
    states = sorted(p.name for p in run.iterdir() if train_state.is_state_name(p.name))
    assert states == [json.loads((run / "checkpoint.json").read_text())["arrays"]]


def test_an_unmarked_state_file_of_yours_is_refused_before_training(tmp_path, make_vae, small):
    run = tmp_path / "run"
    pv.fit(make_vae("numpyro"), small.train, epochs=1, checkpoint=run, progress=False)
    (run / "state-000005.npz").write_bytes(b"my own file")
    t0 = time.perf_counter()
    with pytest.raises(OutputError, match="state-000005.npz, named like probvae's"):
        pv.fit(make_vae("numpyro"), small.train, epochs=9, checkpoint=run, resume=run,
               progress=False)
    assert time.perf_counter() - t0 < 5
    assert (run / "state-000005.npz").read_bytes() == b"my own file"


def test_a_state_written_just_before_a_kill_is_recognised_as_probvaes(tmp_path, make_vae,
                                                                       small):
    """A kill between a state file's rename and checkpoint.json's leaves a state that no
    checkpoint.json names; it carries probvae's mark, so the resume writes over it."""
    run = tmp_path / "run"
    pv.fit(make_vae("numpyro"), small.train, epochs=1, checkpoint=run, progress=False)
    meta = json.loads((run / "checkpoint.json").read_text())
    orphan = run / f"state-{meta['counter'] + 1:06d}.npz"
    orphan.write_bytes((run / meta["arrays"]).read_bytes())
    res = pv.fit(make_vae("numpyro"), small.train, epochs=3, checkpoint=run, resume=run,
                 progress=False)
    assert res.status == "completed"
    assert sorted(p.name for p in run.glob("state-*")) == [
        json.loads((run / "checkpoint.json").read_text())["arrays"]]


# ---------------------------------------------------------------- 3. names that collide
def test_overwrite_refuses_your_files_under_probvaes_names(tmp_path, capsys, digits):
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), prior="normal")
    res = pv.fit(vae, digits.train.x[:64], epochs=1, progress=False)
    run = pv.save(res, tmp_path / "saved",              # its manifest: config, params, history
                  training_state=False)
    mine = {"metrics.json": b'{"mine": 1}', "checkpoint.json": b'{"mine": 2}'}
    for name, content in mine.items():
        (run / name).write_bytes(content)
    before = snapshot(run)
    code, out, err = cli(capsys, "train", *FAST, "--out", run, "--overwrite")
    assert code == 2 and "does not list" in err and "training" not in out
    assert snapshot(run) == before
    with pytest.raises(OutputError, match="metrics.json"):
        pv.save(res, run, overwrite=True, metrics={"a": 1})
    with pytest.raises(OutputError, match="checkpoint.json"):
        pv.fit(vae, digits.train.x[:64], epochs=1, checkpoint=run, overwrite=True,
               progress=False)
    assert snapshot(run) == before
    with pytest.raises(OutputError, match="checkpoint.json"):     # its training state
        pv.save(res, run, overwrite=True)
    pv.save(res, run, overwrite=True, training_state=False)  # none of those names: fine
    assert {n: (run / n).read_bytes() for n in mine} == mine


# ---------------------------------------------------------------- 4. one writer per folder
def test_a_second_writer_is_refused_and_named(tmp_path, make_vae, small):
    run = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time, probvae.outputs as o\n"
         f"with o.writing({str(run)!r}):\n    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusyError, match=f"process {child.pid} on "):
            pv.fit(make_vae("numpyro"), small.train, epochs=1, checkpoint=run, progress=False)
        with pytest.raises(FolderBusyError):
            pv.save(pv.fit(make_vae("numpyro"), small.train, epochs=1, progress=False), run)
        assert not run.exists()
    finally:
        child.kill()                     # like kill -9: the system releases the lock
        child.wait()
    res = pv.fit(make_vae("numpyro"), small.train, epochs=1, checkpoint=run, progress=False)
    assert res.status == "completed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]      # no lock file left


def test_a_second_thread_is_refused_and_the_same_thread_may_reenter(tmp_path):
    run = tmp_path / "run"
    errors = []

    def other():
        try:
            with writing(run):
                pass
        except FolderBusyError as err:
            errors.append(str(err))
    with writing(run):
        with writing(run):                       # probvae train holds it while fit takes it
            t = threading.Thread(target=other)
            t.start()
            t.join()
    assert errors and "another thread" in errors[0]
    with writing(run):                           # released
        pass


def test_two_cli_writers_of_one_folder(tmp_path):
    """Two `probvae train --out SAME --overwrite` at once: one trains, the other is refused
    at once and the folder holds one whole run."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "probvae", "train", "--hidden", "8", "--latent-dim", "2",
           "--eval-samples", "4", "--no-progress", "--prior", "normal", "--out", str(run),
           "--overwrite"]
    first = subprocess.Popen(cmd + ["--epochs", "100000"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoint.json").exists():
            assert time.time() < deadline and first.poll() is None, first.stderr.read()
            time.sleep(0.02)
        second = subprocess.run(cmd + ["--epochs", "1"], capture_output=True, text=True,
                                timeout=120)
        resumed = subprocess.run([sys.executable, "-m", "probvae", "train", "--resume",
                                  str(run), "--no-progress"], capture_output=True, text=True,
                                 timeout=120)
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
    for other in (second, resumed):
        assert other.returncode == 2, other.stderr
        assert f"being written by process {first.pid}" in other.stderr
        assert "Traceback" not in other.stderr and "wrote" not in other.stdout
    assert first.returncode == 143, err
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["cli"]["epochs"] == 100000                    # the first run's, whole
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0


# ---------------------------------------------------------------- 5. SIGTERM and SIGHUP
SCRIPT = """
import sys, json, probvae as pv
backend, run = sys.argv[1], sys.argv[2]
data = pv.data.load("digits", seed=0)
vae = pv.models.VAE(input_dim=64, latent_dim=3, hidden=(32,), backend=backend)
res = pv.fit(vae, data.train.x[:256], epochs=5000, batch_size=8, seed=3, progress=False,
             checkpoint=run, checkpoint_every=1000, resume=True, validation=False)
print(json.dumps({"status": res.status, "stopped_by": res.stopped_by,
                  "epochs": len(res.history["train_loss"])}))
"""


# SIGHUP takes SIGTERM's path (one handler): its runs are slow tests, SIGTERM's run in make test
@pytest.mark.parametrize("sig", ["SIGTERM", pytest.param("SIGHUP", marks=pytest.mark.slow)])
def test_sigterm_and_sighup_stop_after_the_step_and_checkpoint(backend, tmp_path, sig):
    """With checkpoints every 1000 epochs, a SIGTERM used to lose every epoch run so far."""
    run = tmp_path / "run"
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), backend, str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "config.json").exists():        # training has started
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    time.sleep(3)
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "interrupted" and result["stopped_by"] == sig
    assert f"stopped by {sig}" in err and "checkpoint written" in err
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["status"] == "interrupted" and meta["epoch"] == result["epochs"]
    assert pv.load(run).status == "interrupted"


@pytest.mark.parametrize("sig, code", [("SIGTERM", 143),
                                       pytest.param("SIGHUP", 129, marks=pytest.mark.slow)])
def test_probvae_train_exits_143_and_129(tmp_path, sig, code):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "probvae", "train", "--out", str(run),
                             "--epochs", "100000", "--hidden", "16", "--latent-dim", "2",
                             "--no-progress", "--checkpoint-every", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "config.json").exists():
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    time.sleep(3)
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and f"stopped by {sig}" in err
    assert f"resume with probvae train --resume {run}" in err
    done = json.loads((run / "checkpoint.json").read_text())["epoch"]
    assert done >= 1
    assert main(["train", "--resume", str(run), "--epochs", str(done + 1),
                 "--no-progress"]) == 0


def test_sigterm_outside_training_is_a_message_not_a_traceback():
    """A SIGTERM while a command is not training (loading, scoring) ends it with a message
    and 143, not a traceback."""
    child = """
import os, signal, sys, time
import probvae.applications.cli as cli
make = cli.build_parser

def parser():
    p = make()
    for sub in p._subparsers._group_actions[0].choices.values():
        sub.set_defaults(func=lambda args: (os.kill(os.getpid(), signal.SIGTERM),
                                            time.sleep(30)))
    return p
cli.build_parser = parser
sys.exit(cli.main(["evaluate", "some/run"]))
"""
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr and "stopped by SIGTERM" in proc.stderr


# ---------------------------------------------------------------- 8. checks before the work
def test_eval_samples_0_is_refused_before_training(tmp_path, capsys):
    t0 = time.perf_counter()
    code, out, err = cli(capsys, "train", *FAST[:6], "--eval-samples", "0", "--out",
                         tmp_path / "run")
    assert code == 2 and "--eval-samples must be an integer >= 1" in err
    assert "training" not in out and not (tmp_path / "run").exists()
    assert time.perf_counter() - t0 < 5


def test_a_resumed_folder_that_cannot_be_written_is_refused_before_training(
        tmp_path, make_vae, small):
    run = tmp_path / "run"
    pv.fit(make_vae("numpyro"), small.train, epochs=1, checkpoint=run, progress=False)
    if subprocess.run(["chattr", "+i", str(run)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i (an unwritable folder, even for root) is not available here")
    try:
        t0 = time.perf_counter()
        with pytest.raises(OutputError, match="cannot write"):
            pv.fit(make_vae("numpyro"), small.train, epochs=50, checkpoint=run, resume=run,
                   progress=False)
        assert time.perf_counter() - t0 < 10
    finally:
        subprocess.run(["chattr", "-i", str(run)])


# ---------------------------------------------------------------- 9. leftovers and messages
def test_stale_temporary_files_are_removed_by_the_next_writer(tmp_path, make_vae, small):
    run = tmp_path / "run"
    pv.fit(make_vae("numpyro"), small.train, epochs=1, checkpoint=run, progress=False)
    stale = [".params.npz.probvae-tmp-a1b2c3d4", ".state-000002.npz.probvae-tmp-zz99yy88",
             ".checkpoint.json.abcd1234.tmp"]                 # an earlier version's name
    mine = [".notes.txt.probvae-tmp-a1b2c3d4", "params.npz.probvae-tmp-a1b2c3d4"]
    for name in stale + mine:
        (run / name).write_bytes(b"x" * 1000)
    stage = tmp_path / ".run.probvae-stage-q1w2e3r4"
    stage.mkdir()
    (stage / "params.npz").write_bytes(b"x")
    pv.fit(make_vae("numpyro"), small.train, epochs=2, checkpoint=run, resume=run,
           progress=False)
    assert not any((run / n).exists() for n in stale)
    assert all((run / n).exists() for n in mine)
    pv.save(pv.load(run), tmp_path / "other")
    assert stage.exists()                  # another folder's writer leaves it alone
    pv.fit(make_vae("numpyro"), small.train, epochs=1, checkpoint=tmp_path / "run2",
           progress=False)
    (tmp_path / "run2").rename(tmp_path / "spare")
    pv.save(pv.load(run), tmp_path / "run", overwrite=True)
    assert stage.exists()                  # only a new folder's writer cleans its stages
    import shutil
    shutil.rmtree(run)
    pv.save(pv.load(tmp_path / "spare"), run)
    assert not stage.exists()


def test_a_link_to_an_empty_folder_is_written_through(tmp_path, capsys):
    target = tmp_path / "empty"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    code, out, err = cli(capsys, "train", *FAST, "--out", link)
    assert code == 0, err
    assert link.is_symlink() and pv.load(link).status == "completed"
    assert (target / "config.json").is_file()


def test_messages_say_what_happened(tmp_path, capsys, trained_run):
    code, out, err = cli(capsys, "train", *FAST, "--out", "/")
    assert code == 2 and "root of the file system" in err and "/proc" not in err
    (trained_run / "config.json").write_text("{not json")
    code, out, err = cli(capsys, "train", *FAST, "--out", trained_run, "--overwrite")
    assert code == 2 and "damaged config.json" in err and "did not write" not in err
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    code, out, err = cli(capsys, "train", *FAST, "--out", dangling)
    assert code == 2 and "symbolic link" in err and "does not exist" in err


# ---------------------------------------------------------------- 5. under torchrun
RANK_SCRIPT = r"""
import json, os, sys, numpy as np, probvae as pv
from probvae.inference import distributed
out_dir, epochs = sys.argv[1], int(sys.argv[2])
rank = int(os.environ["RANK"])
open(os.path.join(out_dir, f"pid{rank}"), "w").write(str(os.getpid()))
d = pv.data.load("digits", seed=0)
vae = pv.models.VAE(input_dim=64, latent_dim=4, hidden=(32,), backend="pyro")
run = os.path.join(out_dir, "run")
res = pv.fit(vae, d.train, epochs=epochs, batch_size=8, seed=0, progress=False,
             checkpoint=run, checkpoint_every=1000, resume=True)
np.savez(os.path.join(out_dir, f"params{rank}.npz"),
         **{k: v.detach().numpy() for k, v in res.param_state["params"].items()})
json.dump({"status": res.status, "stopped_by": res.stopped_by,
           "epochs": len(res.history["train_loss"])},
          open(os.path.join(out_dir, f"result{rank}.json"), "w"))
distributed.finish()
"""


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """Under torchrun a SIGTERM that reaches one process stops all of them after the same
    step (the others would otherwise wait for it in the next all-reduce), rank 0 writes the
    checkpoint, and every rank resumes from it."""
    script = tmp_path / "worker.py"
    script.write_text(RANK_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd + ["500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.time() + 300
    while not ((tmp_path / "run" / "config.json").exists() and (tmp_path / "pid1").exists()):
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    time.sleep(5)
    os.kill(int((tmp_path / "pid1").read_text()), signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    results = [json.loads((tmp_path / f"result{r}.json").read_text()) for r in (0, 1)]
    assert [r["status"] for r in results] == ["interrupted"] * 2, results
    assert [r["stopped_by"] for r in results] == ["SIGTERM"] * 2
    a, b = np.load(tmp_path / "params0.npz"), np.load(tmp_path / "params1.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)             # the same step
    meta = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert meta["status"] == "interrupted" and meta["epoch"] < 500
    done = meta["epoch"] + 1
    proc = subprocess.run(cmd + [str(done)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((tmp_path / f"result{r}.json").read_text()) for r in (0, 1)]
    assert [r["status"] for r in results] == ["completed"] * 2
    a, b = np.load(tmp_path / "params0.npz"), np.load(tmp_path / "params1.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
