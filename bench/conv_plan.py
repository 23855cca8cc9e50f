"""How a short NumPyro fit of a conv VAE compiles: the plan's choice against XLA's quick mode.

A conv VAE (latent 16, binarized MNIST, batch 128) trains for a few epochs twice, each in its
own process: once as ``pv.fit`` plans it (a model with convolutions compiles optimised from
the start, :func:`probvae.inference.compiling.plan`), once with every program compiled quickly
(XLA without LLVM's optimisations), which is what the plan chose for short runs before it knew
about convolutions. Prints the seconds of each fit (compilation included) and per epoch.

    .venv/bin/python bench/conv_plan.py                    # 512 images, 3 epochs
    .venv/bin/python bench/conv_plan.py --rows 2048 --epochs 3
"""
import argparse
import json
import subprocess
import sys

RUN = r"""
import json, sys, time
import numpy as np
import probvae as pv
import probvae.inference.numpyro_loop as loop
rows, epochs, quick, data_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "quick", sys.argv[4]
if quick:                                   # as before: the plan cannot see the convolutions
    loop._convolutional = lambda model: False
x = pv.data.load("mnist", path=data_dir, seed=0).train.x[:rows]
x = (x > 0.5).astype(np.float32)
vae = pv.models.VAE(input_dim=784, latent_dim=16, image_shape=(1, 28, 28), encoder="conv",
                    decoder="conv", likelihood="bernoulli", backend="numpyro")
t = time.perf_counter()
res = pv.fit(vae, x, epochs=epochs, batch_size=128, validation=None, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "epochs": res.history["seconds"]}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--data-dir", default="../shared/data/mnist")
    args = ap.parse_args(argv)
    print(f"conv VAE, latent 16, {args.rows} binarized MNIST images, batch 128, "
          f"{args.epochs} epochs, NumPyro")
    for mode in ("planned", "quick"):
        out = subprocess.run([sys.executable, "-c", RUN, str(args.rows), str(args.epochs), mode,
                              args.data_dir], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"the {mode} fit failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {mode:>8}: {r['seconds']:7.1f} s in all; per epoch "
              + ", ".join(f"{s:.1f}" for s in r["epochs"]), flush=True)


if __name__ == "__main__":
    main()
