"""Several devices and data larger than memory: throughput and peak memory.

1. **NumPyro on 1, 2 and 4 devices** (``pv.fit(..., devices=n)``, ``jax.sharding``): one
   MNIST VAE epoch (MLP 300-300, latent 20, batch 256 split across the devices), the second
   epoch timed (the first compiles); throughput in examples per second and efficiency =
   throughput(n) / (n x throughput(1)). Each count runs in its own process. On a CPU-only
   machine the devices are forced (``XLA_FLAGS=--xla_force_host_platform_device_count=4``)
   and share the same cores: that run checks correctness and overhead, not a speed-up.
   With GPUs the real devices are used (``--platform gpu``).
2. **Pyro on 1 and 2 processes** (``torchrun``, gloo on CPU, nccl on GPUs), the same epoch.
3. **Several processes ("hosts")**: NumPyro on 1 and 2 processes joined by
   ``jax.distributed`` (``pv.inference.distributed.initialize()``, one CPU device each, gloo
   collectives, the coordinator on 127.0.0.1), the same epoch with ``devices="all"``; then
   ``pv.evaluate`` of the test set (sharded: each process scores its share of the units) and
   each process's peak resident memory, with the data in memory and streamed from a ``.npy``
   file (``pv.data.stream``, 8192-row chunks). On one 2-core machine the two processes share
   its cores: the rows check that the work is split and what it costs, not a speed-up.
4. **Streaming from disk**: peak resident memory (``ru_maxrss``) of one epoch over a
   ``.npy`` file of 1x, 4x and 16x the chunk size (``pv.data.stream``, 8192 rows of 784
   floats per chunk), each in a fresh process, beside the file size.

    .venv/bin/python bench/scaling.py                   # all four (about 8 minutes here)
    .venv/bin/python bench/scaling.py hosts --rows 20000 --eval-rows 2000
    .venv/bin/python bench/scaling.py devices --rows 20000
    .venv/bin/python bench/scaling.py stream
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

DEVICE_RUN = r"""
import json, sys, time, jax, numpy as np, probvae as pv
n, rows, platform, data = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
x = pv.data.load("mnist", path=data + "/mnist", seed=0).train.x[:rows]
vae = pv.models.VAE(input_dim=784, latent_dim=20, hidden=(300, 300), likelihood="continuous_bernoulli")
res = pv.fit(vae, x, epochs=2, batch_size=256, devices=n, progress=False)
sec = res.history["seconds"]
print(json.dumps({"devices": n, "platform": jax.devices()[0].platform, "rows": len(x),
                  "first": sec[0], "epoch": sec[1], "loss": res.history["train_loss"][-1]}))
"""

PYRO_RUN = r"""
import json, os, sys, numpy as np, probvae as pv
from probvae.inference import distributed
rows, data = int(sys.argv[1]), sys.argv[2]
x = pv.data.load("mnist", path=data + "/mnist", seed=0).train.x[:rows]
vae = pv.models.VAE(input_dim=784, latent_dim=20, hidden=(300, 300), likelihood="continuous_bernoulli",
                    backend="pyro")
res = pv.fit(vae, x, epochs=2, batch_size=256, progress=False)
rank, world = distributed.world()
if rank == 0:
    print(json.dumps({"processes": world, "rows": len(x), "first": res.history["seconds"][0],
                      "epoch": res.history["seconds"][1], "loss": res.history["train_loss"][-1]}))
distributed.finish()
"""

HOST_RUN = r"""
import json, os, resource, sys, time, numpy as np, probvae as pv
from probvae.inference import distributed
rows, data, mode, tmp, eval_rows = (int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4],
                                    int(sys.argv[5]))
if int(os.environ.get("JAX_NUM_PROCESSES", "1")) > 1:
    distributed.initialize()
