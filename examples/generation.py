"""Generation: samples, interpolations and latent traversals, measured against classical generators.

Trains a VAE on the digits, writes three pictures to --out (samples, interpolations between test
digits, a traversal of each latent dim), and prints one table comparing 1000 samples from the
VAE with 1000 samples from the generative models a user would otherwise pick in scikit-learn:
a Gaussian mixture on the pixels and probabilistic PCA (factor analysis with the same number of
latent dims). The validation digits, scored like a generator, show what real new data gets. All figures come
from this run; samples are the decoder's means E[x|z] (the usual picture) and, as a second row,
draws from p(x|z).

How samples are scored (no downloaded networks; a digit classifier is trained here on the
training digits, 97% test accuracy):

  * digit score: exp(E_x KL(p(y|x) || p(y))) from that classifier, the Inception score's idea on
    digits. High when each sample is clearly one digit and all ten digits appear (max 10).
  * confidence: mean max-probability the classifier gives a sample.
  * Frechet distance: between Gaussians fitted to the classifier's hidden features of the samples
    and of the test digits (FID's idea). Lower is closer to real digits.
  * nn distance ratio: mean distance from a sample to its nearest training digit, divided by the
    same for test digits. Near 1: as close to the training set as new real data; far below 1:
    copying training examples; far above: off the data.

    python examples/generation.py                    # NumPyro, about half a minute
    python examples/generation.py --backend pyro --prior normal
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import linalg
from sklearn.decomposition import FactorAnalysis
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from sklearn.neural_network import MLPClassifier

import probvae as pv

DEFAULTS = dict(backend="numpyro", prior="vamp", likelihood="continuous_bernoulli", latent_dim=8,
                hidden=256, epochs=100, batch_size=32, lr=1e-3, seed=0, n=1000)


class SampleScorer:
    """Scores for sets of generated digits, from a classifier trained on the real training set."""

    def __init__(self, x_train, y_train, seed=0):
        self.clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=500, random_state=seed)
        self.clf.fit(x_train, y_train)
        self.nn = NearestNeighbors(n_neighbors=1).fit(x_train)

    def features(self, x):
        return np.maximum(x @ self.clf.coefs_[0] + self.clf.intercepts_[0], 0)

    def score(self, x, x_ref):
        x = np.clip(x, 0, 1)
        p = self.clf.predict_proba(x)
        marginal = p.mean(0, keepdims=True)
        kl = (p * (np.log(p + 1e-12) - np.log(marginal + 1e-12))).sum(1)
        return {"digit score": float(np.exp(kl.mean())),
                "confidence": float(p.max(1).mean()),
                "Frechet distance": frechet(self.features(x), self.features(x_ref)),
                "nn distance ratio": float(self.nn.kneighbors(x)[0].mean()
                                           / self.nn.kneighbors(x_ref)[0].mean())}


def frechet(a, b):
    """Frechet distance between Gaussians fitted to two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    eps = 1e-6 * np.eye(a.shape[1])                 # dead ReLU units make the covariances singular
    cov_a, cov_b = np.cov(a, rowvar=False) + eps, np.cov(b, rowvar=False) + eps
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def classical_samples(x_train, n, latent_dim, seed):
    """Samples from scikit-learn's generators, fitted to the training digits."""
    gmm = GaussianMixture(n_components=10, covariance_type="full", reg_covar=1e-3,
                          random_state=seed).fit(x_train)
    fa = FactorAnalysis(n_components=latent_dim, random_state=seed).fit(x_train)
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, latent_dim))
    x_fa = z @ fa.components_ + fa.mean_ + rng.normal(size=(n, x_train.shape[1])) * np.sqrt(
        fa.noise_variance_)
    return {"Gaussian mixture, 10 full-cov components": gmm.sample(n)[0],
            f"probabilistic PCA (factor analysis, {latent_dim} dims)": x_fa}


