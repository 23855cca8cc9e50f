"""Images at real scale: MNIST / Fashion-MNIST likelihood tables and training speed.

Subcommands (all read the standard IDX files from ../shared/data; nothing is downloaded):

    python bench/mnist.py train ROW [--dataset mnist]   # one row, checkpointed: rerun to resume
    python bench/mnist.py table [--dataset mnist]       # evaluate every trained row (--rows A,B)
    python bench/mnist.py curves [--dataset mnist]      # learning curves, also of a running row
    python bench/mnist.py pictures ROW [--dataset mnist]  # samples, reconstructions (PNG)
    python bench/mnist.py prior-cost                    # seconds per epoch: normal vs VampPrior
    python bench/mnist.py speed [--only LOOPS]          # pv.fit vs hand-written loops, % of peak
    python bench/mnist.py rows                          # the rows and their settings

Rows (dynamically binarized pixels, Bernoulli likelihood, latent 40, Adam, batch 100, best
validation epoch kept; the 54,000/6,000 train/validation split of ``pv.data.load``):

    mlp_vae    MLP 784-300-300-40, ELBO                     (published VAE: 89.78 nats)
    mlp_vamp   the same with a VampPrior, 500 pseudo-inputs, KL warm-up  (published: 85.79)
    mlp_iwae   the same trained with the IWAE bound, k = 10  (published IWAE k=50: 86.82)
    conv_vae   conv encoder/decoder (32, 64 channels, dense 256), ELBO
    conv_vamp  the conv VAE with a VampPrior (100 pseudo-inputs)

Training runs go to runs/bench_<dataset>/ROW (a probvae run folder with checkpoints; each
epoch is saved, so an interrupted row resumes where it stopped). The table scores the test
split, binarized once (seed 0), with the IWAE bound: 5,000 importance samples for the MLP rows
(as the published tables), 1,000 for the conv rows (time), and prints each row's epochs,
training time and the last validation losses (its learning curve in short).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
PUBLISHED = {"mlp_vae": 89.78, "mlp_vamp": 85.79, "mlp_iwae": 86.82}

#: row -> settings: model keywords, fit keywords, backend, epochs, importance samples
ROWS = {
    "mlp_vae": dict(model=dict(hidden=(300, 300)), fit=dict(objective="elbo"),
                    backend="numpyro", epochs=1000, patience=100, samples=5000),
    "mlp_vamp": dict(model=dict(hidden=(300, 300), prior={"name": "vamp", "components": 500}),
                     fit=dict(objective="beta", beta=1.0, warmup=100),
                     backend="numpyro", epochs=500, patience=100, samples=5000),
    "mlp_iwae": dict(model=dict(hidden=(300, 300)), fit=dict(objective="iwae", num_particles=10),
                     backend="numpyro", epochs=700, patience=100, samples=5000),
    "conv_vae": dict(model=dict(encoder="conv", decoder="conv"), fit=dict(objective="elbo"),
                     backend="pyro", epochs=100, patience=20, samples=1000),
    "conv_vamp": dict(model=dict(encoder="conv", decoder="conv",
                                 prior={"name": "vamp", "components": 100}),
                      fit=dict(objective="beta", beta=1.0, warmup=20),
                      backend="pyro", epochs=100, patience=20, samples=1000),
}


def load(dataset):
    import probvae as pv
    return pv.data.load(dataset, path=DATA / dataset, seed=0)


def make_model(row, backend=None):
    import probvae as pv
    spec = ROWS[row]
    return pv.models.VAE(image_shape=(1, 28, 28), latent_dim=40, likelihood="bernoulli",
                         backend=backend or spec["backend"], **spec["model"])


def run_dir(dataset, row) -> Path:
    return ROOT / "runs" / f"bench_{dataset}" / row


def cmd_train(args):
    import probvae as pv
    spec = ROWS[args.row]
    data = load(args.dataset)
    out = run_dir(args.dataset, args.row)
    out.parent.mkdir(parents=True, exist_ok=True)
    epochs = args.epochs or spec["epochs"]
    print(f"{args.row} on {args.dataset}: {spec}, {epochs} epochs -> {out}", flush=True)
    res = pv.fit(make_model(args.row), data.train, validation=data.valid, binarize="dynamic",
                 epochs=epochs, batch_size=100, lr=5e-4, seed=0, patience=spec["patience"],
                 checkpoint=out, resume=True, progress=not args.no_progress, **spec["fit"])
    h = res.history
    best = res.best_epoch                                             # counted from 1
    print(f"{args.row}: {res.status}, {len(h['train_loss'])} epochs, best {best}, "
          f"valid {min(h['valid_loss']):.2f}, {sum(h['seconds']) / 60:.1f} min", flush=True)


def cmd_table(args):
    import probvae as pv
    data = load(args.dataset)
    test = data.test.binarize(stochastic=True, seed=0)
    rows = []
    for row, spec in ROWS.items():
        out = run_dir(args.dataset, row)
        if args.rows and row not in args.rows.split(","):
            continue
        if not (out / "config.json").is_file():
            flag = "" if args.dataset == "mnist" else f" --dataset {args.dataset}"
            print(f"{row}: not trained yet (python bench/mnist.py train {row}{flag})",
                  flush=True)
            continue
        res = pv.load(out)
        samples = args.num_samples or spec["samples"]
        scores = pv.evaluate(res, test, num_samples=samples, progress=True)
        h = res.history
        rows.append((row, spec["backend"], len(h["train_loss"]), res.best_epoch,
                     sum(h["seconds"]) / 60, -scores["log_likelihood"], samples,
                     scores["seconds"] / 60, h["valid_loss"][-5:]))
        print(f"{row}: -log p(x) {-scores['log_likelihood']:.2f} nats ({samples} samples, "
              f"{scores['seconds'] / 60:.1f} min)", flush=True)
    print(f"\n{args.dataset}, dynamically binarized, test -log p(x) (IWAE bound), nats")
    print(f"{'row':<10} {'backend':<8} {'epochs':>6} {'best':>5} {'train min':>9} "
          f"{'-log p(x)':>9} {'published':>9} {'samples':>7} {'eval min':>8}  last valid losses")
    for row, backend, ep, best, tmin, nll, s, emin, curve in rows:
        pub = PUBLISHED.get(row) if args.dataset == "mnist" else None
        print(f"{row:<10} {backend:<8} {ep:>6} {best + 1 if best is not None else '':>5} "
              f"{tmin:>9.1f} {nll:>9.2f} {pub if pub else '':>9} {s:>7} {emin:>8.1f}  "
              + " ".join(f"{v:.2f}" for v in curve))


def cmd_curves(args):
    """Each row's validation loss along its epochs (text), and a learning-curve PNG per row.

    Reads the run folder's history.json, which a checkpointed run rewrites every epoch, so it
    shows a row that is still training."""
    import probvae as pv
    for row in ROWS:
        out = run_dir(args.dataset, row)
        if not (out / "history.json").is_file():
            print(f"{row}: not trained yet", flush=True)
            continue
        h = json.loads((out / "history.json").read_text())
        valid = h.get("valid_loss") or []
        if not valid:
            print(f"{row}: no validation loss recorded yet", flush=True)
            continue
        marks = sorted({1, *(int(len(valid) * f) for f in (0.1, 0.25, 0.5, 0.75)), len(valid)} - {0})
        best = int(np.argmin(valid)) + 1
        png = out.parent / f"learning_curves_{row}.png"
        pv.plots.learning_curves(h, png, title=f"{row} on {args.dataset}")
        print(f"{row}: {len(valid)} epochs, {sum(h['seconds']) / 60:.1f} min, valid -ELBO "
              + ", ".join(f"{valid[e - 1]:.2f} (ep {e})" for e in marks)
              + f"; best {valid[best - 1]:.2f} (ep {best}) -> {png}", flush=True)


def cmd_pictures(args):
    """64 samples and 16 reconstructions of binarized test images from a trained row, as
    PNGs (``--out``, default docs/): what a row that finished its epochs draws."""
    import probvae as pv
    out_dir = Path(args.out)
    run = run_dir(args.dataset, args.row)
    if not (run / "config.json").is_file():
        raise SystemExit(f"{args.row} is not trained on {args.dataset} yet")
    res = pv.load(run)
    test = load(args.dataset).test.binarize(stochastic=True, seed=0)
    name = f"{args.dataset}_{args.row}"
    epochs = len(res.history["train_loss"])
    pv.plots.image_grid(pv.sample(res, n=64, seed=0), (28, 28),
                        out_dir / f"{name}_samples.png", ncol=8,
                        title=f"{args.dataset}: {args.row}, {epochs} epochs (means of p(x|z))")
    xt = test.x[:16]
    rec = pv.reconstruct(res, xt)
    pv.plots.image_grid(np.concatenate([xt[:8], rec[:8], xt[8:], rec[8:]]), (28, 28),
                        out_dir / f"{name}_reconstructions.png", ncol=8,
                        title=f"{args.dataset}: test images (rows 1, 3), {args.row} (rows 2, 4)")
    print(f"wrote {out_dir / (name + '_samples.png')} and _reconstructions.png", flush=True)


def cmd_prior_cost(args):
    """The cost of a mixture's log-density (:func:`mixture_cost`), then seconds per epoch of the
    MLP row on 10,000 MNIST images with each prior (the VampPrior rows take longest: each step
    encodes all pseudo-inputs beside the batch and scores z under the mixture they make)."""
    import warnings

    import probvae as pv
    warnings.simplefilter("ignore")
    mixture_cost()
    x = load("mnist").train.x[:10000]
    print("MLP 784-300-300-40, batch 100 (100 steps per epoch), 3 epochs, the first compiles")
    for prior in ["normal", {"name": "vamp", "components": 100},
                  {"name": "vamp", "components": 500}]:
        vae = pv.models.VAE(image_shape=(1, 28, 28), latent_dim=40, hidden=(300, 300),
                            likelihood="bernoulli", prior=prior)
        res = pv.fit(vae, x, epochs=3, batch_size=100, binarize="dynamic", progress=False)
        print(f"{json.dumps(prior):<40} s/epoch: "
              + ", ".join(f"{v:.2f}" for v in res.history["seconds"]), flush=True)


def mixture_cost(k=500, d=40, b=100, repeats=100):
    """Milliseconds for the log-density of ``b`` latents under a ``k``-component diagonal
    Gaussian mixture and its gradient (jitted, NumPyro): the library's ``MixtureSameFamily``
    against probvae's ``DiagonalNormalMixture`` (two matmuls), as the VampPrior uses it."""
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as nd

    from probvae.distributions.mixture_jax import DiagonalNormalMixture
    rng = np.random.default_rng(0)
    args = (jnp.zeros(k), jnp.asarray(rng.standard_normal((k, d)), jnp.float32),
            jnp.asarray(rng.uniform(0.5, 1.5, (k, d)), jnp.float32),
            jnp.asarray(rng.standard_normal((b, d)), jnp.float32))
    kinds = {"MixtureSameFamily": lambda l, m, s: nd.MixtureSameFamily(
                 nd.Categorical(logits=l), nd.Normal(m, s).to_event(1)),
             "DiagonalNormalMixture": DiagonalNormalMixture}
    print(f"log p(z) and its gradient, {b} latents of {d} dims, {k} components:")
    for name, make in kinds.items():
        f = jax.jit(jax.value_and_grad(lambda l, m, s, z: make(l, m, s).log_prob(z).sum(),
                                       argnums=(1, 2)))
        jax.block_until_ready(f(*args))
        t = time.perf_counter()
        for _ in range(repeats):
            out = f(*args)
        jax.block_until_ready(out)
        print(f"  {name:<22} {(time.perf_counter() - t) / repeats * 1e3:6.2f} ms "
              f"(log p {float(out[0]):.2f})", flush=True)


