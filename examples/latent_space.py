"""Interpretable latents: 2-D maps of the digits, per-dim traversals, KL and active units.

Two measured comparisons, in one run on the digits:

1. A 2-D latent map. A VAE with a 2-D latent space beside PCA and Isomap (scikit-learn's linear
   and nonlinear maps), each fitted on the training digits and applied to the test digits. Scored
   by how well the map keeps the classes apart without ever seeing a label: 5-nearest-neighbour
   test accuracy (train codes as the reference) and the silhouette of the test codes by label.
2. An 8-D code. A VAE (beta = 1) and a beta-VAE (beta = 2 by default, Higgins et al. 2017, the usual route to
   more interpretable dims) beside PCA with 8 components: KL per latent dim and active units from
   `pv.diagnostics.collapse`, and 5-NN accuracy in the code space.

Pictures in --out: the 2-D map coloured by label, the decoded 2-D manifold, and a traversal of
each 8-D dim (sorted by KL, KL in the row label) for both betas.

    python examples/latent_space.py                  # NumPyro, about a minute
    python examples/latent_space.py --backend pyro
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import Isomap
from sklearn.metrics import silhouette_score
from sklearn.neighbors import KNeighborsClassifier

import probvae as pv


def map_scores(train_codes, test_codes, data):
    """Label-free quality of a map: 5-NN test accuracy and silhouette by label."""
    knn = KNeighborsClassifier(n_neighbors=5).fit(train_codes, data.train.y)
    return {"5-NN accuracy": knn.score(test_codes, data.test.y),
            "silhouette": float(silhouette_score(test_codes, data.test.y))}


def fit_vae(data, latent_dim, args, **objective):
    vae = pv.models.VAE(input_dim=64, latent_dim=latent_dim, hidden=(256, 256), prior="normal",
                        likelihood="continuous_bernoulli", backend=args.backend)
    return pv.fit(vae, data.train, epochs=args.epochs, batch_size=32, seed=args.seed,
                  validation=data.valid, progress=False, **objective)


def two_d(data, args, out):
    res = fit_vae(data, 2, args)
    maps = {"probvae VAE, 2-D latent (posterior means)": (pv.encode(res, data.train),
                                                          pv.encode(res, data.test))}
    for name, method in (("PCA, 2 components", PCA(2)),
                         ("Isomap, 2 components", Isomap(n_components=2, n_neighbors=10))):
        method.fit(data.train.x)
        maps[name] = (method.transform(data.train.x), method.transform(data.test.x))
    print("\n1. 2-D maps of the test digits (fitted without labels)")
    print(f"  {'map':<46}{'5-NN accuracy':>15}{'silhouette':>12}")
    for name, (tr, te) in maps.items():
        s = map_scores(tr, te, data)
        print(f"  {name:<46}{s['5-NN accuracy']:>15.3f}{s['silhouette']:>12.3f}")
    z_test = maps["probvae VAE, 2-D latent (posterior means)"][1]
    pv.plots.latent_scatter(z_test, data.test.y, out / "latent_map.png",
                            title="test digits in the VAE's 2-D latent space")
    lo, hi = np.quantile(maps["probvae VAE, 2-D latent (posterior means)"][0], [0.03, 0.97], axis=0)
    g1, g0 = np.meshgrid(np.linspace(hi[1], lo[1], 12), np.linspace(lo[0], hi[0], 12),
                         indexing="ij")
    grid = pv.decode(res, np.stack([g0.ravel(), g1.ravel()], axis=1))
    pv.plots.image_grid(grid, data.image_shape, out / "manifold.png", ncol=12,
                        title="decoded 2-D latent grid (z[0] across, z[1] down)")


def eight_d(data, args, out):
    rows, kl_table = {}, {}
    pca = PCA(8).fit(data.train.x)
    rows["PCA, 8 components"] = map_scores(pca.transform(data.train.x),
                                           pca.transform(data.test.x), data)
    for beta in (1.0, args.beta):
        res = fit_vae(data, 8, args, objective="beta", beta=beta)
        name = f"probvae VAE, beta = {beta:g}"
        rows[name] = map_scores(pv.encode(res, data.train), pv.encode(res, data.test), data)
        diag = pv.diagnostics.collapse(res, data.test.x, num_samples=100, warn=False)
        kl = diag["kl"].values
        kl_table[name] = (kl, int(diag.attrs["active_units"]))
        order = np.argsort(-kl)
        codes = pv.encode(res, data.train)
        values = np.quantile(codes, np.linspace(0.03, 0.97, 9), axis=0).T[order]
        anchor = data.test.x[np.flatnonzero(data.test.y == 2)[0]]
        grid = pv.traverse(res, x=anchor, dims=order, values=values)
        pv.plots.image_grid(grid.reshape(-1, 64), data.image_shape,
                            out / f"traversal_beta{beta:g}.png", ncol=9,
                            row_labels=[f"z[{d}] KL {kl[d]:.2f}" for d in order],
                            title=f"beta = {beta:g}: each dim, 3% to 97% quantile")
    print("\n2. 8-D codes: KL per latent dim (nats, sorted), active units, 5-NN accuracy")
    for name, (kl, active) in kl_table.items():
        print(f"  {name:<28} KL " + " ".join(f"{v:5.2f}" for v in np.sort(kl)[::-1])
              + f"   total {kl.sum():5.2f}   active units {active}/8")
    print(f"  {'code':<46}{'5-NN accuracy':>15}{'silhouette':>12}")
    for name, s in rows.items():
        print(f"  {name:<46}{s['5-NN accuracy']:>15.3f}{s['silhouette']:>12.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=["numpyro", "pyro"], default="numpyro")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--beta", type=float, default=2.0, help="KL weight of the beta-VAE")
    ap.add_argument("--out", default=None,
                    help="folder for the pictures (default: runs/latent_space/BACKEND, one "
                         "folder per kind of run, so that no run replaces another's)")
    args = ap.parse_args()
    data = pv.data.load("digits", seed=0)
    out = Path(args.out or Path("runs", "latent_space", args.backend))
    t0 = time.perf_counter()
    two_d(data, args, out)
    eight_d(data, args, out)
    print(f"\n{time.perf_counter() - t0:.0f} s ({args.backend}); wrote {out}/latent_map.png, "
          f"{out}/manifold.png, {out}/traversal_beta1.png, {out}/traversal_beta{args.beta:g}.png")


if __name__ == "__main__":
    main()
