"""Nothing lost: every fault of the two "Nothing lost" probes, run in one go against this install.

Each case is what a new user did (the command line through the installed ``probvae`` command,
the Python API in this process), in a temporary folder with files of "theirs" beside it. The
table says, per case: what probvae did, the exit code (CLI), whether a traceback was shown, how
many of the user's files were lost or changed, and whether a run folder was left corrupted (no
longer loadable or resumable). Every row should read: no files lost, no corrupted run, a clear
message, a non-zero exit code where it failed.

    .venv/bin/python bench/faults.py                     # every part, about 5 minutes on 2 cores
    .venv/bin/python bench/faults.py --only signals,sizes
    .venv/bin/python bench/faults.py --help
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import probvae as pv

BIN = Path(sys.executable).parent / "probvae"
FAST = ["--epochs", "2", "--hidden", "16", "--latent-dim", "2", "--prior", "normal",
        "--eval-samples", "4", "--no-progress"]
ROWS = []


def snapshot(root) -> dict:
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()} if root.exists() else {}


def lost(before, root) -> int:
    after = snapshot(root)
    return sum(1 for k, v in before.items() if after.get(k) != v)


def cli(*args, cwd=None, timeout=300):
    proc = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def row(case, result, code="", traceback="", files_lost=0, corrupted=0):
    ROWS.append((case, result, str(code), traceback, files_lost, corrupted))
    print(f"  {case}: {result} (exit {code}, files lost {files_lost}, corrupted {corrupted})",
          flush=True)


def broken(run, resume=False) -> int:
    """1 when run folder ``run`` no longer loads (or, with ``resume``, no longer resumes one
    more epoch through ``probvae train --resume``), else 0."""
    try:
        pv.load(run)
    except Exception:
        return 1
    if resume:
        epochs = json.loads((Path(run) / "checkpoint.json").read_text())["epoch"] + 1
        if cli("train", "--resume", run, "--epochs", epochs, "--no-progress")[0] != 0:
            return 1
    return 0


def message(text) -> str:
    lines = [ln for ln in text.strip().splitlines() if "error" in ln.lower() or "stopped" in ln
             or "diverged" in ln or "refus" in ln]
    text = (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else "")
    for command in ("train", "evaluate", "sample", "diagnose"):
        text = text.replace(f"probvae {command}: error: ", "")
    return text[:150]


def has_traceback(text) -> str:
    return "yes" if "Traceback" in text else "no"


def user_folder(root) -> Path:
    home = Path(root) / "thesis"
    (home / "sub").mkdir(parents=True)
    (home / "thesis.tex").write_text("\\documentclass{article}")
    (home / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return home


def fake_mnist(root) -> Path:
    d = Path(root) / "mnist"
    d.mkdir()
    rng = np.random.default_rng(0)
    for stem, n in (("train", 60), ("t10k", 20)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labs = (np.arange(n) % 10).astype(np.uint8)
        for name, a in ((f"{stem}-images-idx3-ubyte", imgs), (f"{stem}-labels-idx1-ubyte", labs)):
            head = bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
            (d / name).write_bytes(head + a.tobytes())
    return d


def outputs(tmp):
    home = user_folder(tmp)
    before = snapshot(home)
    code, out, err = cli("train", *FAST, "--out", home)
    row("train --out into a folder of yours", message(err), code, has_traceback(err),
        lost(before, home))
    data = fake_mnist(tmp)
    before = snapshot(data)
    code, out, err = cli("train", *FAST, "--dataset", "mnist", "--path", data, "--out", data)
    row("train --out equal to --path", message(err), code, has_traceback(err),
        lost(before, data))
    run = Path(tmp) / "run"
    cli("train", *FAST, "--out", run)
    (run / "NOTES.txt").write_text("my notes")
    before = {"NOTES.txt": b"my notes"}
    code, out, err = cli("train", *FAST, "--out", run)
    row("train --out over an earlier run (no --overwrite)", message(err), code,
        has_traceback(err), lost(before, run))
    code, out, err = cli("train", *FAST, "--out", run, "--overwrite")
    row("train --out over an earlier run --overwrite",
        "run replaced, NOTES.txt kept" if code == 0 and (run / "NOTES.txt").exists()
        else message(err), code, has_traceback(err), lost(before, run))
    f = Path(tmp) / "notes.txt"
    f.write_text("x")
    for label, target, where in (("under /sys", "/sys/probvae-run", None),
                                 ("under a regular file", f / "run", None),
                                 ("'.' (a folder of yours)", ".", home)):
        before_home = snapshot(home)
        t0 = time.perf_counter()
        code, out, err = cli("train", *FAST, "--out", target, cwd=where)
        row(f"train --out {label}",
            f"{message(err)} [{time.perf_counter() - t0:.1f} s, before training]", code,
            has_traceback(err), lost(before_home, home) + (0 if f.read_text() == "x" else 1))
    res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,)),
                 pv.data.load("digits").train.x[:64], epochs=1, progress=False)
    before = snapshot(home)
    try:
        pv.save(res, home)
        row("pv.save into a folder of yours", "SAVED (bad)", "", "", lost(before, home))
    except ValueError as err:
        row("pv.save into a folder of yours", str(err)[:150], "", "no", lost(before, home))


def kill_and_resume(tmp):
    run = Path(tmp) / "killed"
    args = ["train", *FAST[2:], "--epochs", "40", "--out", str(run)]
    proc = subprocess.Popen([str(BIN), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    while not (run / "checkpoint.json").exists() or \
            json.loads((run / "checkpoint.json").read_text())["epoch"] < 10:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = json.loads((run / "checkpoint.json").read_text())["epoch"]
    code, out, err = cli("train", "--resume", run, "--no-progress")
    full = Path(tmp) / "full"
    cli("train", *args[1:-2], "--out", full)
    a, b = pv.load(run), pv.load(full)
    same = all(np.array_equal(x, y) for x, y in zip(
        a.bk.params_to_numpy(a.params).values(), b.bk.params_to_numpy(b.params).values()))
    same &= a.history["train_loss"] == b.history["train_loss"]
    row("kill -9 at epoch 10 of 40, then train --resume",
        f"resumed from epoch {at}; final parameters and history "
        f"{'identical to' if same else 'DIFFER from'} an uninterrupted run", code,
        has_traceback(err), 0)

    run = Path(tmp) / "ctrlc"
    proc = subprocess.Popen([str(BIN), *args[:-1], str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while not (run / "checkpoint.json").exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate()
    row("Ctrl-C during train", message(err), proc.returncode, has_traceback(err), 0)


def divergence(tmp):
    for lr in ("10", "1e8"):
        run = Path(tmp) / f"lr{lr}"
        code, out, err = cli("train", *FAST[2:], "--epochs", "20", "--lr", lr, "--out", run)
        loaded = "; pv.load gives finite parameters" if run.exists() and all(
            np.isfinite(v).all() for v in
            pv.load(run).bk.params_to_numpy(pv.load(run).params).values()) else ""
        text = message(err) if code else ("completed" + (" with a growth warning"
                                                          if "grew" in err else ""))
        row(f"train --lr {lr}", text + loaded, code, has_traceback(err), 0)


def damaged_runs(tmp):
    good = Path(tmp) / "good"
    cli("train", *FAST, "--out", good)

    def damaged(name, fn):
        run = Path(tmp) / name
        shutil.copytree(good, run)
        fn(run)
        t0 = time.perf_counter()
        code, out, err = cli("evaluate", run, "--num-samples", "4")
        row(f"evaluate with {name}", f"{message(err)} [{time.perf_counter() - t0:.1f} s]", code,
            has_traceback(err), 0)

    def config(fn):
        def edit(run):
            cfg = json.loads((run / "config.json").read_text())
            fn(cfg)
            (run / "config.json").write_text(json.dumps(cfg))
        return edit

    def nan_params(run):
        with np.load(run / "params.npz") as z:
            arrays = {k: z[k] for k in z.files}
        arrays[sorted(arrays)[0]][:] = np.nan
        np.savez(run / "params.npz", **arrays)
    damaged("truncated params.npz", lambda r: (r / "params.npz").write_bytes(
        (r / "params.npz").read_bytes()[:200]))
    damaged("empty params.npz", lambda r: (r / "params.npz").write_bytes(b""))
    damaged("invalid config.json", lambda r: (r / "config.json").write_text("{oops"))
    damaged("latent_dim 1e9 in config.json",
            config(lambda c: c["model"].update(latent_dim=10 ** 9)))
    damaged("an extra config field", config(lambda c: c.update(extra=1)))
    damaged("NaN parameters", nan_params)


def threads(tmp):
    data = pv.data.load("digits").train.x[:128]
    lone, both = {}, {}

    def train(seed, out):
        vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,), backend="pyro")
        out[seed] = pv.fit(vae, data, epochs=3, batch_size=32, seed=seed, progress=False)
    for seed in (0, 1):
        train(seed, lone)
    ts = [threading.Thread(target=train, args=(s, both)) for s in (0, 1)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    same = all(lone[s].history["train_loss"] == both[s].history["train_loss"] for s in (0, 1))
    row("two Pyro fits at once in threads",
        "each equals its lone run" if same else "DIFFERENT from lone runs", "", "no", 0)


def small_findings(tmp):
    data = pv.data.load("digits")
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))
    res = pv.fit(vae, data.train.x[:64], epochs=1, progress=False)
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(8,))
    mask = np.zeros(len(data.train), int)
    mask[data.train.label_subset(1)] = 1
    empty = Path(tmp) / "empty_idx"
    empty.mkdir()
    for stem, shape in (("train-images-idx3-ubyte", (0, 28, 28)),
                        ("train-labels-idx1-ubyte", (0,)),
                        ("t10k-images-idx3-ubyte", (0, 28, 28)),
                        ("t10k-labels-idx1-ubyte", (0,))):
        (empty / stem).write_bytes(bytes([0, 0, 8, len(shape)]) + b"".join(
            int(s).to_bytes(4, "big") for s in shape))
    cases = {
        "SSVAE labels as a 0/1 integer mask": lambda: pv.fit(
            ss, data.train, labels=mask, objective="enum", epochs=1, progress=False),
        "hidden=16": lambda: pv.models.VAE(input_dim=64, hidden=16),
        'lr="0.01"': lambda: pv.fit(vae, data.train.x[:32], lr="0.01", progress=False),
        "fit(epoch=5)": lambda: pv.fit(vae, data.train.x[:32], epoch=5, progress=False),
        "seed=2**32": lambda: pv.fit(vae, data.train.x[:32], seed=2 ** 32, progress=False),
        "encode of one 1-D row": lambda: pv.encode(res, data.test.x[0]),
        "sample(n=None)": lambda: pv.sample(res, n=None),
        "synthesize(n=-3)": lambda: pv.synthesize(res, -3),
        "IDX files with 0 images": lambda: pv.data.load("mnist", path=empty),
    }
    for case, call in cases.items():
        try:
            call()
            row(case, "ACCEPTED (no error)", "", "", 0)
        except (ValueError, TypeError) as err:
            row(case, f"{type(err).__name__}: {str(err)[:130]}", "", "no", 0)


# ---------------------------------------------------------------- round 2
def trained(tmp, name, *extra):
    run = Path(tmp) / name
    code, out, err = cli("train", *FAST, *extra, "--out", run)
    assert code == 0, err
    return run


def set_files(run, marker, files):
    cfg = json.loads((Path(run) / marker).read_text())
    cfg["files"] = files
    (Path(run) / marker).write_text(json.dumps(cfg))


def hostile_manifests(tmp):
    run = trained(tmp, "star")
    for name, text in (("thesis.tex", "mine"), ("data.csv", "a,b")):
        (run / name).write_text(text)
    set_files(run, "config.json", ["*"])
    before = {k: v for k, v in snapshot(run).items() if k != "config.json"}
    code, out, err = cli("train", *FAST, "--out", run, "--overwrite")
    row('train --overwrite, manifest ["*"]', message(err) if code else "ran (bad?)", code,
        has_traceback(err), lost(before, run))
    set_files(run, "config.json", ["*", "config.json", "params.npz", "history.json",
                                   "metrics.json", "checkpoint.json", "thesis.tex", "../x"])
    mine = {k: v for k, v in snapshot(run).items() if k in ("thesis.tex", "data.csv")}
    code, out, err = cli("train", *FAST, "--out", run, "--overwrite")
    row('train --overwrite, manifest ["*", "thesis.tex", ...]',
        "run replaced, thesis.tex and data.csv kept" if code == 0 else message(err), code,
        has_traceback(err), lost(mine, run), broken(run))
    diag = Path(tmp) / "diag"
    args = ["diagnose", run, "--out", diag, "--n", "4", "--num-samples", "8"]
    cli(*args)
    (diag / "notes.txt").write_text("mine")
    names = json.loads((diag / "report.json").read_text())["files"]
    set_files(diag, "report.json", ["*"])
    before = snapshot(diag)
    code, out, err = cli(*args, "--overwrite")
    row('diagnose --overwrite, manifest ["*"]', message(err) if code else
        "wrote" + (" (all its files there)" if all((diag / n).exists() for n in names)
                   else " BUT DELETED ITS OWN FILES (bad)"), code, has_traceback(err),
        lost({k: v for k, v in before.items() if k != "report.json"}, diag))
    # state files of yours in a run folder
    run = Path(tmp) / "states"
    res_args = ["--epochs", "2", "--hidden", "8", "--latent-dim", "2", "--prior", "normal",
                "--eval-samples", "4", "--no-progress"]
    cli("train", *res_args, "--out", run)
    mine = {"state-backup.npz": b"backup", "state-notes.npz": b"notes"}
    for name, content in mine.items():
        (run / name).write_bytes(content)
    code, out, err = cli("train", "--resume", run, "--epochs", "4", "--no-progress")
    row("state-backup.npz, state-notes.npz beside checkpoints",
        "kept through 2 more checkpoints" if code == 0 else message(err), code,
        has_traceback(err), lost({k: v for k, v in mine.items()}, run), broken(run))
    (run / "state-000099.npz").write_bytes(b"my own")
    t0 = time.perf_counter()
    code, out, err = cli("train", "--resume", run, "--epochs", "6", "--no-progress")
    row("a state-000099.npz of yours (no probvae mark)",
        f"{message(err)} [{time.perf_counter() - t0:.1f} s, before training]", code,
        has_traceback(err), lost({"state-000099.npz": b"my own"}, run), broken(run))
    # your files under probvae's names, in a pv.save folder
    res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,)),
                 pv.data.load("digits").train.x[:64], epochs=1, progress=False)
    saved = pv.save(res, Path(tmp) / "saved")
    for name in ("metrics.json", "checkpoint.json"):
        (saved / name).write_text('{"mine": true}')
    before = snapshot(saved)
    code, out, err = cli("train", *FAST, "--out", saved, "--overwrite")
    row("train --overwrite over a pv.save folder with your metrics.json",
        message(err), code, has_traceback(err), lost(before, saved), broken(saved))


def _start_train(run, *extra, epochs=100000):
    return subprocess.Popen([str(BIN), "train", "--hidden", "16", "--latent-dim", "2",
                             "--prior", "normal", "--eval-samples", "4", "--no-progress",
                             "--epochs", str(epochs), "--out", str(run), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=300):
    t0 = time.time()
    while not Path(path).exists():
        if proc.poll() is not None or time.time() - t0 > timeout:
            raise RuntimeError(f"{path} never appeared: {proc.stderr.read()[-500:]}")
        time.sleep(0.02)


def two_writers(tmp):
    run = Path(tmp) / "same"
    first = _start_train(run, "--overwrite")
    _wait_for(run / "checkpoint.json", first)
    code, out, err = cli("train", *FAST, "--out", run, "--overwrite")
    row("two train --out SAME --overwrite at once", message(err), code, has_traceback(err))
    code, out2, err2 = cli("train", "--resume", run, "--no-progress")
    row("train --resume SAME while it trains", message(err2), code, has_traceback(err2))
    first.send_signal(signal.SIGTERM)
    first.communicate()
    cfg = json.loads((run / "config.json").read_text())
    row("... the folder afterwards", "holds the first run only"
        if cfg["cli"]["epochs"] == 100000 else "MIXED RUNS (bad)", first.returncode, "no", 0,
        broken(run, resume=True))
    child = subprocess.Popen([sys.executable, "-c", "import time, probvae.outputs as o\n"
                              f"with o.writing({str(Path(tmp) / 'held')!r}):\n"
                              "    print('locked', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    child.stdout.readline()
    child.kill()
    child.wait()
    code, out, err = cli("train", *FAST, "--out", Path(tmp) / "held")
    row("a writer killed with -9, then a new writer", "the lock went with it: trained"
        if code == 0 else message(err), code, has_traceback(err))


def signals(tmp):
    for sig, expect in (("SIGTERM", 143), ("SIGHUP", 129)):
        run = Path(tmp) / sig
        proc = _start_train(run, "--checkpoint-every", "1000")
        _wait_for(run / "config.json", proc)
        time.sleep(6)
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate()
        kept = json.loads((run / "checkpoint.json").read_text())["epoch"] if (
            run / "checkpoint.json").exists() else 0
        row(f"{sig} during train --checkpoint-every 1000",
            f"exit {proc.returncode} (expected {expect}); {kept} epochs kept; "
            + message(err), proc.returncode, has_traceback(err),
            0, broken(run, resume=True) if kept else 1)


_PEAK = ("import atexit, resource, sys\n"
         "atexit.register(lambda: print('PEAK', resource.getrusage(resource.RUSAGE_SELF)"
         ".ru_maxrss, file=sys.stderr))\n")


def _peak_child(code_text) -> tuple:
    """Run ``code_text`` in a child Python; (seconds, the child's own peak resident memory
    in MiB, stdout's last line, stderr)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK + code_text], capture_output=True,
                          text=True, timeout=600)
    seconds = time.perf_counter() - t0
    peaks = [ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("PEAK ")]
    peak = int(peaks[-1]) / 1024 if peaks else float("nan")
    err = "\n".join(ln for ln in proc.stderr.splitlines() if not ln.startswith("PEAK "))
    return seconds, peak, (proc.stdout.strip().splitlines() or [""])[-1], err


