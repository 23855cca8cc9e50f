"""Transfer: VAE features for a classifier that sees only a few labelled digits.

A ``pv.features.VAEEncoder`` is trained once on all the training digits, without their labels.
Logistic regression is then fitted on a few labelled digits (1 to 50 per class) using three
representations of the same images, and scored on the test split:

  * raw pixels (64 features),
  * PCA features (fitted on all the unlabelled training digits, as many as the VAE's latent),
  * VAE features: posterior means E_q[z|x] of the encoder (VampPrior, 16 dims, one hidden layer
    of 512: chosen on the validation split, where they beat the normal prior's features).

Both transformers map the training and test digits once; the classifier is then fitted on the
rows of the labelled digits. (In a ``Pipeline``, wrap the fitted encoder in
``sklearn.frozen.FrozenEstimator`` so that fitting the pipeline on labelled digits does not
retrain it.) Each accuracy is the mean ± sd over several random draws of the labelled digits
(--draws); the script prints one table and writes the accuracy-vs-labels curve to --out.

    python examples/transfer.py                     # NumPyro
    python examples/transfer.py --backend pyro --draws 3
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

import probvae as pv
from probvae.applications.features import VAEEncoder

DEFAULTS = dict(backend="numpyro", epochs=100, latent_dim=16, hidden=512, prior="vamp", draws=10,
                per_class=(1, 2, 5, 10, 20, 50), seed=0)


def representations(data, args):
    """name -> (train features, test features); the transformers are fitted without labels."""
    x_unlabelled = data.train.x
    t = time.perf_counter()
    enc = VAEEncoder(latent_dim=args.latent_dim, hidden=(args.hidden,), prior=args.prior,
                     epochs=args.epochs, batch_size=32, validation_fraction=0.1,
                     backend=args.backend, seed=args.seed, progress=True).fit(x_unlabelled)
    print(f"VAE encoder trained on {len(x_unlabelled)} unlabelled digits in "
          f"{time.perf_counter() - t:.1f} s (best epoch {enc.result_.best_epoch})")
    pca = PCA(n_components=args.latent_dim).fit(x_unlabelled)
    reps = {"raw pixels": None, f"PCA ({args.latent_dim} components)": pca,
            f"VAE ({args.latent_dim}-dim posterior mean)": enc}
    return {name: (data.train.x, data.test.x) if rep is None
            else (rep.transform(data.train.x), rep.transform(data.test.x))
            for name, rep in reps.items()}


def accuracies(data, reps, per_class, draws, seed):
    """{name: {n_per_class: [accuracy per draw]}} of logistic regression on the test split."""
    out = {name: {n: [] for n in per_class} for name in reps}
    for n in per_class:
        for d in range(draws):
            lab = data.train.label_subset(n_per_class=n, seed=seed + d)
            for name, (f_train, f_test) in reps.items():
                clf = LogisticRegression(max_iter=5000).fit(f_train[lab], data.train.y[lab])
                out[name][n].append(clf.score(f_test, data.test.y))
    return out


def print_table(acc, per_class, k, n_test):
    names = list(acc)
    width = max(len(n) for n in names) + 2
    print(f"\ntest accuracy of logistic regression ({n_test} test digits), mean ± sd over "
          f"label draws")
    print(f"{'labels':<{width}}" + "".join(f"{n * k:>16d}" for n in per_class))
    for name in names:
        cells = [f"{np.mean(acc[name][n]):.3f} ± {np.std(acc[name][n]):.3f}" for n in per_class]
        print(f"{name:<{width}}" + "".join(f"{c:>16}" for c in cells))


def plot(acc, per_class, k, path: Path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = [n * k for n in per_class]
    for name, by_n in acc.items():
        mean = np.array([np.mean(by_n[n]) for n in per_class])
        sd = np.array([np.std(by_n[n]) for n in per_class])
        ax.plot(labels, mean, marker="o", label=name)
        ax.fill_between(labels, mean - sd, mean + sd, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xticks(labels, [str(n) for n in labels])
    ax.set_xlabel("labelled training digits")
    ax.set_ylabel("test accuracy")
    ax.set_title("logistic regression on few labels (digits)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    pv.plots.save_png(fig, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    d = DEFAULTS
    ap.add_argument("--backend", choices=["numpyro", "pyro"], default=d["backend"])
    ap.add_argument("--epochs", type=int, default=d["epochs"])
    ap.add_argument("--latent-dim", type=int, default=d["latent_dim"])
    ap.add_argument("--hidden", type=int, default=d["hidden"], help="width of the hidden layer")
    ap.add_argument("--prior", default=d["prior"])
    ap.add_argument("--draws", type=int, default=d["draws"], help="label draws per size")
    ap.add_argument("--per-class", type=int, nargs="+", default=list(d["per_class"]),
                    help="labelled digits per class, one run each")
    ap.add_argument("--seed", type=int, default=d["seed"], help="seeds training and label draws")
    ap.add_argument("--out", default=None,
                    help="folder for the pictures (default: runs/transfer/BACKEND, one "
                         "folder per kind of run, so that no run replaces another's)")
    args = ap.parse_args()

    data = pv.data.load("digits", seed=0)
    print(f"{data!r}; backend {args.backend}")
    t0 = time.perf_counter()
    reps = representations(data, args)
    acc = accuracies(data, reps, args.per_class, args.draws, args.seed)
    print_table(acc, args.per_class, data.num_classes, len(data.test))
    print(f"{time.perf_counter() - t0:.0f} s in all")
    out = Path(args.out or Path("runs", "transfer", args.backend)) / "accuracy_vs_labels.png"
    plot(acc, args.per_class, data.num_classes, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
