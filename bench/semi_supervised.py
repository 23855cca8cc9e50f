"""M2 (SSVAE) and its auxiliary-variable versions (ADGM, SDGM) vs the classical baselines with
few labels (digits by default; MNIST or Fashion-MNIST with --dataset), over several label draws.

For each label draw (5 per class by default) it trains each model on each backend with the
defaults of examples/semi_supervised.py and prints, in one run on the same split and the same
labelled examples: each model's test accuracy per backend (from its classifier q(y|x), and from
the model's own posterior p(y|x) by Bayes' rule, ``pv.predict(..., method="model")``), logistic
regression on the labelled examples only, and scikit-learn's LabelSpreading; then mean and
spread, seconds per epoch and the first-epoch (compilation) time of each backend, and the time
until the validation accuracy first reaches 0.84 (the official Pyro SS-VAE example's accuracy
after 100 epochs), first epoch included.

    .venv/bin/python bench/semi_supervised.py              # M2, 5 draws (~12 minutes on 2 cores)
    .venv/bin/python bench/semi_supervised.py --draws 2 --backends numpyro
    .venv/bin/python bench/semi_supervised.py --models m2,adgm,sdgm --backends numpyro
    .venv/bin/python bench/semi_supervised.py --dataset mnist --path ../shared/data/mnist \
        --labels 100 --models sdgm --backends numpyro --likelihood bernoulli --binarize \
        --batch-size 100 --epochs 40                       # ~25 min per draw on one core
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import probvae as pv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from semi_supervised import DEFAULTS, MODELS, baselines, time_to, train_m2  # noqa: E402

#: the official Pyro SS-VAE example's test accuracy after 100 epochs on digits
PYRO_EXAMPLE = 0.84


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--first-draw", type=int, default=0,
                    help="label draws from this seed on (to split a long benchmark into parts)")
    ap.add_argument("--labels", type=int, default=DEFAULTS["labels"])
    ap.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    ap.add_argument("--backends", default="numpyro,pyro")
    ap.add_argument("--models", default="m2", help="comma-separated: m2, adgm, sdgm")
    ap.add_argument("--dataset", choices=["digits", "mnist", "fashion_mnist"], default="digits")
    ap.add_argument("--path", dest="data_dir", default=None, metavar="DIR",
                    help="folder with the IDX files (mnist), as pv.data.load's path=")
    ap.add_argument("--likelihood", default=DEFAULTS["likelihood"])
    ap.add_argument("--binarize", action="store_true", help="as in examples/semi_supervised.py")
    ap.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    args = ap.parse_args()
    backends = args.backends.split(",")
    models = args.models.split(",")
    unknown = set(models) - set(MODELS)
    if unknown:
        raise SystemExit(f"unknown --models {sorted(unknown)}; known: {sorted(MODELS)}")
    runs = [(m, b) for m in models for b in backends]
    label = {r: (MODELS[r[0]][0] + " " + r[1]) for r in runs}
    data = pv.data.load(args.dataset, path=args.data_dir, seed=0)
    test = data.test.binarize(stochastic=True, seed=0) if args.binarize else data.test
    k = data.num_classes
    cfg = dict(DEFAULTS, epochs=args.epochs, likelihood=args.likelihood, binarize=args.binarize,
               batch_size=args.batch_size)
    print(f"{args.dataset}, {args.labels} labels ({args.labels // k} per class), {args.draws} "
          f"label draws ({args.first_draw}..); {', '.join(MODELS[m][0] for m in models)}: "
          f"latent {cfg['latent_dim']}, "
          f"hidden {cfg['hidden'] or 'default'}, alpha {cfg['alpha'] or 'default'}, lr {cfg['lr']}, batch "
          f"{cfg['batch_size']}, {cfg['epochs']} epochs, {cfg['likelihood']}"
          f"{' (binarized each epoch)' if args.binarize else ''}\n")
    cols = [f"{label[r]} {m}" for r in runs for m in ("q(y|x)", "p(y|x)")] + [
        "logreg (labels only)", "LabelSpreading"]
    print(f"{'draw':>4} | " + " | ".join(f"{c:>20}" for c in cols))
    acc = {c: [] for c in cols}
    speed = {r: [] for r in runs}
    for draw in range(args.first_draw, args.first_draw + args.draws):
        lab = data.train.label_subset(n_per_class=args.labels // k, seed=draw)
        unlab = np.setdiff1d(np.arange(len(data.train)), lab)
        row = {}
        for m, b in runs:
            res = train_m2(data, lab, SimpleNamespace(**dict(cfg, model=m, backend=b, seed=draw)),
                           progress=False)
            for q, method in (("q(y|x)", "classifier"), ("p(y|x)", "model")):
                probs = pv.predict(res, test, method=method, num_samples=50, seed=draw)
                row[f"{label[m, b]} {q}"] = float((probs.argmax(1) == test.y).mean())
            sec = res.history["seconds"]
            speed[m, b].append((float(np.median(sec[1:] if len(sec) > 1 else sec)), sec[0],
                                time_to(res.history, PYRO_EXAMPLE)))
        base = baselines(data.train.x[lab], data.train.y[lab], data.train.x[unlab],
                         data.test.x, data.test.y, draw)
        row["logreg (labels only)"] = base["supervised-only logistic regression"]
        row["LabelSpreading"] = base["LabelSpreading (scikit-learn, kNN)"]
        for c in cols:
            acc[c].append(row[c])
        print(f"{draw:>4} | " + " | ".join(f"{row[c]:>20.3f}" for c in cols), flush=True)
    print(f"{'mean':>4} | " + " | ".join(f"{np.mean(acc[c]):>14.3f} ±{np.std(acc[c]):.3f}"
                                         for c in cols))
    for r in runs:
        ep = np.mean([s[0] for s in speed[r]])
        first = np.mean([s[1] for s in speed[r]])
        reached = [s[2] for s in speed[r] if s[2] is not None]
        to = (f"validation accuracy {PYRO_EXAMPLE} after {np.mean([t[1] for t in reached]):.1f} s "
              f"({np.mean([t[0] for t in reached]):.1f} epochs; {len(reached)}/{len(speed[r])} "
              "draws reached it)" if reached else f"never reached {PYRO_EXAMPLE}")
        print(f"{label[r]:>14}: {ep:.3f} s/epoch (median after the first), first epoch "
              f"{first:.1f} s" + (" (compilation of the whole epoch)" if r[1] == "numpyro" else "")
              + f"; {to}")
    ls, lr = np.mean(acc["LabelSpreading"]), np.mean(acc["logreg (labels only)"])
    for c in cols[:-2]:
        m2 = np.mean(acc[c])
        wins = sum(a >= b for a, b in zip(acc[c], acc["LabelSpreading"]))
        print(f"{c} {m2:.3f} vs LabelSpreading {ls:.3f}: "
              f"{'at or above' if m2 >= ls else 'BELOW'} ({wins}/{args.draws} draws at or "
              f"above); vs supervised-only {lr:.3f}: {m2 - lr:+.3f}")


if __name__ == "__main__":
    main()