def sizes(tmp):
    run = trained(tmp, "sized")
    for case, call in (("pv.sample(res, n=10**9)", "pv.sample(res, n=10**9)"),
                       ("pv.evaluate(res, x, num_samples=10**9)",
                        "pv.evaluate(res, d.test.x, num_samples=10**9)"),
                       ("pv.synthesize(res, 10**9)", "pv.synthesize(res, 10**9)")):
        code_text = ("import probvae as pv, time\n"
                     f"res = pv.load({str(run)!r}); d = pv.data.load('digits')\n"
                     "t0 = time.perf_counter()\n"
                     f"try:\n    {call}\n    print('ACCEPTED')\n"
                     "except ValueError as e:\n"
                     "    print(f'{type(e).__name__} after {time.perf_counter() - t0:.3f} s: "
                     "{str(e)[:110]}')\n")
        seconds, peak, last, err = _peak_child(code_text)
        row(case, f"{last} [peak {peak:.0f} MiB]", "", has_traceback(err))
    # a state file that declares 1.5 GB in a file of a few MB (deflate-compressed zeros)
    run = trained(tmp, "bomb", "--epochs", "2")
    meta = json.loads((run / "checkpoint.json").read_text())
    import zipfile
    with zipfile.ZipFile(run / meta["arrays"], "a", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("bomb.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f8", "fortran_order": False, "shape": (200_000_000,)})
            zeros, left = bytes(1 << 24), 1_600_000_000
            while left:
                f.write(zeros[:min(left, len(zeros))])
                left -= min(left, len(zeros))
    size = (run / meta["arrays"]).stat().st_size
    t0 = time.perf_counter()
    code_text = ("import sys\nfrom probvae.applications.cli import main\n"
                 f"sys.exit(main(['train', '--resume', {str(run)!r}, '--epochs', '3', "
                 "'--no-progress']))")
    seconds, peak, last, err = _peak_child(code_text)
    row(f"train --resume, a {size / 2**20:.1f} MB state file declaring 1.6 GB",
        f"{message(err)} [{seconds:.1f} s, peak {peak:.0f} MiB]", "", has_traceback(err))


