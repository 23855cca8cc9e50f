"""Model families on dynamically binarized MNIST (issue 34): test -log p(x) beside the anchors.

Subcommands (the standard IDX files from ../shared/data; nothing is downloaded):

    python bench/families.py train ROW [--epochs N]  # one row, checkpointed: rerun to resume
    python bench/families.py table [--rows A,B] [--test-rows N]  # score the trained rows (5,000 samples)
    python bench/families.py ... --runs DIR          # another budget in its own folder
    python bench/families.py rows                    # the rows, their settings and anchors
    python bench/families.py curves [--at 10,50,100] # each trained row's validation curve
    python bench/families.py ... --quick             # a tiny setting that checks the script

Rows (Bernoulli likelihood on dynamically binarized pixels, Adam lr 5e-4, batch 100, the best
validation epoch kept; the 54,000/6,000 train/validation split of ``pv.data.load``). Every row
trains with the same budget, ``--epochs`` (default 500) with early stopping after 50 epochs
without a better validation loss, and the table prints each row's epochs and minutes:

    hvae       HVAE, latents (40, 40), MLPs of 300-300, ELBO       (Tomczak & Welling: 85.89)
    hvae_vamp  the same with a VampPrior on z2, 500 pseudo-inputs, KL warm-up over 100 epochs
                                                                  (Tomczak & Welling: 83.19)
    hvae_iwae  Burda et al.'s two-layer model: latents (100, 50), tanh MLPs 200-200 and
               100-100, IWAE bound with k = 50                    (Burda et al.: 82.90)
    vae        the one-layer base: VAE, latent 40, MLPs of 300-300, ELBO (Tomczak & Welling: 88.56)
    full_rank  the same with a full-rank Gaussian q(z|x)
    iaf        the same with IAF steps on q(z|x)
    iwae16     the base with the IWAE bound, k = 16               (Burda et al., k = 50: 84.78)
    dreg16     the same with DReG gradients, at the same steps

Training runs go to runs/bench_families/ROW (a probvae run folder, saved every epoch, so an
interrupted row resumes where it stopped; ``curves`` in bench/mnist.py style is the run's
history.json). The table scores the test split, binarized once (seed 0), with the IWAE bound
and 5,000 importance samples, as the published tables.

``--quick`` trains each row for one epoch on 2,000 images with tiny networks and scores 200
test images with 50 samples (runs/bench_families_quick): a check that the rows run, not a
figure.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"

#: row -> model keywords, fit keywords, backend, published -log p(x) (nats) and its source
ROWS = {
    "hvae": dict(model=dict(latent_dims=(40, 40), hidden=(300, 300),
                            latent_hidden=(300, 300)),
                 fit=dict(objective="elbo"), backend="numpyro",
                 anchor=(85.89, "Tomczak & Welling 2018, HVAE (L = 2)")),
    "hvae_vamp": dict(model=dict(latent_dims=(40, 40), hidden=(300, 300),
                                 latent_hidden=(300, 300),
                                 prior={"name": "vamp", "components": 500}),
                      fit=dict(objective="beta", beta=1.0, warmup=100), backend="numpyro",
                      anchor=(83.19, "Tomczak & Welling 2018, HVAE (L = 2) + VampPrior")),
    "hvae_iwae": dict(model=dict(latent_dims=(100, 50), hidden=(200, 200),
                                 latent_hidden=(100, 100), activation="tanh"),
                      fit=dict(objective="iwae", num_particles=50), backend="numpyro",
                      anchor=(82.90, "Burda et al. 2016, two-layer IWAE, k = 50")),
}
#: one-layer rows (pv.models.VAE, latent 40, MLPs of 300-300): the families against their base
_VAE = dict(cls="VAE", latent_dim=40, hidden=(300, 300))
_IWAE_ANCHOR = (84.78, "Burda et al. 2016, one-layer IWAE, k = 50 (k = 5: 85.54)")
ROWS.update({
    "vae": dict(model=dict(_VAE), fit=dict(objective="elbo"), backend="numpyro",
                anchor=(88.56, "Tomczak & Welling 2018, VAE (L = 1), standard prior")),
    "full_rank": dict(model=dict(_VAE, posterior="full_rank"), fit=dict(objective="elbo"),
                      backend="numpyro", anchor=(88.56, "the VAE row's anchor (none published)")),
    "iaf": dict(model=dict(_VAE, posterior="iaf"), fit=dict(objective="elbo"),
                backend="numpyro", anchor=(88.56, "the VAE row's anchor (none published)")),
    "iwae16": dict(model=dict(_VAE), fit=dict(objective="iwae", num_particles=16),
                   backend="numpyro", anchor=_IWAE_ANCHOR),
    "dreg16": dict(model=dict(_VAE), fit=dict(objective="dreg", num_particles=16),
                   backend="numpyro", anchor=_IWAE_ANCHOR),
})
#: what --quick shrinks (networks, data, epochs, samples)
QUICK = dict(model=dict(latent_dims=(8, 4), hidden=(32,), latent_hidden=(16,)),
             vae_model=dict(latent_dim=4, hidden=(32,)), rows=2000, test_rows=200, epochs=1,
             samples=50)


def load(quick=False):
    import probvae as pv
    data = pv.data.load("mnist", path=DATA / "mnist", seed=0)
    if not quick:
        return data.train, data.valid, data.test
    n = QUICK["rows"]
    return (pv.data.from_arrays(data.train.x[:n], image_shape=(28, 28)),
            pv.data.from_arrays(data.valid.x[:n // 4], image_shape=(28, 28)),
            pv.data.from_arrays(data.test.x[:QUICK["test_rows"]], image_shape=(28, 28)))


def make_model(row, quick=False):
    import probvae as pv
    spec = ROWS[row]
    kw = dict(spec["model"])
    cls = getattr(pv.models, kw.pop("cls", "HVAE"))
    if quick:
        kw.update(QUICK["model"] if cls is pv.models.HVAE else QUICK["vae_model"])
        if isinstance(kw.get("prior"), dict):
            kw["prior"] = {**kw["prior"], "components": 10}
    return cls(image_shape=(1, 28, 28), likelihood="bernoulli", backend=spec["backend"], **kw)


def run_dir(row, quick=False, runs=None) -> Path:
    if runs:
        return Path(runs) / row
    return ROOT / "runs" / ("bench_families_quick" if quick else "bench_families") / row


def cmd_train(args):
    import probvae as pv
    spec = ROWS[args.row]
    train, valid, _ = load(args.quick)
    out = run_dir(args.row, args.quick, args.runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    epochs = QUICK["epochs"] if args.quick else args.epochs
    fit = dict(spec["fit"])
    if args.quick and "warmup" in fit:
        fit["warmup"] = 1
    if args.quick and "num_particles" in fit:
        fit["num_particles"] = 4
    model = make_model(args.row, args.quick)
    print(f"{args.row}: {model.config()}, {fit}, {epochs} epochs -> {out}", flush=True)
    res = pv.fit(model, train, validation=valid, binarize="dynamic",
                 epochs=epochs, batch_size=100, lr=5e-4, seed=0, patience=50,
                 checkpoint=out, resume=True, progress=not args.no_progress, **fit)
    h = res.history
    print(f"{args.row}: {res.status}, {len(h['train_loss'])} epochs, best {res.best_epoch}, "
          f"valid {min(h['valid_loss']):.2f}, {sum(h['seconds']) / 60:.1f} min", flush=True)


def cmd_table(args):
    import probvae as pv
    _, _, test = load(args.quick)
    if args.test_rows and not args.quick:
        test = pv.data.from_arrays(test.x[:args.test_rows], image_shape=(28, 28))
    test = test.binarize(stochastic=True, seed=0)
    samples = QUICK["samples"] if args.quick else args.num_samples
    lines = []
    for row, spec in ROWS.items():
        if args.rows and row not in args.rows.split(","):
            continue
        out = run_dir(row, args.quick, args.runs)
        if not (out / "config.json").is_file():
            print(f"{row}: not trained yet (python bench/families.py train {row}"
                  f"{' --quick' if args.quick else ''})", flush=True)
            continue
        res = pv.load(out)
        t0 = time.perf_counter()
        scores = pv.evaluate(res, test, num_samples=samples, progress=not args.quick)
        h = res.history
        lines.append((row, spec["backend"], len(h["train_loss"]), res.best_epoch,
                      sum(h["seconds"]) / 60, -scores["log_likelihood"], spec["anchor"][0],
                      (time.perf_counter() - t0) / 60, h["valid_loss"][-5:]))
    print(f"\nMNIST, dynamically binarized, test -log p(x) (IWAE bound, {samples} samples, "
          f"{len(test.x)} test images), nats")
    print(f"{'row':<10} {'backend':<8} {'epochs':>6} {'best':>5} {'train min':>9} "
          f"{'-log p(x)':>9} {'anchor':>7} {'eval min':>8}  last valid losses")
    for row, backend, ep, best, tmin, nll, anchor, emin, curve in lines:
        print(f"{row:<10} {backend:<8} {ep:>6} {best if best is not None else '':>5} "
              f"{tmin:>9.1f} {nll:>9.2f} {anchor:>7.2f} {emin:>8.1f}  "
              + " ".join(f"{v:.2f}" for v in curve), flush=True)


def cmd_curves(args):
    """Each trained row's validation loss (the training objective's bound) at some epochs."""
    import json
    marks = [int(m) for m in args.at.split(",")]
    print(f"validation loss (nats; the row's own objective) at epochs {marks}")
    for row in ROWS:
        hist = run_dir(row, args.quick, args.runs) / "history.json"
        if not hist.is_file():
            continue
        h = json.loads(hist.read_text())
        v, secs = h["valid_loss"], h["seconds"]
        cells = [f"{v[m - 1]:7.2f}" if m <= len(v) else f"{'':>7}" for m in marks]
        print(f"{row:<10} {' '.join(cells)}   ({len(v)} epochs, best {min(v):.2f}, "
              f"{sum(secs) / len(secs):.1f} s an epoch)")


def cmd_rows(args):
    for row, spec in ROWS.items():
        print(f"{row:<10} {spec['backend']:<8} model {spec['model']} fit {spec['fit']}; "
              f"anchor {spec['anchor'][0]} ({spec['anchor'][1]})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    train = sub.add_parser("train")
    train.add_argument("row", choices=sorted(ROWS))
    train.add_argument("--epochs", type=int, default=500)
    train.add_argument("--no-progress", action="store_true")
    table = sub.add_parser("table")
    table.add_argument("--rows", default="")
    table.add_argument("--num-samples", type=int, default=5000)
    table.add_argument("--test-rows", type=int, default=0,
                       help="score the first N test images only (default: all 10,000)")
    curves = sub.add_parser("curves")
    curves.add_argument("--at", default="10,25,50,75,100,200,300")
    sub.add_parser("rows")
    for p in (train, table, curves):
        p.add_argument("--quick", action="store_true")
        p.add_argument("--runs", default=None,
                       help="the folder of the row runs (default runs/bench_families): "
                            "a second budget, e.g. --epochs 100 --runs runs/bench_families_e100")
    args = parser.parse_args(argv)
    {"train": cmd_train, "table": cmd_table, "rows": cmd_rows, "curves": cmd_curves}[args.cmd](args)


if __name__ == "__main__":
    main()
