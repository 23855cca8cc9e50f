"""Anomaly detection on digits: each class in turn is the anomaly the detectors never saw.

For every digit class k: the detectors are fitted on the training digits of the other nine
classes; the test split is then scored, its class-k digits being the anomalies. The AUROC of
each detector (1.0: every anomaly scored below every normal digit; 0.5: chance) goes in one
table with the mean over the classes, all measured in this run on the same split:

  * VAE: ``pv.anomaly.VAEAnomalyDetector``, importance-weighted log-likelihood log p(x),
  * IsolationForest (scikit-learn defaults),
  * OneClassSVM (RBF kernel, gamma="scale", nu=0.1: an a-priori choice, not tuned on anything),
  * PCA reconstruction error, keeping the components that explain 95% of the training variance.

No setting is tuned on the test labels: the VAE keeps the epoch with the best loss on 10% of
its (normal) training digits. The script writes the most anomalous test digits for each
held-out class to --out.

    python examples/anomaly_detection.py                    # NumPyro, all ten classes
    python examples/anomaly_detection.py --backend pyro --classes 0 1 2
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.svm import OneClassSVM

import probvae as pv
from probvae.applications.anomaly import VAEAnomalyDetector

DEFAULTS = dict(backend="numpyro", epochs=100, latent_dim=8, hidden=128, prior="normal",
                likelihood="continuous_bernoulli", num_samples=100, seed=0)


class PCAReconstruction:
    """PCA as an outlier scorer: minus the squared reconstruction error (higher = normal)."""

    def __init__(self, n_components=0.95):
        self.pca = PCA(n_components=n_components)

    def fit(self, x):
        self.pca.fit(x)
        return self

    def score_samples(self, x):
        rec = self.pca.inverse_transform(self.pca.transform(x))
        return -np.sum((x - rec) ** 2, axis=1)


def detectors(args):
    """name -> unfitted detector with ``fit(x)`` and ``score_samples(x)`` (higher = normal)."""
    vae = VAEAnomalyDetector(latent_dim=args.latent_dim, hidden=(args.hidden, args.hidden),
                             prior=args.prior, likelihood=args.likelihood, epochs=args.epochs,
                             batch_size=32, validation_fraction=0.1, num_samples=args.num_samples,
                             backend=args.backend, seed=args.seed)
    return {"VAE (IWAE log p(x))": vae,
            "IsolationForest": IsolationForest(random_state=args.seed),
            "OneClassSVM": OneClassSVM(gamma="scale", nu=0.1),
            "PCA reconstruction": PCAReconstruction(0.95)}


def run_class(data, k, args):
    """AUROC of each detector with class ``k`` held out; the VAE's test scores."""
    train = data.train.x[data.train.y != k]
    anomaly = data.test.y == k
    aurocs, vae_scores = {}, None
    for name, det in detectors(args).items():
        scores = det.fit(train).score_samples(data.test.x)
        aurocs[name] = roc_auc_score(anomaly, -scores)
        if isinstance(det, VAEAnomalyDetector):
            vae_scores = scores
    return aurocs, vae_scores


def print_table(rows, classes):
    names = list(next(iter(rows.values())))
    width = max(len(n) for n in names) + 2
    print("\nAUROC, test split (anomaly = held-out class, normal = the other classes)")
    print(f"{'held out':<10}" + "".join(f"{n:>{width}}" for n in names))
    for k in classes:
        print(f"{k:<10}" + "".join(f"{rows[k][n]:>{width}.3f}" for n in names))
    means = {n: np.mean([rows[k][n] for k in classes]) for n in names}
    print(f"{'mean':<10}" + "".join(f"{means[n]:>{width}.3f}" for n in names))
    return means


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    d = DEFAULTS
    ap.add_argument("--backend", choices=["numpyro", "pyro"], default=d["backend"])
    ap.add_argument("--epochs", type=int, default=d["epochs"])
    ap.add_argument("--latent-dim", type=int, default=d["latent_dim"])
    ap.add_argument("--hidden", type=int, default=d["hidden"], help="width of both hidden layers")
    ap.add_argument("--prior", default=d["prior"])
    ap.add_argument("--likelihood", default=d["likelihood"])
    ap.add_argument("--num-samples", type=int, default=d["num_samples"],
                    help="importance samples per test digit")
    ap.add_argument("--classes", type=int, nargs="+", default=list(range(10)),
                    help="which classes to hold out in turn")
    ap.add_argument("--seed", type=int, default=d["seed"])
    ap.add_argument("--out", default=None,
                    help="folder for the pictures (default: runs/anomaly_detection/BACKEND, one "
                         "folder per kind of run, so that no run replaces another's)")
    args = ap.parse_args()

    data = pv.data.load("digits", seed=0)
    print(f"{data!r}; backend {args.backend}")
    rows, worst = {}, {}
    t0 = time.perf_counter()
    for k in args.classes:
        t = time.perf_counter()
        rows[k], scores = run_class(data, k, args)
        worst[k] = data.test.x[np.argsort(scores)[:10]]
        print(f"class {k} held out: " + ", ".join(f"{n} {a:.3f}" for n, a in rows[k].items())
              + f"  ({time.perf_counter() - t:.1f} s)", flush=True)
    means = print_table(rows, args.classes)
    best = max(means, key=means.get)
    print(f"best mean AUROC: {best} ({means[best]:.3f}); {time.perf_counter() - t0:.0f} s in all")
    out = Path(args.out or Path("runs", "anomaly_detection", args.backend))
    pv.plots.image_grid(np.concatenate([worst[k] for k in args.classes]), data.image_shape,
                        out / "most_anomalous.png", ncol=10,
                        row_labels=[f"{k} held out" for k in args.classes],
                        title="the 10 test digits with the lowest VAE log p(x)")
    print(f"wrote {out}/most_anomalous.png")


if __name__ == "__main__":
    main()
