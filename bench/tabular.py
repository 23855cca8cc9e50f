"""Tables: imputation, synthesis and anomaly detection, beside scikit-learn and CTGAN's TVAE.

Three tables that need no download: scikit-learn's breast cancer (30 numeric columns + the
binary diagnosis) and wine (13 numeric columns + the class), and the penguins of the
``palmerpenguins`` package (3 text columns, 5 numeric, NaN in 5 columns). Every figure is the
mean ± sd over seeds (default 3), for each backend asked for, in one run:

``impute``
    20% and 50% of cells removed completely at random (on top of the penguins' own gaps).
    RMSE on the removed numeric cells (standardised by the column's sd) and accuracy on the
    removed categorical cells, for ``pv.impute`` (a ``VAE.for_table`` fitted on the gappy
    table with ``missing="mask"``) beside SimpleImputer (mean / most frequent), KNNImputer,
    IterativeImputer (BayesianRidge) and IterativeImputer(RandomForestRegressor), the last
    four on the standardised, one-hot table (a categorical cell takes its largest imputed
    one-hot value). Breast cancer is imputed without its diagnosis column, as in the
    reference figures of the issue.
``synth``
    Each table split 70/30 (stratified by its class). probvae trains on the training rows
    *with* their gaps, TVAE (``ctgan``, default 300 epochs) on the rows without gaps (it
    needs them dropped). As many rows as the training split are drawn from each and scored
    against the training rows by sdmetrics' QualityReport (overall, Column Shapes, Column
    Pair Trends), and by machine-learning efficacy: a logistic regression trained on the
    synthetic rows, tested on the held-out real rows (beside the same trained on real rows).
``anomaly``
    Wine and penguins: each class in turn is the normal data (70% to train, 30% to test), the
    other classes are the anomalies. AUROC of ``VAEAnomalyDetector`` (DataFrames with gaps
    as they are) beside IsolationForest, OneClassSVM, LocalOutlierFactor(novelty=True) and
    PCA reconstruction error (those on the standardised, one-hot, mean-filled table).

    pip install -e ".[bench]"                             # palmerpenguins, ctgan, sdmetrics
    .venv/bin/python bench/tabular.py                     # all three, both backends, 3 seeds
    .venv/bin/python bench/tabular.py impute --backends numpyro --seeds 1
    .venv/bin/python bench/tabular.py --quick             # a smoke run: 1 seed, few epochs
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import probvae as pv

#: probvae's settings for every table (chosen once, on breast cancer at 20%, seed 0)
VAE_SETTINGS = dict(latent_dim=8, hidden=(128, 128))
FIT = dict(objective="iwae", num_particles=8, batch_size=32, lr=1e-3)
#: training steps per fit (epochs = STEPS / batches per epoch), so small tables are not undertrained
STEPS = 6000
MAX_EPOCHS = 600


# ----------------------------------------------------------------------------- the tables
def load(name):
    """(frame, class column) for a table name."""
    from sklearn.datasets import load_breast_cancer, load_wine
    if name == "penguins":
        from palmerpenguins import load_penguins
        return load_penguins(), "species"
    loader = {"breast_cancer": load_breast_cancer, "wine": load_wine}[name]
    d = loader(as_frame=True)
    df = d.data.copy()
    if name == "breast_cancer":
        df["diagnosis"] = pd.Categorical.from_codes(d.target, ["malignant", "benign"])
        return df, "diagnosis"
    df["class"] = pd.Categorical.from_codes(d.target, ["class_0", "class_1", "class_2"])
    return df, "class"


def numeric_columns(table):
    return [c.name for c in table.columns if c.kind in ("real", "positive", "count")]


def categorical_columns(table):
    return [c.name for c in table.columns if c.kind in ("binary", "categorical")]


class OneHot:
    """The standardised, one-hot matrix that scikit-learn's imputers and detectors take."""

    def __init__(self, df, table):
        self.num = numeric_columns(table)
        self.cat = {c.name: list(c.levels) for c in table.columns
                    if c.kind in ("binary", "categorical")}
        self.mean = df[self.num].astype(float).mean()
        self.sd = df[self.num].astype(float).std()

    def encode(self, df):
        parts = [((df[self.num].astype(float) - self.mean) / self.sd).to_numpy()]
        for name, levels in self.cat.items():
            col = df[name].astype(object)
            block = np.stack([(col == lv).to_numpy(float) for lv in levels], axis=1)
            block[col.isna().to_numpy()] = np.nan
            parts.append(block)
        return np.concatenate(parts, axis=1)

    def decode(self, m, like):
        out = like.copy()
        k = len(self.num)
        out[self.num] = m[:, :k] * self.sd.to_numpy() + self.mean.to_numpy()
        for name, levels in self.cat.items():
            block = m[:, k:k + len(levels)]
            out[name] = pd.Series(np.asarray(levels, dtype=object)[block.argmax(axis=1)],
                                  index=like.index).astype(like[name].dtype)
            k += len(levels)
        return out