index, count = distributed.processes()
mnist = pv.data.load("mnist", path=data + "/mnist", seed=0)
x = mnist.train.x[:rows]
source = x
if mode == "stream":              # process 0 writes the file; every process streams it
    path = os.path.join(tmp, "x.npy")
    if index == 0:
        np.save(path + ".part.npy", x)
        os.replace(path + ".part.npy", path)
    while not os.path.exists(path):
        time.sleep(0.1)
    del x, mnist
    source = pv.data.stream(path, chunk_rows=8192)
vae = pv.models.VAE(input_dim=784, latent_dim=20, hidden=(300, 300),
                    likelihood="continuous_bernoulli")
res = pv.fit(vae, source, epochs=2, batch_size=256, devices="all" if count > 1 else None,
             progress=False, validation=None)
out = {"processes": count, "devices": res.options["devices"], "rows": rows, "mode": mode,
       "first": res.history["seconds"][0], "epoch": res.history["seconds"][1],
       "loss": res.history["train_loss"][-1]}
if mode == "memory":
    test = pv.data.load("mnist", path=data + "/mnist", seed=0).test.x[:eval_rows]
    pv.evaluate(res, test[:64], num_samples=100)                  # compiled before timing
    t0 = time.perf_counter()
    scores = pv.evaluate(res, test, num_samples=1000, seed=0)
    out.update(eval_seconds=time.perf_counter() - t0, eval_ll=scores["log_likelihood"])
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""

