"""A table with text, numbers and gaps: the penguins, imputed, synthesised and screened.

The ``palmerpenguins`` table (344 rows: species, island and sex as text, four measurements and
the year as numbers, NaN in five columns) goes to probvae as it is:

  1. ``pv.data.from_frame`` infers each column's kind (override with ``kinds=``) and splits
     the rows; ``VAE.for_table`` builds a VAE whose likelihood is one per column (Gaussian
     on standardised measurements, Bernoulli for sex, categorical for species and island);
  2. it trains with ``missing="mask"``: the table's own gaps are left out of the bound, no
     row is dropped;
  3. **imputation**: 20% of the test split's observed cells are hidden, ``pv.impute`` fills
     them (observed cells come back unchanged), scored beside scikit-learn's imputers;
  4. **synthesis**: ``pv.synthesize`` draws new rows with the same columns, dtypes and
     levels; their class balance and per-species means are printed beside the real ones;
  5. **anomaly detection**: ``VAEAnomalyDetector`` takes the DataFrame with its gaps; fitted
     on Adelie and Gentoo penguins, it scores the test split, Chinstraps being the anomalies.

    python examples/tabular.py                          # NumPyro (about 20 seconds)
    python examples/tabular.py --backend pyro --epochs 100
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.metrics import roc_auc_score

import probvae as pv

MEASURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def load():
    try:
        from palmerpenguins import load_penguins
    except ImportError:
        raise SystemExit("this example needs the palmerpenguins package: "
                         "pip install palmerpenguins (it ships its CSV, no download)")
    return load_penguins()


def hide(df, rate, seed):
    """df with ``rate`` of its observed cells hidden, and the mask of hidden cells."""
    rng = np.random.default_rng(seed)
    hidden = df.notna() & (rng.random(df.shape) < rate)
    return df.mask(hidden), hidden


def design(frame, train):
    """The matrix scikit-learn's imputers take: numbers standardised by the training rows,
    text one-hot (a missing text cell: NaN in all its columns)."""
    numbers = MEASURES + ["year"]
    parts = [((frame[numbers] - train[numbers].mean()) / train[numbers].std()).to_numpy(float)]
    for col in ["species", "island", "sex"]:
        levels = sorted(train[col].dropna().unique())
        block = np.stack([(frame[col] == lv).to_numpy(float) for lv in levels], axis=1)
        block[frame[col].isna().to_numpy()] = np.nan
        parts.append(block)
    return np.concatenate(parts, axis=1)


def sklearn_imputers(gappy, train):
    """scikit-learn's imputers, fitted on the training rows and the gappy test rows together
    (every column given to them, text one-hot); the measurements they return."""
    mu, sd = train[MEASURES].mean(), train[MEASURES].std()
    out = {}
    for name, imp in [("SimpleImputer (mean)", SimpleImputer()), ("KNNImputer", KNNImputer()),
                      ("IterativeImputer", IterativeImputer(random_state=0))]:
        imp.fit(np.concatenate([design(train, train), design(gappy, train)]))
        z = imp.transform(design(gappy, train))[:, :len(MEASURES)]
        out[name] = pd.DataFrame(z, index=gappy.index, columns=MEASURES) * sd + mu
    return out


def rmse(filled, truth, hidden, sd):
    err = [((filled.loc[hidden[c], c] - truth.loc[hidden[c], c]) / sd[c]).to_numpy(float)
           for c in MEASURES]
    return float(np.sqrt(np.mean(np.concatenate(err) ** 2)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="numpyro", choices=["numpyro", "pyro"])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    df = load()
    table = pv.data.from_frame(df, seed=args.seed, stratify="species")   # prints column kinds
    print(f"rows: {len(table.train)} train, {len(table.valid)} valid, {len(table.test)} test; "
          f"missing cells: {int(df.isna().sum().sum())}")

    vae = pv.models.VAE.for_table(table, latent_dim=4, hidden=(128, 128), backend=args.backend)
    res = pv.fit(vae, table.train, validation=table.valid, missing="mask", epochs=args.epochs,
                 objective="iwae", num_particles=8, batch_size=32, seed=args.seed,
                 progress=False)
    print(f"trained {len(res.history['train_loss'])} epochs on {args.backend} in "
          f"{time.perf_counter() - t0:.0f} s (best validation epoch {res.best_epoch})")

    # ---- imputation: hide 20% of the test split's observed cells
    test = table.frames["test"]
    gappy, hidden = hide(test, 0.2, args.seed)
    filled = pv.impute(res, gappy, num_samples=200, seed=args.seed)
    observed = gappy.notna()
    for c in df.columns:       # observed cells come back unchanged
        kept = filled.loc[observed[c], c].astype(object) == gappy.loc[observed[c], c].astype(object)
        assert kept.all(), f"column {c}: an observed cell changed"
    sd = table.frames["train"][MEASURES].std()
    truth = test.loc[hidden["species"], "species"]
    most = table.frames["train"]["species"].mode()[0]
    accuracy = {"pv.impute": float((filled.loc[hidden["species"], "species"] == truth).mean()),
                "SimpleImputer (mean)": float((truth == most).mean())}   # most frequent level
    rows = [("pv.impute", rmse(filled, test, hidden, sd))]
    for name, out in sklearn_imputers(gappy, table.frames["train"]).items():
        rows.append((name, rmse(out, test, hidden, sd)))
    print(f"\nImputation: 20% of the test split's cells hidden ({int(hidden.to_numpy().sum())} "
          "cells)\n")
    print(f"{'method':<22} {'RMSE (measurements, sd units)':>30} {'species accuracy':>17}")
    for name, r in rows:
        acc = f"{accuracy[name]:.3f}" if name in accuracy else "-"
        print(f"{name:<22} {r:>30.3f} {acc:>17}")

    # ---- synthesis
    syn = pv.synthesize(res, 1000, seed=args.seed)
    print("\nSynthesis: 1000 rows drawn; dtypes kept:",
          all(syn[c].dtype == df[c].dtype for c in df.columns))
    real = df.groupby("species", observed=True)[MEASURES].mean()
    fake = syn.groupby("species", observed=True)[MEASURES].mean()
    share = pd.concat({"real": df["species"].value_counts(normalize=True),
                       "synthetic": syn["species"].value_counts(normalize=True)}, axis=1)
    print("\nspecies share\n" + share.round(3).to_string())
    print("\nmean measurements per species (real / synthetic)\n"
          + pd.concat({"real": real, "synthetic": fake}).round(1).to_string())

    # ---- anomaly detection: Chinstraps are the anomalies
    features = df.drop(columns=["species"])
    normal = table.frames["train"]["species"] != "Chinstrap"
    det = pv.anomaly.VAEAnomalyDetector(latent_dim=4, epochs=args.epochs, batch_size=32,
                                        backend=args.backend, seed=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # sex has gaps: that is fine here
        det.fit(features.loc[table.frames["train"].index[normal]])
    scores = det.score_samples(features.loc[test.index])
    auroc = roc_auc_score(test["species"] == "Chinstrap", -scores)
    print(f"\nAnomaly detection (trained on Adelie and Gentoo, DataFrame with gaps as it is): "
          f"AUROC for Chinstraps {auroc:.3f}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
