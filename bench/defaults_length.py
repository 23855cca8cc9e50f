"""Training length that fits the data (issue 36, point 1): ``pv.fit`` with its defaults only,
before (50 epochs on every row: ``epochs=50, validation=None``, what fit did before) and after
(the epochs from the data's size and, under 20,000 rows, a held-out tenth to stop early on).

``table``
    300 rows of a table with 30% of its cells removed completely at random (breast cancer: a
    300-row subsample of scikit-learn's 569, 30 numeric columns; penguins: 300 of the 333
    complete rows, 3 text and 5 numeric columns; wine: all 178 rows, 13 columns), the model
    ``VAE.for_table(table)`` with its defaults, trained with ``missing="mask"``: the RMSE of
    ``pv.impute`` on the removed numeric cells, standardised by each column's sd, beside
    filling each column with its observed mean.
``digits``
    ``pv.models.VAE(input_dim=64)`` with its defaults on digits' 1,257 training rows: the
    test ELBO and IWAE bound (``pv.evaluate``, 1,000 samples) on the 360 test digits.

Each line gives the epochs chosen, the epochs run, the best epoch kept and the seconds.

Measured (seed 0, 2 shared CPU cores; ``--backends numpyro pyro``):

=================  ==============  ============================  ============================
                   mean-filling    before (50 epochs, all rows)  after (defaults)
=================  ==============  ============================  ============================
breast cancer      0.992           0.767 · 0.762                 0.540 · 0.561 (581 · 540 ep.)
penguins           0.994           0.795 · 0.798                 0.703 · 0.695 (718 · 856 ep.)
wine (178 rows)    1.015           0.928 · 1.001                 0.760 · 0.748 (848 · 756 ep.)
digits test ELBO                   81.39 · 82.58                 91.71 · 92.27 (500 epochs)
digits test IWAE                   82.67 · 83.71                 93.46 · 93.82
=================  ==============  ============================  ============================

(NumPyro · Pyro; imputation RMSE, lower is better; ELBO and IWAE in nats, higher is better.)
The tables chose 1,000 epochs and stopped early on their 30 held-out rows; digits ran its
500. Seconds after: 2-3 (NumPyro) and 6-15 (Pyro) per table, 9 and 22 for digits; before:
0-2. The rule's steps on digits (``--target-steps``, NumPyro): 2,000 steps give ELBO 90.26
(4 s), 4,000 give 91.71 (9 s), 8,000 give 92.28 (15 s). A tenth of the epochs as patience
(``--patience-fraction 0.1``) stopped penguins at 456 epochs (RMSE 0.711; seed 1: 0.645
against 0.616 with a fifth).

    .venv/bin/python bench/defaults_length.py                        # both, NumPyro
    .venv/bin/python bench/defaults_length.py --backends numpyro pyro
    .venv/bin/python bench/defaults_length.py table --target-steps 8000   # try another rule
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import probvae as pv
from probvae.inference import config

#: the runs compared: (name, fit's keyword arguments)
RUNS = (("before: 50 epochs, no validation", {"epochs": 50, "validation": None}),
        ("after: defaults", {}))


def load_table(name: str, seed: int) -> pd.DataFrame:
    """A numeric-only or mixed table of at most 300 complete rows."""
    from sklearn.datasets import load_breast_cancer, load_wine
    if name == "penguins":
        from palmerpenguins import load_penguins
        df = load_penguins().dropna().reset_index(drop=True)
    else:
        df = {"breast_cancer": load_breast_cancer, "wine": load_wine}[name](as_frame=True).data
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(df), min(300, len(df)), replace=False))
    return df.iloc[rows].reset_index(drop=True)


def describe(res, seconds) -> str:
    run = len(res.history["train_loss"])
    best = "" if res.best_epoch is None else f", best epoch {res.best_epoch}"
    held = res.options.get("holdout")
    held = f", {held} rows held out" if held else ""
    return (f"{res.options['epochs']} epochs chosen, {run} run{best}{held}, {res.status}, "
            f"{seconds:.0f} s")


def run_table(name, backend, seed, rate=0.3):
    df = load_table(name, seed)
    rng = np.random.default_rng(1000 + seed)
    hidden = pd.DataFrame(rng.random(df.shape) < rate, index=df.index, columns=df.columns)
    gappy = df.mask(hidden)
    numeric = list(df.select_dtypes("number").columns)
    sd = df[numeric].astype(float).std()

    def rmse(filled):
        err = ((filled[numeric].astype(float) - df[numeric].astype(float)) / sd).to_numpy()
        return float(np.sqrt(np.mean(err[hidden[numeric].to_numpy()] ** 2)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = pv.data.from_frame(gappy, split=False, verbose=False)
    out = {"mean-filling": rmse(gappy[numeric].fillna(gappy[numeric].mean()))}
    print(f"{name} ({len(df)} rows, {rate:.0%} missing), seed {seed}: mean-filling RMSE "
          f"{out['mean-filling']:.3f}", flush=True)
    for label, kw in RUNS:
        vae = pv.models.VAE.for_table(table, backend=backend)
        t0 = time.perf_counter()
        res = pv.fit(vae, table.train, missing="mask", seed=seed, progress=False, **kw)
        seconds = time.perf_counter() - t0
        out[label] = rmse(pv.impute(res, gappy, seed=seed))
        print(f"  {backend:7s} {label:34s} RMSE {out[label]:.3f}   ({describe(res, seconds)})",
              flush=True)
    return out


def run_digits(backend, seed):
    data = pv.data.load("digits", seed=0)
    out = {}
    print(f"digits ({len(data.train)} training rows), seed {seed}: test ELBO and IWAE "
          "(1000 samples), higher is better", flush=True)
    for label, kw in RUNS:
        vae = pv.models.VAE(input_dim=64, backend=backend)
        t0 = time.perf_counter()
        res = pv.fit(vae, data.train, seed=seed, progress=False, **kw)
        seconds = time.perf_counter() - t0
        scores = pv.evaluate(res, data.test, num_samples=1000, seed=0)
        out[label] = (scores["elbo"], scores["log_likelihood"])
        print(f"  {backend:7s} {label:34s} ELBO {scores['elbo']:8.2f}  IWAE "
              f"{scores['log_likelihood']:8.2f}   ({describe(res, seconds)})", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="*", default=["table", "digits"],
                    help="table and/or digits (default: both)")
    ap.add_argument("--backends", nargs="+", default=["numpyro"])
    ap.add_argument("--tables", nargs="+", default=["breast_cancer", "penguins", "wine"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--target-steps", type=int, default=config.TARGET_STEPS,
                    help="the rule's steps (probvae.inference.config.TARGET_STEPS)")
    ap.add_argument("--max-epochs", type=int, default=config.MAX_EPOCHS,
                    help="the rule's ceiling (probvae.inference.config.MAX_EPOCHS)")
    ap.add_argument("--patience-fraction", type=float, default=config.PATIENCE_FRACTION,
                    help="the rule's patience (probvae.inference.config.PATIENCE_FRACTION)")
    args = ap.parse_args(argv)
    if set(args.what) - {"table", "digits"}:
        ap.error(f"what: table and/or digits, got {args.what}")
    config.TARGET_STEPS, config.MAX_EPOCHS = args.target_steps, args.max_epochs
    config.PATIENCE_FRACTION = args.patience_fraction
    print(f"rule: {config.TARGET_STEPS} steps, {config.MIN_EPOCHS}..{config.MAX_EPOCHS} epochs, "
          f"patience {config.PATIENCE_FRACTION:g} of them; "
          f"held out: {config.HOLDOUT_FRACTION:.0%} (at least {config.HOLDOUT_MIN_ROWS} rows) "
          f"under {config.HOLDOUT_BELOW:,} rows", flush=True)
    for backend in args.backends:
        for seed in args.seeds:
            if "table" in args.what:
                for name in args.tables:
                    run_table(name, backend, seed)
            if "digits" in args.what:
                run_digits(backend, seed)


if __name__ == "__main__":
    main()