STREAM_RUN = r"""
import json, resource, sys, numpy as np, probvae as pv
path, chunk = sys.argv[1], int(sys.argv[2])
source = pv.data.stream(path, chunk_rows=chunk)
vae = pv.models.VAE(input_dim=784, latent_dim=20, hidden=(300, 300), likelihood="continuous_bernoulli")
res = pv.fit(vae, source, epochs=1, batch_size=256, progress=False)
print(json.dumps({"rows": len(source), "seconds": res.history["seconds"][0],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _last_json(proc):
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_throughput(results, unit):
    """A table of epoch time, throughput and efficiency = throughput(n) / (n x throughput(1))."""
    base = results[0]["rows"] / results[0]["epoch"]
    print(f"\n| {unit} | epoch s | examples/s | efficiency | train loss |")
    print("|---|---|---|---|---|")
    for r in results:
        tput = r["rows"] / r["epoch"]
        print(f"| {r[unit]} | {r['epoch']:.2f} | {tput:.0f} | {tput / (r[unit] * base):.2f} | "
              f"{r['loss']:.2f} |")


def run_devices(counts, rows, platform):
    print(f"\nNumPyro, one MNIST VAE epoch ({rows} rows, batch 256), devices by jax.sharding")
    env = dict(os.environ)
    if platform == "cpu":
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={max(counts)}"
        env["JAX_PLATFORMS"] = "cpu"
    results = []
    for n in counts:
        proc = subprocess.run([sys.executable, "-c", DEVICE_RUN, str(n), str(rows), platform,
                               str(DATA)], capture_output=True, text=True, env=env, cwd=ROOT)
        results.append(_last_json(proc))
    print(f"\nplatform: {results[0]['platform']}")
    print_throughput(results, "devices")
    return results


def run_pyro(counts, rows):
    print(f"\nPyro, the same epoch, processes by torchrun (gloo on CPU, nccl on GPUs)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "pyro_run.py"
        script.write_text(PYRO_RUN)
        for n in counts:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={n}", str(script), str(rows), str(DATA)]
            env = dict(os.environ, OMP_NUM_THREADS="1")     # one thread per process: the
            # comparison is of processes (torch threads fighting another busy process slow
            # it several-fold on a 2-core machine)
            results.append(_last_json(subprocess.run(cmd, capture_output=True, text=True,
                                                     env=env, cwd=ROOT)))
    print_throughput(results, "processes")
    return results


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_hosts(rows, eval_rows):
    print(f"\nNumPyro on processes joined by jax.distributed (127.0.0.1, gloo): one MNIST "
          f"epoch ({rows} rows, batch 256), evaluate {eval_rows} test images x 1000 samples")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("memory", "stream"):
            for n in (1, 2):
                port, procs = _free_port(), []
                for i in range(n):
                    env = dict(os.environ, JAX_PLATFORMS="cpu")
                    env.pop("XLA_FLAGS", None)
                    if n > 1:
                        env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                   JAX_NUM_PROCESSES=str(n), JAX_PROCESS_ID=str(i))
                    procs.append(subprocess.Popen(
                        [sys.executable, "-c", HOST_RUN, str(rows), str(DATA), mode, tmp,
                         str(eval_rows)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, env=env, cwd=ROOT))
                outs = []
                for p in procs:
                    out, err = p.communicate(timeout=1800)
                    outs.append(_last_json(subprocess.CompletedProcess(p.args, p.returncode,
                                                                       out, err)))
                for path in Path(tmp).glob("*.npy"):
                    path.unlink()
                r = dict(outs[0], peak_mb_each=[o["peak_mb"] for o in outs])
                results.append(r)
    print("\n| data | processes | devices | epoch s | examples/s | evaluate s | test LL | "
          "peak RSS MB per process |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        ev = (f"{r['eval_seconds']:.1f} | {r['eval_ll']:.2f}" if "eval_seconds" in r
              else "- | -")
        print(f"| {r['mode']} | {r['processes']} | {r['devices']} | {r['epoch']:.2f} | "
              f"{r['rows'] / r['epoch']:.0f} | {ev} | "
              f"{', '.join(f'{m:.0f}' for m in r['peak_mb_each'])} |")
    return results


def run_stream(chunk, multiples):
    import numpy as np
    print(f"\nStreaming from disk: peak resident memory of one epoch, chunk {chunk} rows x 784")
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in [multiples[0], *multiples]:           # the first run fills the compile cache
            path = Path(tmp) / f"x{m}.npy"
            out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                            shape=(m * chunk, 784))
            rng = np.random.default_rng(m)
            for start in range(0, m * chunk, chunk):           # written a chunk at a time
                out[start:start + chunk] = rng.random((chunk, 784), dtype=np.float32)
            out.flush()
            del out
            proc = subprocess.run([sys.executable, "-c", STREAM_RUN, str(path), str(chunk)],
                                  capture_output=True, text=True, cwd=ROOT)
            r = _last_json(proc)
            r["file_mb"] = path.stat().st_size / 1e6
            r["multiple"] = m
            rows_out.append(r)
            path.unlink()
        rows_out = rows_out[1:]
    print("\n| file / chunk | rows | file MB | peak RSS MB | epoch s |")
    print("|---|---|---|---|---|")
    for r in rows_out:
        print(f"| {r['multiple']}x | {r['rows']} | {r['file_mb']:.0f} | {r['peak_mb']:.0f} | "
              f"{r['seconds']:.1f} |")
    return rows_out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("parts", nargs="*", help="devices, pyro, hosts, stream (default: all)")
    ap.add_argument("--eval-rows", type=int, default=2000,
                    help="hosts: MNIST test images scored (1000 samples each)")
    ap.add_argument("--rows", type=int, default=60000, help="MNIST training rows to use")
    ap.add_argument("--platform", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--chunk", type=int, default=8192)
    args = ap.parse_args(argv)
    parts = args.parts or ["devices", "pyro", "hosts", "stream"]
    bad = sorted(set(parts) - {"devices", "pyro", "hosts", "stream"})
    if bad:
        ap.error(f"unknown part(s) {bad}")
    t0 = time.perf_counter()
    if "devices" in parts:
        run_devices(args.devices, args.rows, args.platform)
    if "pyro" in parts:
        run_pyro([n for n in args.devices if n <= 2] if args.platform == "cpu" else args.devices,
                 args.rows)
    if "hosts" in parts:
        run_hosts(args.rows, args.eval_rows)
    if "stream" in parts:
        run_stream(args.chunk, [1, 4, 16])
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