def malformed_readers(tmp):
    good = trained(tmp, "good", "--epochs", "2")

    def case(name, edit, command=("evaluate",)):
        run = Path(tmp) / name.replace(" ", "_").replace("/", "_")[:40]
        shutil.copytree(good, run)
        edit(run)
        args = (["evaluate", run, "--num-samples", "4"] if command == ("evaluate",) else
                ["train", "--resume", run, "--epochs", "3", "--no-progress"])
        code, out, err = cli(*args)
        row(f"{args[0]} {args[1] if args[0] == 'train' else ''} with {name}".replace("  ", " "),
            message(err), code, has_traceback(err))

    def edit_json(fname, fn):
        def edit(run):
            obj = json.loads((run / fname).read_text())
            fn(obj)
            (run / fname).write_text(json.dumps(obj))
        return edit
    case("config.json nested 100000 deep", lambda r: (r / "config.json").write_text(
        "[" * 100000 + "]" * 100000))
    case("input_dim 1e400 in config.json", lambda r: (r / "config.json").write_text(
        (r / "config.json").read_text().replace('"input_dim": 64', '"input_dim": 1e400')))
    case("seed 2**70 in config.json", edit_json("config.json",
                                               lambda c: c.update(seed=2 ** 70)))
    case("config.json without 'model.latent_dim'",
         edit_json("config.json", lambda c: c["model"].pop("latent_dim")))
    case("config.json without 'cli'", edit_json("config.json", lambda c: c.pop("cli")),
         command=("train",))
    case("checkpoint.json without 'tracker.best'",
         edit_json("checkpoint.json", lambda c: c["tracker"].pop("best")), command=("train",))
    case("checkpoint.json nested 100000 deep", lambda r: (r / "checkpoint.json").write_text(
        "{\"a\":" * 100000 + "1" + "}" * 100000), command=("train",))


