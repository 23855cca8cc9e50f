"""Missing values on digits: test log-likelihood of the observed pixels and imputation error.

For 10%, 30% and 50% of pixels missing completely at random (in the training, validation and
test splits alike), it trains a VAE with ``missing="mask"`` on each backend and prints, in one
run:
  * the test log-likelihood of the observed pixels (IWAE bound, nats per digit);
  * the imputation error of ``pv.impute`` (RMSE on the hidden test cells, pixel values in
    [0, 1]) beside scikit-learn's SimpleImputer(mean), KNNImputer and IterativeImputer
    (BayesianRidge, values clipped to [0, 1]), all fitted on the same gappy training split.

The VAE's likelihood is chosen per missing rate on the validation split (its RMSE on hidden
validation cells, NumPyro) among a few candidates, never on the test split; Pyro then trains
the chosen setting. Target: ``pv.impute`` has the lowest RMSE at 30% and 50%.

    .venv/bin/python bench/missing.py                 # both backends (~15 minutes on 2 cores)
    .venv/bin/python bench/missing.py --quick         # NumPyro only, one candidate, 60 epochs
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

import probvae as pv

RATES = (0.1, 0.3, 0.5)
#: likelihoods tried on the validation split (name -> instance)
CANDIDATES = {
    "gaussian(scale=0.2)": pv.likelihoods.Gaussian(scale=0.2),
    "gaussian(scale=0.1)": pv.likelihoods.Gaussian(scale=0.1),
    "continuous_bernoulli": pv.likelihoods.ContinuousBernoulli(),
}
SETTINGS = dict(latent_dim=16, hidden=(256, 256))
FIT = dict(objective="iwae", num_particles=8, batch_size=32, lr=1e-3, seed=0)


def gaps(x, rate, seed):
    """A copy of ``x`` with ``rate`` of its cells set to NaN, and the mask of hidden cells."""
    hidden = np.random.default_rng(seed).random(x.shape) < rate
    out = x.copy()
    out[hidden] = np.nan
    return out, hidden


def rmse(filled, truth, hidden):
    return float(np.sqrt(np.mean((filled[hidden] - truth[hidden]) ** 2)))


def train(backend, likelihood, x_train, x_valid, epochs):
    vae = pv.models.VAE(input_dim=x_train.shape[1], likelihood=likelihood, backend=backend,
                        **SETTINGS)
    t0 = time.perf_counter()
    res = pv.fit(vae, x_train, missing="mask", validation=x_valid, epochs=epochs,
                 progress=False, **FIT)
    return res, time.perf_counter() - t0


def baselines(x_train, x_test):
    out = {}
    for name, imp in [("SimpleImputer(mean)", SimpleImputer()),
                      ("KNNImputer", KNNImputer()),
                      ("IterativeImputer", IterativeImputer(random_state=0, min_value=0.0,
                                                            max_value=1.0))]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = imp.fit(x_train).transform(x_test)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="NumPyro, one candidate, 60 epochs")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--backends", default="numpyro,pyro")
    ap.add_argument("--num-samples", type=int, default=200, help="importance samples")
    args = ap.parse_args()
    backends = ["numpyro"] if args.quick else args.backends.split(",")
    epochs = 60 if args.quick else args.epochs
    candidates = dict(list(CANDIDATES.items())[:1]) if args.quick else CANDIDATES
    data = pv.data.load("digits", seed=0)
    print(f"digits ({len(data.train)} train, {len(data.valid)} valid, {len(data.test)} test), "
          f"pixels missing completely at random; VAE latent {SETTINGS['latent_dim']}, hidden "
          f"{SETTINGS['hidden']}, {FIT['objective']} with {FIT['num_particles']} particles, "
          f"{epochs} epochs (best validation epoch kept), {args.num_samples} importance samples\n")
    table = []
    for rate in RATES:
        seed = int(rate * 100)
        x_train, _ = gaps(data.train.x, rate, seed)
        x_valid, hid_valid = gaps(data.valid.x, rate, seed + 1)
        x_test, hid_test = gaps(data.test.x, rate, seed + 2)
        # choose the likelihood on the validation split: hide 10% more of its observed cells
        probe, extra = gaps(x_valid, 0.1, seed + 3)
        extra &= ~hid_valid
        chosen, best = None, np.inf
        for name, lik in candidates.items():
            res, _ = train(backends[0], lik, x_train, x_valid, epochs)
            score = rmse(pv.impute(res, probe, num_samples=args.num_samples), data.valid.x,
                         extra)
            print(f"  {int(rate * 100)}% missing: validation RMSE {score:.4f} with {name}")
            if score < best:
                chosen, best = name, score
        row = {"rate": rate, "likelihood": chosen}
        for backend in backends:
            res, seconds = train(backend, candidates[chosen], x_train, x_valid, epochs)
            filled = pv.impute(res, x_test, num_samples=args.num_samples)
            scores = pv.evaluate(res, x_test, num_samples=args.num_samples)
            row[backend] = {"rmse": rmse(filled, data.test.x, hid_test),
                            "ll": scores["log_likelihood"], "seconds": seconds}
        for name, filled in baselines(x_train, x_test).items():
            row[name] = {"rmse": rmse(filled, data.test.x, hid_test)}
        table.append(row)
        print(f"{int(rate * 100)}% missing done: chosen {chosen}\n", flush=True)

    names = [*backends, "SimpleImputer(mean)", "KNNImputer", "IterativeImputer"]
    print("imputation RMSE on the hidden test pixels (lower is better)")
    header = [f"pv.impute {n}" if n in backends else n for n in names]
    print(f"{'missing':>8} | " + " | ".join(f"{h:>19}" for h in header))
    for row in table:
        cells = [row[n]["rmse"] for n in names]
        winner = int(np.argmin(cells))
        print(f"{int(row['rate'] * 100):>7}% | " + " | ".join(
            f"{('*' if i == winner else ' ') + format(c, '.4f'):>19}" for i, c in enumerate(cells)))
    print("\ntest log-likelihood of the observed pixels (IWAE bound, nats per digit; the "
          "likelihood differs by row, so compare within a row only)")
    for row in table:
        print(f"{int(row['rate'] * 100):>7}% | {row['likelihood']:<22} | " + " | ".join(
            f"{b} {row[b]['ll']:8.2f} ({row[b]['seconds']:.0f} s)" for b in backends))
    print()
    for row in table:
        vae = min(row[b]["rmse"] for b in backends)
        others = min(row[n]["rmse"] for n in names if n not in backends)
        verdict = "lowest" if all(row[b]["rmse"] < others for b in backends) else "NOT lowest"
        print(f"{int(row['rate'] * 100)}%: pv.impute {verdict} (best VAE {vae:.4f}, best "
              f"baseline {others:.4f})")


if __name__ == "__main__":
    main()
