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

Anomalies (the ``anomaly`` part): on the five tables with classes (diabetes has none), each
class in turn is the normal data: 70% of its rows train the detector, the other 30% and every
row of the other classes are scored. ``pv.anomaly.VAEAnomalyDetector()`` with its defaults takes
the rows as a user has them (penguins with its text columns and gaps); IsolationForest, LOF
(novelty), OneClassSVM, PCA reconstruction error and ECOD (PyOD; the bench extra installs it)
take the standardised one-hot rows, gaps mean-filled. AUROC, higher is better; the target: best
or within 0.01 of the best on each table's mean.

    .venv/bin/python bench/defaults.py                                   # all, both backends, 3 seeds
    .venv/bin/python bench/defaults.py anomaly --seeds 0 1 2             # anomalies only (~10 min)
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
                    try:
                        out = oh.decode(hyperimpute(hyper_python, m, seed), gappy)
                        score = rmse(out, truth, hid, num, sd)
                    except RuntimeError as err:     # its own failure: the cell goes without it
                        score = float("nan")
                        print(f"  HyperImpute failed on {name} {pattern} seed {seed}: "
                              f"{str(err).strip().splitlines()[-1]}", flush=True)
                    line["HyperImpute"] = (score, time.perf_counter() - t0)
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
            means = [np.mean(kept) if (kept := [v[0] for v in c or () if v[0] == v[0]])
                     else np.nan for c in cells]          # a failed run (NaN) left out
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
                              if not m.startswith("probvae")
                              and results[(name, pattern, m)][i][0] == results[
                                  (name, pattern, m)][i][0]]          # not a failed run
                    wins += mine <= min(others)
                    total += 1
                    worse_than_mean += mine > results[(name, pattern, "SimpleImputer")][i][0]
            seconds = np.mean([v[1] for p in patterns for v in results[(name, p, key)]])
            print(f"{key} on {name}: lowest in {wins} of {total} cells (target: two thirds), "
                  f"worse than mean filling in {worse_than_mean}; {seconds:.0f} s a fit "
                  "(tuning included)")


# ----------------------------------------------------------------------------- anomalies
#: the tables with classes (diabetes has none): each class in turn is the normal data
ANOMALY_TABLES = ("breast_cancer", "wine", "penguins", "digits", "iris")


def classes(name):
    """(features as a user has them, class labels) for a table with classes."""
    from sklearn import datasets
    if name == "penguins":
        df = load(name)
        return df.drop(columns=["species"]), df["species"].astype(str).to_numpy()
    if name == "digits":
        d = pv.data.load("digits", seed=0)
        return load(name), np.concatenate([d.train.y, d.valid.y, d.test.y])
    loader = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
              "iris": datasets.load_iris}[name]
    d = loader(as_frame=True)
    return d.data.copy(), np.asarray(d.target)


