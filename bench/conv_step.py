"""A conv VAE's training step on both backends, side by side in one run (issue 34).

The conv VAE of the README (latent 16, conv encoder and decoder, Bernoulli likelihood) trains on
2,048 binarized MNIST images with batch 128, once per backend, each in its own process; the
first epoch (compilation, warm-up) is left out and the median of the others is each backend's
epoch time. Both processes are told to use the same number of threads (``--threads``, default
1, pinned with ``taskset`` by the caller if the machine is shared).

    .venv/bin/python bench/conv_step.py                      # 6 epochs each
    taskset -c 0 .venv/bin/python bench/conv_step.py --epochs 4

NumPyro's decoder runs its stride-2 transposed convolutions as four stride-1 convolutions, one
per output phase (``probvae.networks.jax_nets._upsample_x2``), and its encoder its stride-2
convolutions as one matrix product over the kernel's taps (``_downsample_x2``): inside the
epoch's ``lax.scan`` XLA's CPU convolutions are some 30x slower; ``--plain`` times eqx's own
layers instead, for the record.

Measured on this 2-core machine: one thread each (the other core busy), Pyro 0.99 s an epoch,
NumPyro 1.93 s (1.96x; before the taps, eqx's layers: 19.39 s, 17.8x); two threads each,
nothing else running, 0.66 s and 1.12 s (1.70x).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

RUN = r"""
import json, sys, time
import numpy as np
backend, rows, epochs, threads, plain, data_dir = (sys.argv[1], int(sys.argv[2]),
    int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "plain", sys.argv[6])
if backend == "pyro":
    import torch
    torch.set_num_threads(threads)
import probvae as pv
if plain:
    from probvae.networks import jax_nets
    import jax.numpy as jnp                     # eqx's layers, on the channels-last images
    jax_nets._upsample_x2 = jax_nets._downsample_x2 = lambda conv, h, padding: jnp.transpose(
        conv(jnp.transpose(h, (2, 0, 1))), (1, 2, 0))
x = pv.data.load("mnist", path=data_dir, seed=0).train.x[:rows]
x = (x > 0.5).astype(np.float32)
vae = pv.models.VAE(input_dim=784, latent_dim=16, image_shape=(1, 28, 28), encoder="conv",
                    decoder="conv", likelihood="bernoulli", backend=backend)
t = time.perf_counter()
res = pv.fit(vae, x, epochs=epochs, batch_size=128, validation=None, progress=False, seed=0)
print(json.dumps({"seconds": time.perf_counter() - t, "epochs": res.history["seconds"],
                  "loss": res.history["train_loss"][-1]}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plain", action="store_true",
                    help="also time NumPyro with eqx's own ConvTranspose2d")
    ap.add_argument("--data-dir", default="../shared/data/mnist")
    args = ap.parse_args(argv)
    steps = -(-args.rows // 128)
    print(f"conv VAE, latent 16, {args.rows} binarized MNIST images, batch 128 ({steps} steps "
          f"an epoch), {args.epochs} epochs, {args.threads} thread(s) each; epoch 1 left out")
    env = dict(os.environ, PROBVAE_COMPILATION_CACHE="0")
    if args.threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                            "intra_op_parallelism_threads=1").strip()
    runs = [("pyro", "ours"), ("numpyro", "ours")] + ([("numpyro", "plain")] if args.plain else [])
    times = {}
    for backend, mode in runs:
        out = subprocess.run([sys.executable, "-c", RUN, backend, str(args.rows), str(args.epochs),
                              str(args.threads), mode, args.data_dir], capture_output=True,
                             text=True, env=env)
        if out.returncode:
            raise SystemExit(f"the {backend} fit failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        epoch = statistics.median(r["epochs"][1:])
        times[(backend, mode)] = epoch
        label = backend + (" (eqx ConvTranspose2d)" if mode == "plain" else "")
        print(f"  {label:<32} {epoch:6.2f} s an epoch, {1000 * epoch / steps:6.1f} ms a step "
              f"({r['seconds']:.1f} s in all, loss {r['loss']:.1f}); epochs "
              + ", ".join(f"{s:.2f}" for s in r["epochs"]), flush=True)
    ratio = times[("numpyro", "ours")] / times[("pyro", "ours")]
    print(f"NumPyro / Pyro epoch time: {ratio:.2f}x (target: at most 2x)")
    if args.plain:
        print(f"NumPyro with eqx's ConvTranspose2d / Pyro: "
              f"{times[('numpyro', 'plain')] / times[('pyro', 'ours')]:.2f}x")


if __name__ == "__main__":
    main()
