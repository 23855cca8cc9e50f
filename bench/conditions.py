"""Conditional VAEs: do the samples look like the class asked for, do table rows fit their values?

Images (``--data digits``, the default, or ``--data mnist``)
    Trains ``VAE(input_dim=64, condition_dim=10)`` on scikit-learn's 8x8 digits (the training
    split of ``pv.data.load("digits")``), or ``VAE(input_dim=784, condition_dim=10)`` (the
    MLP) on MNIST (the IDX files in ../shared/data/mnist), with the library's defaults
    (``pv.fit`` chooses epochs, holds out validation rows and stops early; ``--epochs N``
    overrides), conditioned on each image's one-hot class; draws 100 samples per class
    (``pv.sample(res, 100, condition=pv.data.one_hot(c, 10))``) and scores them with a
    LogisticRegression trained on the real training images. A sample is the likelihood's mean
    E[x | z, c] for z from the prior (``pv.sample``'s default, ``mean=True``); the same share
    for draws from p(x | z, c) (``mean=False``) is printed for reference. It prints the share
    of samples classified as the class they were drawn for (the target is >= 0.9; chance is
    0.1), per class and in all, the classifier's accuracy on the real test images, and how
    well a linear probe reads the class from z ~ q(z | x, c) on the test images (near chance
    when z holds style, not class). ``--likelihood bernoulli`` trains on MNIST binarized
    afresh each epoch (``binarize="dynamic"``); the samples are then pixel probabilities.
    Figures: docs/conditions.md.

Tables (``--table``)
    Conditional synthesis against unconditional synthesis filtered to the same values, on the
    penguins of ``palmerpenguins`` (the 333 rows without gaps). Fits
    ``VAE.for_table(table, condition=["species"])`` and ``VAE.for_table(table)`` with
    ``pv.fit``'s defaults. For each species: ``--rows`` rows (default 500) from
    ``pv.synthesize(res, n, condition=pd.DataFrame({"species": [v]}))``, and as many rows of
    that species drawn from the unconditional model by rejection (batches of ``--rows`` draws
    until enough are kept, at most 50 batches; it prints the draws needed and the acceptance
    rate). Both are scored against the real rows of that species by sdmetrics' QualityReport
    (overall, Column Shapes, Column Pair Trends) on the modelled columns (the species column,
    constant in all three, is left out).

Usage::

    .venv/bin/python bench/conditions.py [--backend numpyro|pyro] [--seed 0]   # digits
    .venv/bin/python bench/conditions.py --data mnist [--likelihood bernoulli] [--epochs N]
                                         [--backend ...] [--seed ...]
    .venv/bin/python bench/conditions.py --table [--rows 500] [--backend ...] [--seed ...]

The table part needs sdmetrics (the ``bench`` extra) and palmerpenguins.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import probvae as pv

PER_CLASS = 100
MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"
#: the unconditional model's rejection sampling gives up after this many batches of draws
MAX_BATCHES = 50


# ----------------------------------------------------------------------------- images
def run_images(name, backend, seed, epochs=None, likelihood=None):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if name == "mnist":
        data = pv.data.load("mnist", path=MNIST, seed=seed)
    else:
        data = pv.data.load("digits", seed=seed)
    k = data.num_classes
    dim = data.train.x.shape[1]
    # bernoulli: binary pixels drawn afresh each epoch from the grey ones (fit's
    # binarize="dynamic"), scored on the test images binarized once by one draw per pixel
    dynamic = likelihood == "bernoulli"
    test_x = data.test.binarize(stochastic=True, seed=seed) if dynamic else data.test
    lik = {} if likelihood is None else {"likelihood": likelihood}
    t0 = time.perf_counter()
    vae = pv.models.VAE(input_dim=dim, condition_dim=k, backend=backend, **lik)
    res = pv.fit(vae, data.train, condition=pv.data.one_hot(data.train.y, k), seed=seed,
                 epochs=epochs, progress=False, **({"binarize": "dynamic"} if dynamic else {}))
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    test = pv.evaluate(res, test_x, num_samples=100,
                       condition=pv.data.one_hot(data.test.y, k))
    eval_seconds = time.perf_counter() - t1

    t1 = time.perf_counter()
    # digits: LogisticRegression converges in 2000 iterations; MNIST: 200 give 0.925 on the
    # real test images in ~20 s on one core (lbfgs stops at its limit, not converged)
    clf = LogisticRegression(max_iter=2000 if name == "digits" else 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(data.train.x, data.train.y)
    clf_seconds = time.perf_counter() - t1
    labels = np.repeat(np.arange(k), PER_CLASS)
    cond = pv.data.one_hot(labels, k)
    means = pv.sample(res, n=len(labels), seed=seed, condition=cond)
    draws = pv.sample(res, n=len(labels), seed=seed, condition=cond, mean=False)
    hit = clf.predict(means) == labels
    hit_draws = clf.predict(draws) == labels

    # does z hold style and not class? a linear probe for the class on the posterior means
    # (first half of the test images to fit it, second half to score; chance is 1/k)
    z = pv.encode(res, test_x.x, condition=pv.data.one_hot(data.test.y, k))
    half = len(z) // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe = LogisticRegression(max_iter=1000).fit(z[:half], data.test.y[:half])
    probe = probe.score(z[half:], data.test.y[half:])

    print(f"bench/conditions.py: VAE(input_dim={dim}, condition_dim={k}, likelihood="
          f"{vae.likelihood.name}) on "
          f"{name}{' (binarize=dynamic)' if dynamic else ''}, backend {backend}, seed {seed}; "
          f"{len(res.history['train_loss'])} epochs of {res.options.get('epochs')} "
          f"({'given' if epochs else 'the default'}; {res.status}), "
          f"{seconds:.0f} s ({seconds / 60:.1f} min) of training")
    print(f"test log p(x|c) (IWAE, 100 samples): {test['log_likelihood']:.2f} nats "
          f"({eval_seconds:.0f} s)")
    print(f"classifier (LogisticRegression on pixels, {clf_seconds:.0f} s) on real test "
          f"{name}: {clf.score(data.test.x, data.test.y):.3f}")
    print(f"class read from z ~ q(z|x,c) by a linear probe: {probe:.3f} (chance {1 / k:.1f}; "
          f"low = z holds style, not class)")
    print("samples (likelihood means) classified as their condition, per class: "
          + " ".join(f"{c}:{hit[labels == c].mean():.2f}" for c in range(k)))
    print(f"samples (likelihood means E[x|z,c], z ~ p(z)) classified as their condition: "
          f"{hit.mean():.3f} (target >= 0.9; chance {1 / k:.1f})")
    print(f"draws from p(x|z,c) (mean=False) classified as their condition: "
          f"{hit_draws.mean():.3f} (for reference)")


# ----------------------------------------------------------------------------- tables
def filtered(res, n, column, value, seed):
    """``n`` rows with ``column == value`` from an unconditional table model, by rejection.

    Returns (rows, draws needed for the n-th kept row, or None when MAX_BATCHES batches of
    ``n`` draws did not give ``n``; draws made)."""
    import pandas as pd
    kept, drawn = [], 0
    for b in range(MAX_BATCHES):
        batch = pv.synthesize(res, n, seed=seed + 1 + b)
        hit = (batch[column] == value).to_numpy()
        have = sum(len(k) for k in kept)
        if have + hit.sum() >= n:
            last = np.flatnonzero(hit)[n - have - 1]
            kept.append(batch[hit][:n - have])
            return pd.concat(kept, ignore_index=True), drawn + last + 1, drawn + n
        kept.append(batch[hit])
        drawn += n
    return pd.concat(kept, ignore_index=True), None, drawn


def run_table(backend, seed, rows):
    import pandas as pd
    from palmerpenguins import load_penguins
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tabular import metadata, quality  # bench/tabular.py: sdmetrics' QualityReport

    column = "species"
    df = load_penguins().dropna().reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = pv.data.from_frame(df, split=False, verbose=False)
    modelled = [c for c in df.columns if c != column]
    meta = metadata(df[modelled], table)
    meta["columns"].pop(column)

    fits, seconds = {}, {}
    for kind, cond in (("conditional", [column]), ("unconditional", None)):
        t0 = time.perf_counter()
        vae = pv.models.VAE.for_table(table, condition=cond, backend=backend)
        fits[kind] = pv.fit(vae, df, seed=seed, progress=False)
        seconds[kind] = time.perf_counter() - t0

    from importlib.metadata import version
    print(f"bench/conditions.py --table: penguins ({len(df)} rows without gaps), condition "
          f"{column!r}, backend {backend}, seed {seed}, {rows} rows per value; sdmetrics "
          f"{version('sdmetrics')}")
    for kind, res in fits.items():
        print(f"  {kind}: {len(res.history['train_loss'])} epochs of "
              f"{res.options.get('epochs')} ({res.status}), {seconds[kind]:.0f} s")
    print("\nsdmetrics QualityReport against the real rows of each value "
          "(overall / column shapes / column pair trends)\n")
    print(f"| {column} | n real | conditional | unconditional, filtered | draws needed "
          f"(acceptance) |")
    print("|---|---|---|---|---|")
    scores = []
    for value in sorted(df[column].unique()):
        real = df[df[column] == value][modelled].reset_index(drop=True)
        cond = pv.synthesize(fits["conditional"], rows, seed=seed,
                             condition=pd.DataFrame({column: [value]}))
        assert (cond[column] == value).all()
        filt, needed, drawn = filtered(fits["unconditional"], rows, column, value, seed)
        with warnings.catch_warnings():  # sdmetrics: the single-table report's new path
            warnings.simplefilter("ignore", FutureWarning)
            q_cond = quality(real, cond[modelled], meta)
            q_filt = quality(real, filt[modelled], meta) if len(filt) else (np.nan,) * 3
        scores.append((q_cond, q_filt))
        if needed is None:
            need = f"gave up after {drawn} draws with {len(filt)} kept ({len(filt) / drawn:.3f})"
        else:
            need = f"{needed} ({rows / needed:.3f})"
        print(f"| {value} | {len(real)} | {'/'.join(f'{s:.3f}' for s in q_cond)} | "
              f"{'/'.join(f'{s:.3f}' for s in q_filt)} | {need} |")
    c = np.array([s[0] for s in scores])
    f = np.array([s[1] for s in scores])
    print(f"| mean | {len(df)} | {'/'.join(f'{s:.3f}' for s in c.mean(0))} | "
          f"{'/'.join(f'{s:.3f}' for s in f.mean(0))} | |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", choices=("digits", "mnist"))
    parser.add_argument("--table", action="store_true",
                        help="conditional table synthesis (penguins) instead of images")
    parser.add_argument("--backend", default="numpyro", choices=("numpyro", "pyro"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None,
                        help="images: epochs instead of pv.fit's default")
    parser.add_argument("--likelihood", default=None,
                        choices=("continuous_bernoulli", "bernoulli"),
                        help="images: the likelihood (default: VAE's, continuous_bernoulli); "
                             "bernoulli trains with binarize='dynamic'")
    parser.add_argument("--rows", type=int, default=500,
                        help="tables: rows synthesised per value")
    args = parser.parse_args()
    if args.table:
        run_table(args.backend, args.seed, args.rows)
    else:
        run_images(args.data, args.backend, args.seed, args.epochs, args.likelihood)


if __name__ == "__main__":
    main()
