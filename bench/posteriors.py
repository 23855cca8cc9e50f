"""Step time of each posterior family (diagonal, full_rank, iaf) beside the diagonal one.

Trains the same VAE (binarized digits, or random binary data of MNIST's width with
``--width 784``) with each family for a few epochs and prints the median seconds per training
step over the epochs after the first (the first compiles), and the ratio to ``diagonal``. The
issue's target: full_rank and iaf at most 1.5x a diagonal step.

    .venv/bin/python bench/posteriors.py                       # both backends, digits
    .venv/bin/python bench/posteriors.py --backends numpyro --width 784 --epochs 4
    .venv/bin/python bench/posteriors.py --mnist ../shared/data/mnist --latent 40 \
        --hidden 300 300 --batch 100 --rows 10000     # the MNIST families' setting
"""
from __future__ import annotations

import argparse

import numpy as np

import probvae as pv

FAMILIES = {"diagonal": "diagonal", "full_rank": "full_rank",
            "iaf": pv.posteriors.IAF(steps=2, hidden=(64,), context=16)}


def data(width: int, rows: int, mnist: str = ""):
    if mnist:
        x = pv.data.load("mnist", path=mnist, seed=0).train.x[:rows]
        return (x > 0.5).astype(np.float32)
    if width == 64:
        return (pv.data.load("digits", seed=0).train.x > 0.5).astype(np.float32)
    return (np.random.default_rng(0).random((rows, width)) > 0.8).astype(np.float32)


def step_seconds(backend, family, x, latent, hidden, batch, epochs) -> float:
    vae = pv.models.VAE(input_dim=x.shape[1], latent_dim=latent, hidden=hidden,
                        likelihood="bernoulli", backend=backend, posterior=FAMILIES[family])
    res = pv.fit(vae, x, epochs=epochs, batch_size=batch, lr=1e-3, seed=0, validation=None,
                 progress=False)
    steps = -(-len(x) // batch)
    return float(np.median(res.history["seconds"][1:])) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="numpyro,pyro")
    ap.add_argument("--width", type=int, default=64, help="64: digits; else random binary")
    ap.add_argument("--mnist", default="", metavar="DIR",
                    help="binarized MNIST from DIR (e.g. ../shared/data/mnist) instead")
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    x = data(args.width, args.rows, args.mnist)
    hidden = tuple(args.hidden)
    print(f"{len(x)} rows x {x.shape[1]}, latent {args.latent}, hidden {hidden}, "
          f"batch {args.batch}, median over epochs 2..{args.epochs}")
    for backend in args.backends.split(","):
        base = None
        for family in FAMILIES:
            sec = step_seconds(backend, family, x, args.latent, hidden, args.batch, args.epochs)
            base = base or sec
            print(f"{backend:8s} {family:10s} {1e3 * sec:8.2f} ms/step  {sec / base:5.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
