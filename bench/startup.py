"""Start-up time on NumPyro: seconds to the first finished epoch, cold and with the cache warm.

Each case runs in a fresh Python process (nothing compiled in memory), first with an empty
compilation cache (a cold start: trace and compile everything), then again with the cache that
run left behind (the second run of a user's script: the epoch and validation programs load
already traced, ``probvae.inference.programs``, and compile from JAX's cache). A third line
turns the cache off (``PROBVAE_COMPILATION_CACHE=0``) to show what the cache saves. It prints:

* ``import``: seconds to ``import probvae`` (JAX, NumPyro, Equinox),
* ``first epoch``: ``history['seconds'][0]``, from the call to ``pv.fit`` to the end of the
  first epoch (building the networks, tracing, compiling, the epoch itself and its validation),
* ``steady epoch``: the median of the later epochs, for scale,
* ``process``: from interpreter start to the end of the first epoch (import + data + fit).

Cases: ``demo`` (what ``make demo`` / ``probvae train`` trains: VAE latent 8, hidden 256-256,
VampPrior, continuous Bernoulli, batch 32, digits), ``m2`` (the README's SSVAE with 50
labels, enumeration) and ``mnist`` (an MLP VAE 784-400-50 on MNIST, batch 256).

    python bench/startup.py                  # all cases, 3 repeats each
    python bench/startup.py --cases demo --repeats 5

Time it alone: a second busy process slows every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import probvae as pv
t_import = time.perf_counter() - t0
case = sys.argv[1]
if case == "demo":
    data = pv.data.load("digits", seed=0)
    model = pv.models.VAE(input_dim=64, latent_dim=8, hidden=(256, 256), prior="vamp",
                          likelihood="continuous_bernoulli", backend="numpyro")
    res = pv.fit(model, data.train, validation=data.valid, epochs=4, batch_size=32, lr=1e-3,
                 seed=0, progress=False)
elif case == "m2":
    data = pv.data.load("digits", seed=0)
    labels = data.train.label_subset(n_per_class=5, seed=0)
    model = pv.models.SSVAE(input_dim=64, num_classes=10, backend="numpyro")
    res = pv.fit(model, data.train, labels=labels, validation=data.valid, epochs=4, seed=0,
                 progress=False)
elif case == "mnist":
    data = pv.data.load("mnist", path=sys.argv[2], seed=0)
    model = pv.models.VAE(input_dim=784, latent_dim=50, hidden=(400,), likelihood="bernoulli",
                          backend="numpyro")
    res = pv.fit(model, data.train.binarize(), epochs=3, batch_size=256, seed=0, progress=False)
sec = res.history["seconds"]
later = sorted(sec[1:])
print(json.dumps({"import": t_import, "first": sec[0], "steady": later[len(later) // 2],
                  "process": time.perf_counter() - t0 - sum(later)}))
"""


def run_case(case, cache_dir, cache_on=True):
    env = dict(os.environ, PROBVAE_CACHE_DIR=str(cache_dir),
               PROBVAE_COMPILATION_CACHE="1" if cache_on else "0")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    mnist = str(ROOT.parent / "shared" / "data" / "mnist")
    out = subprocess.run([sys.executable, "-c", CHILD, case, mnist], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{case} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", default="demo,m2,mnist")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"{'case':<6} {'start':<10} {'import':>7} {'first epoch':>11} {'min':>6} {'max':>6} "
          f"{'steady epoch':>12} {'process':>8}   (seconds; median of {args.repeats} runs)")
    for case in args.cases.split(","):
        rows = {"cold": [], "warm": [], "no cache": []}
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                rows["cold"].append(run_case(case, tmp))
                rows["warm"].append(run_case(case, tmp))
                rows["no cache"].append(run_case(case, tmp, cache_on=False))
        for start, rs in rows.items():
            med = {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
            firsts = [r["first"] for r in rs]
            print(f"{case:<6} {start:<10} {med['import']:>7.2f} {med['first']:>11.2f} "
                  f"{min(firsts):>6.2f} {max(firsts):>6.2f} {med['steady']:>12.3f} "
                  f"{med['process']:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