def cmd_speed(args):
    from speed_loops import (flops_per_image, hand_numpyro, hand_pyro, matmul_peak,
                             matmuls_jax, matmuls_torch, minimal_jax, minimal_torch, probvae_fit)
    data = load("mnist")
    x = data.train.binarize().x
    epochs = args.epochs or 6
    jax_peak, torch_peak = matmul_peak(repeats=20)
    flops = flops_per_image() * (len(x) // 256) * 256
    print(f"MNIST {len(x)} images, VAE 784-400-50, batch 256, Adam 1e-3, {epochs} epochs "
          f"(the first dropped: compilation / warm-up); {flops_per_image() / 1e6:.2f} MFLOP of "
          f"matmul per image and step; fp32 matmul peak (2048 x 2048) now: JAX "
          f"{jax_peak:.0f}, torch {torch_peak:.0f} GFLOP/s\n")
    runs = [("matmuls_jax", "matmuls alone, JAX (the ceiling)",
             lambda: matmuls_jax(x, epochs)[1:], "jax"),
            ("minimal_jax", "the least VAE loop, plain JAX + optax",
             lambda: minimal_jax(x, epochs)[1:], "jax"),
            ("hand_numpyro", "hand-written NumPyro (jit svi.update)",
             lambda: hand_numpyro(x, epochs)[1:], "jax"),
            ("fit_numpyro", "pv.fit, NumPyro",
             lambda: probvae_fit(x, epochs, "numpyro"), "jax"),
            ("hand_pyro", "hand-written Pyro (DataLoader, SVI.step)",
             lambda: hand_pyro(x, epochs)[1:], "torch"),
            ("matmuls_torch", "matmuls alone, torch (the ceiling)",
             lambda: matmuls_torch(x, epochs)[1:], "torch"),
            ("minimal_torch", "the least VAE loop, plain torch",
             lambda: minimal_torch(x, epochs)[1:], "torch"),
            ("fit_pyro", "pv.fit, Pyro", lambda: probvae_fit(x, epochs, "pyro"), "torch"),
            ("fit_pyro_checks", "pv.fit, Pyro, checks every epoch, zeroed grads",
             lambda: probvae_fit(x, epochs, "pyro", pyro_as="checks"), "torch"),
            ("fit_pyro_per_tensor", "pv.fit, Pyro, as before JointAdam",
             lambda: probvae_fit(x, epochs, "pyro", pyro_as="per_tensor"), "torch"),
            ("fit_pyro_unfused", "pv.fit, Pyro, unfused per-tensor Adam",
             lambda: probvae_fit(x, epochs, "pyro", pyro_as="unfused"), "torch")]
    only = set(args.only.split(",")) if args.only else None
    results = []
    for key, name, run, lib in runs:
        if only is None or key in only:
            results.append((name, np.asarray(run()), lib))
    # the peak again after the loops (the machine's speed drifts); each library's best of both
    again = matmul_peak(repeats=20)
    peaks = {"jax": max(jax_peak, again[0]), "torch": max(torch_peak, again[1])}
    machine = max(peaks.values())
    print(f"peak, best of before and after: JAX {peaks['jax']:.0f}, torch {peaks['torch']:.0f} "
          f"GFLOP/s; the machine's peak is the larger, {machine:.0f}\n")
    print(f"{'loop':<42} {'s/epoch min':>11} {'median':>7} {'max':>6} {'images/s':>9} "
          f"{'GFLOP/s':>8} {'% of its library peak':>21} {'% of machine peak':>17}")
    for name, sec, lib in results:
        med = float(np.median(sec))
        gf = flops / med / 1e9
        print(f"{name:<42} {sec.min():>11.2f} {med:>7.2f} {sec.max():>6.2f} "
              f"{len(x) / med:>9.0f} {gf:>8.0f} {100 * gf / peaks[lib]:>20.0f}% "
              f"{100 * gf / machine:>16.0f}%", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("row", choices=list(ROWS))
    t.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)
    tb = sub.add_parser("table")
    tb.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    tb.add_argument("--num-samples", type=int, default=None)
    tb.add_argument("--rows", default=None, help="comma-separated rows (default: all trained)")
    tb.set_defaults(func=cmd_table)
    c = sub.add_parser("curves")
    c.add_argument("--dataset", choices=["mnist", "fashion_mnist"], default="mnist")
    c.set_defaults(func=cmd_curves)
    pi = sub.add_parser("pictures")
    pi.add_argument("row", choices=list(ROWS))
    pi.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"])
    pi.add_argument("--out", default=str(ROOT / "docs"))
    pi.set_defaults(func=cmd_pictures)
    pc = sub.add_parser("prior-cost")
    pc.set_defaults(func=cmd_prior_cost)
    s = sub.add_parser("speed")
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--only", default=None, help="comma-separated loops: matmuls_jax, "
                   "hand_numpyro, fit_numpyro, hand_pyro, matmuls_torch, fit_pyro, "
                   "fit_pyro_per_tensor, fit_pyro_unfused")
    s.set_defaults(func=cmd_speed)
    r = sub.add_parser("rows")
    r.set_defaults(func=lambda a: print(json.dumps(ROWS, indent=1, default=str)))
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
