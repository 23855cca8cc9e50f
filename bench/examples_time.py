"""How long each example takes as the README runs it: wall seconds of ``python examples/NAME.py``
with its own defaults (NumPyro), in a fresh process, on this machine.

The README's "(≈N s)" beside each example comes from this table. Time it alone: a second busy
process slows torch and XLA several-fold (the README's earlier figures were 3-6x off for that
reason). The examples write their pictures under a temporary folder, not under ``runs/``.

    python bench/examples_time.py                       # every example, once
    python bench/examples_time.py --only generation tabular --repeats 3
    python bench/examples_time.py --backend pyro

It prints one line per example (seconds, and the median when repeated) and the machine's CPU
count and load average before each run, so that a busy machine shows in the table.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: every example the README times; custom_model runs both backends itself
EXAMPLES = ("semi_supervised", "generation", "augmentation", "anomaly_detection", "latent_space",
            "transfer", "diagnostics", "tabular", "custom_model")


def time_example(name, backend):
    """Wall seconds of one run of ``examples/NAME.py`` (with ``--backend``), and its exit code."""
    args = [sys.executable, str(ROOT / "examples" / f"{name}.py")]
    if name != "custom_model" or backend != "numpyro":
        args += ["--backend", backend]
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                              env=dict(os.environ, MPLBACKEND="Agg"))
        seconds = time.perf_counter() - start
    if proc.returncode:
        print(proc.stderr[-1500:], file=sys.stderr)
    return seconds, proc.returncode


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=EXAMPLES, default=EXAMPLES)
    ap.add_argument("--backend", choices=["numpyro", "pyro"], default="numpyro")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    print(f"{os.cpu_count()} CPUs; backend {args.backend}; {args.repeats} run(s) each")
    print(f"{'example':<20}{'seconds':>10}{'median':>10}  load before")
    for name in args.only:
        times, loads = [], []
        for _ in range(args.repeats):
            loads.append(os.getloadavg()[0])
            seconds, code = time_example(name, args.backend)
            if code:
                print(f"{name:<20}{'failed':>10}  (exit {code})")
                break
            times.append(seconds)
        if times:
            med = sorted(times)[len(times) // 2]
            print(f"{name:<20}{times[0]:>10.1f}{med:>10.1f}  "
                  + " ".join(f"{x:.1f}" for x in loads), flush=True)


if __name__ == "__main__":
    main()