def pictures(res, data, out: Path, seed):
    """Samples, interpolations between pairs of test digits, and a traversal of every dim."""
    shape = data.image_shape
    pv.plots.image_grid(pv.sample(res, n=64, seed=seed), shape, out / "samples.png", ncol=16,
                        title="VAE samples (decoder means)")
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    x, y = data.test.x, data.test.y
    first = {c: np.flatnonzero(y == c)[0] for c in range(10)}
    rows = [pv.interpolate(res, x[first[a]], x[first[b]], steps=10) for a, b in pairs]
    pv.plots.image_grid(np.concatenate(rows), shape, out / "interpolation.png", ncol=10,
                        row_labels=[f"{a} to {b}" for a, b in pairs],
                        title="interpolating between test digits")
    codes = pv.encode(res, data.train.x)
    values = np.quantile(codes, np.linspace(0.03, 0.97, 9), axis=0).T   # (latent_dim, 9)
    grid = pv.traverse(res, x=x[first[3]], values=values)
    pv.plots.image_grid(grid.reshape(-1, grid.shape[-1]), shape, out / "traversal.png", ncol=9,
                        row_labels=[f"z[{d}]" for d in range(len(grid))],
                        title="each latent dim from its 3% to 97% quantile")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    d = DEFAULTS
    ap.add_argument("--backend", choices=["numpyro", "pyro"], default=d["backend"])
    ap.add_argument("--prior", default=d["prior"])
    ap.add_argument("--likelihood", default=d["likelihood"])
    ap.add_argument("--latent-dim", type=int, default=d["latent_dim"])
    ap.add_argument("--hidden", type=int, default=d["hidden"])
    ap.add_argument("--epochs", type=int, default=d["epochs"])
    ap.add_argument("--n", type=int, default=d["n"], help="samples per generator")
    ap.add_argument("--seed", type=int, default=d["seed"])
    ap.add_argument("--out", default=None,
                    help="folder for the pictures (default: runs/generation/BACKEND, one "
                         "folder per kind of run, so that no run replaces another's)")
    args = ap.parse_args()

    data = pv.data.load("digits", seed=0)
    vae = pv.models.VAE(input_dim=64, latent_dim=args.latent_dim,
                        hidden=(args.hidden, args.hidden), prior=args.prior,
                        likelihood=args.likelihood, backend=args.backend)
    t0 = time.perf_counter()
    res = pv.fit(vae, data.train, epochs=args.epochs, batch_size=d["batch_size"], lr=d["lr"],
                 seed=args.seed, validation=data.valid)
    print(f"VAE ({args.prior} prior, {args.likelihood}, {args.backend}): trained in "
          f"{time.perf_counter() - t0:.1f} s")
    scorer = SampleScorer(data.train.x, data.train.y, seed=args.seed)
    print(f"digit classifier for scoring: test accuracy {scorer.clf.score(data.test.x, data.test.y):.3f}")
    ref = data.test.x
    name = f"probvae VAE ({args.prior} prior, {args.latent_dim} dims)"
    rows = {"validation digits (real data, the floor)": data.valid.x,
            f"{name}, means": pv.sample(res, n=args.n, seed=args.seed),
            f"{name}, draws": pv.sample(res, n=args.n, seed=args.seed, mean=False)}
    rows.update(classical_samples(data.train.x, args.n, args.latent_dim, args.seed))
    cols = ["digit score", "confidence", "Frechet distance", "nn distance ratio"]
    print(f"\n{args.n} samples per generator, scored against the {len(ref)} test digits "
          "(digit score and confidence: higher is better; Frechet: lower; nn ratio: near 1)")
    print(f"  {'generator':<52}" + "".join(f"{c:>18}" for c in cols))
    for name, x in rows.items():
        s = scorer.score(x, ref)
        print(f"  {name:<52}" + "".join(f"{s[c]:>18.3f}" for c in cols))
    out = Path(args.out or Path("runs", "generation", args.backend))
    pictures(res, data, out, args.seed)
    print(f"wrote {out}/samples.png, {out}/interpolation.png, {out}/traversal.png")


if __name__ == "__main__":
    main()