def other_detectors(seed):
    """name -> (fit on a, score b: higher = more anomalous), on the standardised one-hot rows."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.svm import OneClassSVM

    def pca(a, b):
        m = PCA(n_components=min(a.shape[1] - 1, max(1, a.shape[1] // 3)),
                random_state=seed).fit(a)
        return ((b - m.inverse_transform(m.transform(b))) ** 2).sum(axis=1)
    out = {
        "IsolationForest": lambda a, b: -IsolationForest(random_state=seed).fit(a)
        .score_samples(b),
        "LOF": lambda a, b: -LocalOutlierFactor(n_neighbors=min(20, len(a) - 1),
                                                novelty=True).fit(a).score_samples(b),
        "OneClassSVM": lambda a, b: -OneClassSVM(gamma="scale").fit(a).score_samples(b),
        "PCA": pca,
    }
    try:
        from pyod.models.ecod import ECOD
        out["ECOD"] = lambda a, b: ECOD().fit(a).decision_function(b)
    except ImportError:
        print("pyod is not installed (pip install -e '.[bench]'): ECOD is left out", flush=True)
    return out


def run_anomaly(tables, seeds, backends):
    """AUROC per (table, detector): a list over classes x seeds."""
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    results = {}            # (table, method) -> [(auroc, seconds)]
    for name in tables:
        features, y = classes(name)
        for cls in pd.unique(y):
            normal, others = features[y == cls], features[y != cls]
            for seed in seeds:
                train, test_normal = train_test_split(normal, test_size=0.3, random_state=seed)
                test = pd.concat([test_normal, others])
                truth = np.r_[np.zeros(len(test_normal)), np.ones(len(others))]
                line = {}
                for backend in backends:
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        det = pv.anomaly.VAEAnomalyDetector(backend=backend, seed=seed)
                        score = -det.fit(train).score_samples(test)
                    score = np.nan_to_num(score, posinf=np.finfo(float).max)
                    line[f"probvae ({backend})"] = (roc_auc_score(truth, score),
                                                    time.perf_counter() - t0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = pv.data.from_frame(train, split=False, verbose=False)
                    oh = OneHot(train, table)
                    fill = SimpleImputer(keep_empty_features=True).fit(oh.encode(train))
                    a = np.nan_to_num(fill.transform(oh.encode(train)))
                    b = np.nan_to_num(fill.transform(oh.encode(test)))
                    for label, detector in other_detectors(seed).items():
                        t0 = time.perf_counter()
                        line[label] = (roc_auc_score(truth, detector(a, b)),
                                       time.perf_counter() - t0)
                for method, v in line.items():
                    results.setdefault((name, method), []).append(v)
                print(f"  anomaly {name} normal={cls} seed {seed}: "
                      + ", ".join(f"{k} {v[0]:.3f}" for k, v in line.items()), flush=True)
    return results


def report_anomaly(results, tables, backends):
    methods = sorted({k[1] for k in results}, key=lambda m: (not m.startswith("probvae"), m))
    print("\nAnomaly detection: AUROC, each class in turn the normal data (mean over classes "
          "and seeds; higher is better)\n")
    print("| table | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    means = {}
    for name in tables:
        row = [np.mean([v[0] for v in results[(name, m)]]) for m in methods]
        means[name] = dict(zip(methods, row))
        print(f"| {name} | " + " | ".join(("**%.3f**" if v == max(row) else "%.3f") % v
                                          for v in row) + " |")
    row = [np.mean([means[n][m] for n in tables]) for m in methods]
    print("| mean | " + " | ".join(("**%.3f**" if v == max(row) else "%.3f") % v
                                    for v in row) + " |")
    print()
    for backend in backends:
        key = f"probvae ({backend})"
        ok = [n for n in tables if means[n][key] >= max(
            v for m, v in means[n].items() if not m.startswith("probvae")) - 0.01]
        seconds = np.mean([v[1] for n in tables for v in results[(n, key)]])
        print(f"{key}: best or within 0.01 of the best other detector on {len(ok)} of "
              f"{len(tables)} tables ({', '.join(ok) or 'none'}); {seconds:.1f} s a fit")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("parts", nargs="*", default=["impute", "anomaly"],
                    choices=["impute", "anomaly"], help="what to measure (default: both)")
    ap.add_argument("--tables", nargs="+", default=None, choices=TABLES,
                    help="default: all six for impute, the five with classes for anomaly")
    ap.add_argument("--patterns", nargs="+", default=list(PATTERNS), choices=PATTERNS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--backends", nargs="+", default=["numpyro", "pyro"],
                    choices=["numpyro", "pyro"])
    ap.add_argument("--hyperimpute-python", default=None, metavar="PYTHON",
                    help="a Python with hyperimpute installed (and pandas<3)")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    raw = {}
    if "impute" in args.parts:
        tables = args.tables or list(TABLES)
        results = run(tables, args.patterns, args.seeds, args.backends,
                      args.hyperimpute_python)
        report(results, tables, args.patterns, args.backends)
        raw.update({"impute|" + "|".join(k): [list(v[:2]) for v in vals]
                    for k, vals in results.items()})
    if "anomaly" in args.parts:
        tables = [t for t in (args.tables or ANOMALY_TABLES) if t in ANOMALY_TABLES]
        results = run_anomaly(tables, args.seeds, args.backends)
        report_anomaly(results, tables, args.backends)
        raw.update({"anomaly|" + "|".join(k): [list(v) for v in vals]
                    for k, vals in results.items()})
    if args.json:
        Path(args.json).write_text(json.dumps(raw))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
