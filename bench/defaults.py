"""Defaults that win (issue 36): imputation with library defaults only, beside scikit-learn's
imputers and HyperImpute.

For each table, missing pattern and seed, cells are removed and every imputer fills them:

* tables: breast cancer (569 x 30), wine (178 x 13), penguins (333 x 5 numeric + 3 text),
  digits (1,797 x 64 pixels in [0, 1]), diabetes (442 x 10), iris (150 x 4 + species); all
  ship with scikit-learn or ``palmerpenguins``;
* patterns: 20% and 50% of cells missing completely at random (MCAR), and 30% missing not at
  random (MNAR: a number above its column's median is missing twice as often as one below;
  text cells at random);
* imputers: ``probvae`` as a user calls it, ``pv.impute(x)`` (= ``VAEImputer()`` with its
  defaults: self-tuned latent size and importance samples, MIWAE training), on each backend;
  mean filling; ``KNNImputer``; ``IterativeImputer`` (BayesianRidge); a missForest-style
  ``IterativeImputer(RandomForestRegressor)``; HyperImpute (Jarrett et al. 2022) when a Python
  that has it is given (``--hyperimpute-python``: it needs ``pandas<3`` and brings TensorFlow,
  so it lives in its own environment, see docs/missing.md). The scikit-learn imputers see the
  standardised, one-hot table (bench/tabular.py's ``OneHot``).

Score: RMSE on the removed numeric cells, standardised by each column's sd (lower is better).
The target: probvae lowest in at least two thirds of a table's cells (pattern x seed), and
never worse than mean filling. It prints each cell's line as it goes, then the table of
means, the wins per table and probvae's seconds (its self-tuning included).

    .venv/bin/python bench/defaults.py                                   # all, both backends, 3 seeds
    .venv/bin/python bench/defaults.py --backends numpyro --seeds 0      # one pass (~40 min)
    .venv/bin/python bench/defaults.py --tables wine iris --hyperimpute-python /path/to/python
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import probvae as pv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tabular import (OneHot, categorical_columns, numeric_columns,  # noqa: E402
                     sklearn_imputers)

TABLES = ("breast_cancer", "wine", "penguins", "digits", "diabetes", "iris")
PATTERNS = ("mcar20", "mcar50", "mnar30")

HYPERIMPUTE = r"""
import sys, numpy as np, pandas as pd
from hyperimpute.plugins.imputers import Imputers
x = np.load(sys.argv[1])
out = Imputers().get("hyperimpute", random_state=int(sys.argv[3])).fit_transform(pd.DataFrame(x))
np.save(sys.argv[2], np.asarray(out, dtype=np.float64))
"""


def load(name) -> pd.DataFrame:
    """The table as a DataFrame (numbers, and text or category columns)."""
    from sklearn import datasets
    if name == "penguins":
        from palmerpenguins import load_penguins
        return load_penguins().drop(columns=["year"])
    if name == "digits":
        d = pv.data.load("digits", seed=0)
        x = np.concatenate([d.train.x, d.valid.x, d.test.x])
        return pd.DataFrame(x.astype(np.float64), columns=[f"px{i}" for i in range(64)])
    loader = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
              "diabetes": datasets.load_diabetes, "iris": datasets.load_iris}[name]
    d = loader(as_frame=True)
    df = d.data.copy()
    if name == "iris":
        df["species"] = pd.Categorical.from_codes(d.target, list(d.target_names))
    return df


def remove(df, pattern, seed) -> pd.DataFrame:
    """The cells to remove (a boolean frame) for ``pattern``, among the observed ones."""
    rng = np.random.default_rng([seed, PATTERNS.index(pattern)])
    u = pd.DataFrame(rng.random(df.shape), index=df.index, columns=df.columns)
    if pattern.startswith("mcar"):
        p = pd.DataFrame(int(pattern[4:]) / 100, index=df.index, columns=df.columns)
    else:                          # MNAR 30%: above the median twice as often (0.4 vs 0.2)
        p = pd.DataFrame(0.3, index=df.index, columns=df.columns)
        for c in df.select_dtypes("number").columns:
            high = df[c] > df[c].median()
            p[c] = np.where(high, 0.4, 0.2)
    return df.notna() & (u < p)


def rmse(filled, truth, hidden, num, sd) -> float:
    errs = [((filled.loc[hidden[c], c].astype(float) - truth.loc[hidden[c], c].astype(float))
             / sd[c]).to_numpy() for c in num if hidden[c].any()]
    return float(np.sqrt(np.mean(np.concatenate(errs) ** 2)))


def hyperimpute(python, m, seed):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "x.npy", Path(tmp) / "out.npy"
        np.save(src, m)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run([python, "-c", HYPERIMPUTE, str(src), str(dst), str(seed)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        return np.load(dst)


def run(tables, patterns, seeds, backends, hyper_python):
    results = {}            # (table, pattern, method) -> [(rmse, seconds)]
    for name in tables:
        df = load(name)
        for pattern in patterns:
            for seed in seeds:
                hidden = remove(df, pattern, seed)
                gappy = df.mask(hidden)
                keep = gappy.notna().any(axis=1)             # a row with no cell left goes
                gappy, hid, truth = gappy[keep], hidden[keep], df[keep]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = pv.data.from_frame(gappy, split=False, verbose=False)
                num = numeric_columns(table)
                sd = df[num].astype(float).std()
                line = {}
                for backend in backends:
                    t0 = time.perf_counter()
                    imp = pv.impute.VAEImputer(backend=backend, seed=seed).fit(gappy)
                    filled = imp.transform(gappy)
                    key = f"probvae ({backend})"
                    line[key] = (rmse(filled, truth, hid, num, sd), time.perf_counter() - t0,
                                 imp.tuning_["chosen"])
                oh = OneHot(gappy, table)
                m = oh.encode(gappy)
                imputers = dict(sklearn_imputers(seed))
                for label, imp in imputers.items():
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        out = oh.decode(imp.fit_transform(m), gappy)
                    line[label] = (rmse(out, truth, hid, num, sd), time.perf_counter() - t0)
                if hyper_python:
                    t0 = time.perf_counter()
                    out = oh.decode(hyperimpute(hyper_python, m, seed), gappy)
                    line["HyperImpute"] = (rmse(out, truth, hid, num, sd),
                                           time.perf_counter() - t0)
                for method, v in line.items():
                    results.setdefault((name, pattern, method), []).append(v)
                print(f"  {name} {pattern} seed {seed}: "
                      + ", ".join(f"{k} {v[0]:.3f}" for k, v in line.items())
                      + "; probvae chose " + ", ".join(
                          f"{v[2]} in {v[1]:.0f} s" for k, v in line.items()
                          if k.startswith("probvae")), flush=True)
    return results


def report(results, tables, patterns, backends):
    methods = sorted({k[2] for k in results}, key=lambda m: (not m.startswith("probvae"), m))
    print("\n| table | missing | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for name in tables:
        for pattern in patterns:
            cells = [results.get((name, pattern, m)) for m in methods]
            means = [np.mean([v[0] for v in c]) if c else np.nan for c in cells]
            best = np.nanmin(means)
            print(f"| {name} | {pattern} | " + " | ".join(
                ("**%.3f**" if v == best else "%.3f") % v for v in means) + " |")
    print()
    for backend in backends:
        key = f"probvae ({backend})"
        for name in tables:
            wins = total = worse_than_mean = 0
            for pattern in patterns:
                runs = results[(name, pattern, key)]
                for i, (mine, *_rest) in enumerate(runs):
                    others = [results[(name, pattern, m)][i][0] for m in methods
                              if not m.startswith("probvae")]
                    wins += mine <= min(others)
                    total += 1
                    worse_than_mean += mine > results[(name, pattern, "SimpleImputer")][i][0]
            seconds = np.mean([v[1] for p in patterns for v in results[(name, p, key)]])
            print(f"{key} on {name}: lowest in {wins} of {total} cells (target: two thirds), "
                  f"worse than mean filling in {worse_than_mean}; {seconds:.0f} s a fit "
                  "(tuning included)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tables", nargs="+", default=list(TABLES), choices=TABLES)
    ap.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=PATTERNS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--backends", nargs="+", default=["numpyro", "pyro"],
                    choices=["numpyro", "pyro"])
    ap.add_argument("--hyperimpute-python", default=None, metavar="PYTHON",
                    help="a Python with hyperimpute installed (and pandas<3)")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    results = run(args.tables, args.patterns, args.seeds, args.backends,
                  args.hyperimpute_python)
    report(results, args.tables, args.patterns, args.backends)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"|".join(k): [list(v[:2]) for v in vals] for k, vals in results.items()}))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
