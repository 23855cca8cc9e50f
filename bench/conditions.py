"""Class-conditional digits: do a conditional VAE's samples look like the class asked for?

Trains ``VAE(input_dim=64, condition_dim=10)`` on scikit-learn's 8x8 digits (the training
split of ``pv.data.load("digits")``) with the library's defaults (``pv.fit`` chooses epochs,
holds out validation rows and stops early), conditioned on each digit's one-hot class; draws
100 samples per class (``pv.sample(res, 100, condition=pv.data.one_hot(c, 10))``) and scores
them with a LogisticRegression trained on the real training digits. It prints the share of
samples classified as the class they were drawn for (the target is >= 0.9; chance is 0.1),
per class and in all, and the classifier's accuracy on the real test digits for reference.

Usage::

    .venv/bin/python bench/conditions.py [--backend numpyro|pyro] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

import probvae as pv

PER_CLASS = 100


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpyro", choices=("numpyro", "pyro"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = pv.data.load("digits", seed=args.seed)
    k = data.num_classes
    t0 = time.perf_counter()
    vae = pv.models.VAE(input_dim=64, condition_dim=k, backend=args.backend)
    res = pv.fit(vae, data.train, condition=pv.data.one_hot(data.train.y, k), seed=args.seed,
                 progress=False)
    seconds = time.perf_counter() - t0
    test = pv.evaluate(res, data.test, num_samples=100,
                       condition=pv.data.one_hot(data.test.y, k))

    clf = LogisticRegression(max_iter=2000).fit(data.train.x, data.train.y)
    labels = np.repeat(np.arange(k), PER_CLASS)
    samples = pv.sample(res, n=len(labels), seed=args.seed,
                        condition=pv.data.one_hot(labels, k))
    hit = clf.predict(samples) == labels

    print(f"bench/conditions.py: VAE(condition_dim={k}) on digits, backend {args.backend}, "
          f"seed {args.seed}; {len(res.history['train_loss'])} epochs "
          f"({res.status}), {seconds:.0f} s of training")
    print(f"test log p(x|c) (IWAE, 100 samples): {test['log_likelihood']:.2f} nats")
    print(f"classifier on real test digits: {clf.score(data.test.x, data.test.y):.3f}")
    print("samples classified as their condition, per class: "
          + " ".join(f"{c}:{hit[labels == c].mean():.2f}" for c in range(k)))
    print(f"samples classified as their condition: {hit.mean():.3f} "
          f"(target >= 0.9; chance {1 / k:.1f})")


if __name__ == "__main__":
    main()