def checks_first(tmp):
    t0 = time.perf_counter()
    code, out, err = cli("train", *FAST[:8], "--eval-samples", "0", "--out",
                         Path(tmp) / "e0")
    row("train --eval-samples 0", f"{message(err)} [{time.perf_counter() - t0:.1f} s, before "
        "training]", code, has_traceback(err))
    run = trained(tmp, "readonly", "--epochs", "2")
    if subprocess.run(["chattr", "+i", str(run)], capture_output=True).returncode == 0:
        try:
            t0 = time.perf_counter()
            code, out, err = cli("train", "--resume", run, "--epochs", "50", "--no-progress")
            row("train --resume of a folder that cannot be written",
                f"{message(err)} [{time.perf_counter() - t0:.1f} s, before training]", code,
                has_traceback(err))
        finally:
            subprocess.run(["chattr", "-i", str(run)])
    else:
        row("train --resume of a folder that cannot be written", "not run: no chattr here")


def leftovers_and_messages(tmp):
    run = Path(tmp) / "killed"
    temps = []
    for _ in range(5):                      # kill -9 five times, mid-run, and resume
        proc = subprocess.Popen([str(BIN), "train", *FAST[2:], "--epochs", "400", "--out",
                                 str(run), *(["--overwrite"] if run.exists() else [])],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(run / "checkpoint.json", proc)
        time.sleep(np.random.default_rng().uniform(0, 0.5))
        proc.kill()
        proc.wait()
        temps.append(len([p for p in run.iterdir() if "probvae-tmp-" in p.name]))
    (run / ".params.npz.probvae-tmp-abcd1234").write_bytes(b"x" * 100000)   # as a kill leaves
    code, out, err = cli("train", "--resume", run, "--epochs",
                         json.loads((run / "checkpoint.json").read_text())["epoch"] + 1,
                         "--no-progress")
    left = [p.name for p in run.iterdir() if "probvae-tmp-" in p.name]
    row("temporary files after 5 kills, then a resume",
        f"{sum(temps)} seen after kills; {len(left)} left after the resume", code,
        has_traceback(err), 0, broken(run))
    data = Path(tmp) / "big.npy"
    np.save(data, np.random.default_rng(0).random((4000, 64), dtype=np.float32))
    code_text = ("import numpy as np, probvae as pv\n"
                 f"s = pv.data.stream({str(data)!r}, chunk_rows=1000)\n"
                 "class Changing(type(s)):\n"
                 "    calls = 0\n"
                 "    def read(self, a, b):\n"
                 "        Changing.calls += 1\n"
                 "        if Changing.calls == 8:\n"
                 f"            x = np.load({str(data)!r}); np.save({str(data)!r}, x[::-1].copy())\n"
                 "        return super().read(a, b)\n"
                 "s.__class__ = Changing\n"
                 "vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))\n"
                 "try:\n"
                 "    pv.fit(vae, s, epochs=3, batch_size=100, progress=False)\n"
                 "    print('trained on silently (bad)')\n"
                 "except ValueError as e:\n"
                 "    print(f'{type(e).__name__}: {str(e)[:120]}')\n")
    _, _, last, err = _peak_child(code_text)
    row("a streamed file rewritten during the fit", last, "", has_traceback(err))
    np.save(data, np.random.default_rng(0).random((4000, 64), dtype=np.float32))
    code_text = code_text.replace("x = np.load", "x = np.load").replace(
        "np.save(" + repr(str(data)) + ", x[::-1].copy())",
        "open(" + repr(str(data)) + ", 'r+b').truncate(20000)")
    _, _, last, err = _peak_child(code_text)
    row("a streamed file truncated during the fit", last, "", has_traceback(err))
    empty = Path(tmp) / "empty"
    empty.mkdir()
    link = Path(tmp) / "link"
    link.symlink_to(empty)
    code, out, err = cli("train", *FAST, "--out", link)
    row("train --out a link to an empty folder", "trained into the folder it names"
        if code == 0 and (empty / "config.json").exists() else message(err), code,
        has_traceback(err))
    code, out, err = cli("train", *FAST, "--out", "/")
    row("train --out /", message(err), code, has_traceback(err))
    run = trained(tmp, "damaged")
    (run / "config.json").write_text("{oops")
    code, out, err = cli("train", *FAST, "--out", run, "--overwrite")
    row("train --overwrite over a run with a damaged config.json", message(err), code,
        has_traceback(err))


PARTS = {f.__name__: f for f in (outputs, kill_and_resume, divergence, damaged_runs, threads,
                                  small_findings, hostile_manifests, two_writers, signals,
                                  sizes, malformed_readers, checks_first,
                                  leftovers_and_messages)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="parts: " + ", ".join(PARTS))
    p.add_argument("--only", default=None,
                   help="comma-separated parts to run (default: all)")
    args = p.parse_args(argv)
    names = list(PARTS) if args.only is None else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        p.error(f"unknown part {unknown[0]!r}; parts: {', '.join(PARTS)}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"{name} ...", flush=True)
            sub = Path(tmp) / name
            sub.mkdir()
            PARTS[name](sub)
    print(f"\n{'case':<58} | {'exit':>4} | {'traceback':>9} | {'files lost':>10} | "
          f"{'corrupted':>9} | result")
    print("-" * 170)
    for case, result, code, tb, files, corrupted in ROWS:
        print(f"{case:<58} | {code:>4} | {tb:>9} | {files:>10} | {corrupted:>9} | {result}")
    bad = [r for r in ROWS if r[4] or r[5] or r[3] == "yes" or "(bad" in r[1]
           or "ACCEPTED" in r[1] or "DIFFER" in r[1]]
    print(f"\n{len(ROWS)} cases: {sum(r[4] for r in ROWS)} files lost, "
          f"{sum(r[3] == 'yes' for r in ROWS)} tracebacks, {sum(r[5] for r in ROWS)} corrupted "
          f"runs; {len(bad)} rows to fix; {time.perf_counter() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