def epochs_for(n_rows, quick):
    if quick:
        return 20
    batches = max(1, int(np.ceil(n_rows / FIT["batch_size"])))
    return int(min(MAX_EPOCHS, max(50, STEPS // batches)))


def fit_vae(table, backend, seed, quick, validation=None):
    vae = pv.models.VAE.for_table(table, backend=backend, **VAE_SETTINGS)
    return pv.fit(vae, table.train, missing="mask", epochs=epochs_for(len(table.train), quick),
                  seed=seed, progress=False, **FIT)


def mean_sd(values):
    v = np.asarray(values, float)
    return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def print_table(title, header, rows):
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print(flush=True)


# ----------------------------------------------------------------------------- imputation
def sklearn_imputers(seed):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
    return {
        "SimpleImputer": SimpleImputer(strategy="mean"),
        "KNNImputer": KNNImputer(),
        "IterativeImputer": IterativeImputer(max_iter=10, random_state=seed),
        "IterativeImputer(RF)": IterativeImputer(
            estimator=RandomForestRegressor(n_estimators=50, n_jobs=1, random_state=seed),
            max_iter=5, random_state=seed),
    }


def impute_scores(filled, truth, hidden, num, cat, sd):
    """(RMSE on standardised hidden numeric cells, accuracy on hidden categorical cells)."""
    errs = []
    for c in num:
        h = hidden[c]
        if h.any():
            errs.append(((filled.loc[h, c].astype(float) - truth.loc[h, c].astype(float))
                         / sd[c]).to_numpy())
    rmse = float(np.sqrt(np.mean(np.concatenate(errs) ** 2)))
    hits = [(filled.loc[hidden[c], c].astype(str) == truth.loc[hidden[c], c].astype(str))
            .to_numpy() for c in cat if hidden[c].any()]
    acc = float(np.mean(np.concatenate(hits))) if hits else float("nan")
    return rmse, acc


def run_impute(backends, seeds, quick, tables=("breast_cancer", "wine", "penguins"),
               rates=(0.2, 0.5)):
    results = {}     # (table, rate, method) -> list of (rmse, acc)
    for name in tables:
        df, target = load(name)
        if name == "breast_cancer":
            df = df.drop(columns=[target])
        for rate in rates:
            for seed in seeds:
                rng = np.random.default_rng(1000 + seed)
                observed = df.notna()
                hidden = observed & pd.DataFrame(rng.random(df.shape) < rate, index=df.index,
                                                 columns=df.columns)
                gappy = df.mask(hidden)
                gappy = gappy[gappy.notna().any(axis=1)]         # a row with no cell left goes
                hid = hidden.loc[gappy.index]
                truth = df.loc[gappy.index]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = pv.data.from_frame(gappy, split=False, verbose=False)
                num, cat = numeric_columns(table), categorical_columns(table)
                sd = df[num].astype(float).std()
                for backend in backends:
                    t0 = time.perf_counter()
                    res = fit_vae(table, backend, seed, quick)
                    filled = pv.impute(res, gappy, num_samples=20 if quick else 200, seed=seed)
                    results.setdefault((name, rate, f"probvae ({backend})"), []).append(
                        (*impute_scores(filled, truth, hid, num, cat, sd),
                         time.perf_counter() - t0))
                oh = OneHot(gappy, table)
                m = oh.encode(gappy)
                for label, imp in sklearn_imputers(seed).items():
                    if quick and label == "IterativeImputer(RF)":
                        continue
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        out = oh.decode(imp.fit_transform(m), gappy)
                    results.setdefault((name, rate, label), []).append(
                        (*impute_scores(out, truth, hid, num, cat, sd),
                         time.perf_counter() - t0))
                print(f"  impute {name} {rate:.0%} seed {seed}: "
                      + ", ".join(f"{k[2]} {v[-1][0]:.3f}" for k, v in results.items()
                                  if k[:2] == (name, rate)), flush=True)
    rows = []
    for (name, rate, method), vals in results.items():
        v = np.asarray(vals)
        acc = mean_sd(v[:, 1]) if not np.isnan(v[:, 1]).all() else "-"
        rows.append([name, f"{rate:.0%}", method, mean_sd(v[:, 0]), acc, f"{v[:, 2].mean():.0f}"])
    print_table("Imputation: RMSE on removed numeric cells (standardised; lower is better), "
                "accuracy on removed categorical cells",
                ["table", "missing", "method", "RMSE", "accuracy", "seconds"], rows)
    for name in tables:
        for rate in rates:
            best = min(((np.mean([r[0] for r in v]), k[2]) for k, v in results.items()
                        if k[:2] == (name, rate)))
            print(f"lowest RMSE, {name} at {rate:.0%}: {best[1]} ({best[0]:.3f})")
    return results


# ----------------------------------------------------------------------------- synthesis
def metadata(df, table):
    cols = {}
    for c in table.columns:
        cols[c.name] = {"sdtype": "numerical" if c.kind in ("real", "positive", "count")
                        else "categorical"}
    return {"columns": cols}


def efficacy(train_rows, test_rows, target, table):
    """Accuracy of a logistic regression trained on ``train_rows``, tested on ``test_rows``."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    features = [c for c in train_rows.columns if c != target]
    sub = pv.data.tables.Table(tuple(c for c in table.columns if c.name in features))
    oh = OneHot(train_rows[features], sub)
    y = train_rows[target].astype(str).to_numpy()
    if len(np.unique(y)) < 2:
        return float("nan")
    clf = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=2000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(oh.encode(train_rows[features]), y)
        return float((clf.predict(oh.encode(test_rows[features]))
                      == test_rows[target].astype(str).to_numpy()).mean())


def quality(real, synthetic, meta):
    from sdmetrics.reports.single_table import QualityReport
    report = QualityReport()
    report.generate(real, synthetic, meta, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return (float(report.get_score()), float(props["Column Shapes"]),
            float(props["Column Pair Trends"]))


def run_synth(backends, seeds, quick, tables=("penguins", "breast_cancer", "wine")):
    from sklearn.model_selection import train_test_split
    results = {}
    for name in tables:
        df, target = load(name)
        for seed in seeds:
            train, test = train_test_split(df, test_size=0.3, random_state=seed,
                                           stratify=df[target])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = pv.data.from_frame(train, split=False, verbose=False)
            meta = metadata(train, table)
            results.setdefault((name, "real rows"), []).append(
                (1.0, 1.0, 1.0, efficacy(train, test, target, table), 0.0))
            for backend in backends:
                t0 = time.perf_counter()
                res = fit_vae(table, backend, seed, quick)
                syn = pv.synthesize(res, len(train), seed=seed)
                secs = time.perf_counter() - t0
                results.setdefault((name, f"probvae ({backend})"), []).append(
                    (*quality(train, syn, meta), efficacy(syn, test, target, table), secs))
            from ctgan import TVAE
            t0 = time.perf_counter()
            complete = train.dropna()
            discrete = [c for c in categorical_columns(table)]
            for c in discrete:
                complete[c] = complete[c].astype(str)
            import torch
            torch.manual_seed(seed)
            tvae = TVAE(epochs=5 if quick else 300)
            tvae.set_random_state(seed)
            tvae.fit(complete, discrete_columns=discrete)
            syn = tvae.sample(len(train))
            for c in discrete:
                syn[c] = syn[c].astype(train[c].dtype) if str(train[c].dtype) != "category" \
                    else pd.Categorical(syn[c], categories=train[c].cat.categories)
            secs = time.perf_counter() - t0
            results.setdefault((name, "TVAE (ctgan)"), []).append(
                (*quality(train, syn, meta), efficacy(syn, test, target, table), secs))
            print(f"  synth {name} seed {seed}: "
                  + ", ".join(f"{k[1]} {v[-1][0]:.3f}/{v[-1][3]:.3f}" for k, v in results.items()
                              if k[0] == name), flush=True)
    rows = []
    for (name, method), vals in results.items():
        v = np.asarray(vals)
        if method == "real rows":
            rows.append([name, method, "-", "-", "-", mean_sd(v[:, 3]), "-"])
            continue
        rows.append([name, method, *(mean_sd(v[:, i]) for i in range(4)),
                     f"{v[:, 4].mean():.0f}"])
    print_table("Synthesis: sdmetrics QualityReport against the training rows, and efficacy "
                "(logistic regression trained on synthetic rows, accuracy on held-out real rows)",
                ["table", "method", "overall", "column shapes", "column pair trends",
                 "efficacy", "seconds"], rows)
    return results


# ----------------------------------------------------------------------------- anomalies
def run_anomaly(backends, seeds, quick, tables=("wine", "penguins")):
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.svm import OneClassSVM
    results = {}     # (table, method) -> list of AUROC (one per class and seed)
    for name in tables:
        df, target = load(name)
        features = df.drop(columns=[target])
        for cls in df[target].dropna().unique():
            normal = features[df[target] == cls]
            others = features[df[target] != cls]
            for seed in seeds:
                train, test_normal = train_test_split(normal, test_size=0.3, random_state=seed)
                test = pd.concat([test_normal, others])
                is_anomaly = np.r_[np.zeros(len(test_normal)), np.ones(len(others))]
                for backend in backends:
                    det = pv.anomaly.VAEAnomalyDetector(    # scaling: as when these were tuned
                        backend=backend, seed=seed, epochs=epochs_for(len(train), quick),
                        scaling="standardize", **VAE_SETTINGS, **FIT)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        det.fit(train)
                        score = -det.score_samples(test)
                    results.setdefault((name, f"probvae ({backend})"), []).append(
                        roc_auc_score(is_anomaly, score))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = pv.data.from_frame(train, split=False, verbose=False)
                oh = OneHot(train, table)
                fill = SimpleImputer(keep_empty_features=True).fit(oh.encode(train))
                a, b = fill.transform(oh.encode(train)), fill.transform(oh.encode(test))
                pca = PCA(n_components=min(a.shape[1] - 1, max(1, a.shape[1] // 3)),
                          random_state=seed).fit(a)
                scores = {
                    "IsolationForest": -IsolationForest(random_state=seed).fit(a).score_samples(b),
                    "OneClassSVM": -OneClassSVM(gamma="scale").fit(a).score_samples(b),
                    "LOF (novelty)": -LocalOutlierFactor(n_neighbors=min(20, len(a) - 1),
                                                         novelty=True).fit(a).score_samples(b),
                    "PCA reconstruction": ((b - pca.inverse_transform(pca.transform(b))) ** 2)
                    .sum(axis=1),
                }
                for label, s in scores.items():
                    results.setdefault((name, label), []).append(roc_auc_score(is_anomaly, s))
            print(f"  anomaly {name} normal={cls}: "
                  + ", ".join(f"{k[1]} {v[-1]:.3f}" for k, v in results.items() if k[0] == name),
                  flush=True)
    rows = [[name, method, mean_sd(v)] for (name, method), v in results.items()]
    means = {}
    for (name, method), v in results.items():
        means.setdefault(method, []).extend(v)
    rows += [["both tables", m, mean_sd(v)] for m, v in means.items()]
    print_table("Anomaly detection: AUROC, each class in turn the normal data (mean ± sd over "
                "classes and seeds; higher is better)", ["table", "method", "AUROC"], rows)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("parts", nargs="*", help="impute, synth, anomaly (default: all three)")
    ap.add_argument("--backends", nargs="+", default=["numpyro", "pyro"],
                    choices=["numpyro", "pyro"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tables", nargs="+", default=None,
                    choices=["breast_cancer", "wine", "penguins"])
    ap.add_argument("--quick", action="store_true", help="1 seed, few epochs: a smoke run")
    args = ap.parse_args(argv)
    parts = ("impute", "synth", "anomaly")
    bad = sorted(set(args.parts) - set(parts))
    if bad:
        ap.error(f"unknown part(s) {bad}; choose from {list(parts)}")
    args.parts = args.parts or list(parts)
    seeds = list(range(1 if args.quick else args.seeds))
    print(f"bench/tabular.py: {args.parts}, backends {args.backends}, seeds {seeds}; probvae "
          f"{VAE_SETTINGS} {FIT}, {STEPS} steps (at most {MAX_EPOCHS} epochs)", flush=True)
    t0 = time.perf_counter()
    kw = {} if args.tables is None else {"tables": tuple(args.tables)}
    for part in args.parts:
        {"impute": run_impute, "synth": run_synth, "anomaly": run_anomaly}[part](
            args.backends, seeds, args.quick, **kw)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
