"""Nothing lost: every fault of the "Nothing lost" probe, run in one go against this install.

Each case is what a new user did (the command line through the installed ``probvae`` command,
the Python API in this process), in a temporary folder with files of "theirs" beside it. The
table says, per case: what probvae did, the exit code (CLI), whether a traceback was shown, and
how many of the user's files were lost or changed. Every row should read: no files lost, a
clear message, a non-zero exit code where it failed.

    .venv/bin/python bench/faults.py          # about 3 minutes on 2 cores
"""
from __future__ import annotations

import json
import os
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


def row(case, result, code="", traceback="", files_lost=0):
    ROWS.append((case, result, str(code), traceback, files_lost))
    print(f"  {case}: {result} (exit {code}, files lost {files_lost})", flush=True)


def message(text) -> str:
    lines = [ln for ln in text.strip().splitlines() if "error" in ln.lower() or "stopped" in ln
             or "diverged" in ln or "refus" in ln]
    text = (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else "")
    return text.replace("probvae train: error: ", "").replace("probvae evaluate: error: ", "")[:150]


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
    code, out, err = cli("train", *FAST, "--dataset", "mnist", "--data-dir", data, "--out", data)
    row("train --out equal to --data-dir", message(err), code, has_traceback(err),
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


def main():
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for part in (outputs, kill_and_resume, divergence, damaged_runs, threads,
                     small_findings):
            print(f"{part.__name__} ...", flush=True)
            sub = Path(tmp) / part.__name__
            sub.mkdir()
            part(sub)
    print(f"\n{'case':<50} | {'exit':>4} | {'traceback':>9} | {'files lost':>10} | result")
    print("-" * 150)
    for case, result, code, tb, files in ROWS:
        print(f"{case:<50} | {code:>4} | {tb:>9} | {files:>10} | {result}")
    bad = [r for r in ROWS if r[4] or r[3] == "yes" or "(bad)" in r[1] or "ACCEPTED" in r[1]
           or "DIFFER" in r[1]]
    print(f"\n{len(ROWS)} cases, {len(bad)} with a lost file, a traceback or a missing error; "
          f"{time.perf_counter() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
