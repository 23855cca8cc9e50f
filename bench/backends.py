"""Pyro vs NumPyro on the defaults of `make demo`: test log-likelihood and seconds per epoch.

Prints, in one run, per seed and on average:
  * test IWAE log-likelihood (1000 importance samples) and ELBO for each backend, and
    their difference (target: within 2 nats per example);
  * median seconds per epoch after the first (the first includes NumPyro's compilation,
    reported separately) and the Pyro / NumPyro ratio (target: >= 4x).
A second table times the README snippet's setting (IWAE with 8 particles, batch 128), where both
libraries spend most of the time in the same matrix multiplications.

    .venv/bin/python bench/backends.py            # full run (~3 minutes on 2 cores)
    .venv/bin/python bench/backends.py --quick    # 1 seed, 10 epochs
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import probvae as pv
from probvae.applications.cli import DEFAULTS


def run(backend, seed, epochs, prior, objective, batch_size, num_particles=None, evaluate=True):
    data = pv.data.load(DEFAULTS["dataset"], seed=0)
    hidden = tuple(int(h) for h in DEFAULTS["hidden"].split(","))
    vae = pv.models.VAE(input_dim=data.train.x.shape[1], latent_dim=DEFAULTS["latent_dim"],
                        hidden=hidden, prior=prior, likelihood=DEFAULTS["likelihood"],
                        backend=backend)
    opts = {"num_particles": num_particles} if num_particles else {}
    res = pv.fit(vae, data.train, objective=objective, epochs=epochs, batch_size=batch_size,
                 lr=DEFAULTS["lr"], seed=seed, validation=data.valid, progress=False, **opts)
    sec = res.history["seconds"]
    out = {"first": sec[0], "epoch": float(np.median(sec[1:])), "epochs": len(sec),
           "batch_size": res.options["batch_size"]}
    if evaluate:
        t = time.perf_counter()
        sc = pv.evaluate(res, data.test, num_samples=DEFAULTS["eval_samples"], seed=0)
        out.update(ll=sc["log_likelihood"], elbo=sc["elbo"], eval_s=time.perf_counter() - t)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 seed, 10 epochs")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    seeds = range(1 if args.quick else args.seeds)
    epochs = 10 if args.quick else DEFAULTS["epochs"]
    d = DEFAULTS
    print(f"make-demo defaults (the Python API's; None: pv.fit decides): VAE latent "
          f"{d['latent_dim']}, hidden {d['hidden']}, prior {d['prior']}, likelihood "
          f"{d['likelihood']}, objective {d['objective']}, batch {d['batch_size']}, lr "
          f"{d['lr']}, epochs {epochs}, digits (seed 0 split)\n")
    rows = {"pyro": [], "numpyro": []}
    hdr = f"{'seed':>4} | {'backend':>8} | {'test LL':>9} | {'test ELBO':>9} | {'s/epoch':>8} | {'1st epoch s':>11} | {'eval s':>6}"
    print(hdr)
    print("-" * len(hdr))
    for seed in seeds:
        for backend in ("numpyro", "pyro"):
            r = run(backend, seed, epochs, d["prior"], d["objective"], d["batch_size"])
            rows[backend].append(r)
            print(f"{seed:>4} | {backend:>8} | {r['ll']:9.2f} | {r['elbo']:9.2f} | "
                  f"{r['epoch']:8.4f} | {r['first']:11.2f} | {r['eval_s']:6.1f}   "
                  f"({r['epochs']} epochs of batch {r['batch_size']})", flush=True)
    mean = {b: {k: float(np.mean([r[k] for r in rows[b]])) for k in rows[b][0]} for b in rows}
    sd = {b: float(np.std([r["ll"] for r in rows[b]])) for b in rows}
    gap = abs(mean["pyro"]["ll"] - mean["numpyro"]["ll"])
    ratio = mean["pyro"]["epoch"] / mean["numpyro"]["epoch"]
    print("\nside by side (mean over seeds)")
    print(f"{'':>22} {'numpyro':>10} {'pyro':>10}")
    print(f"{'test log-likelihood':>22} {mean['numpyro']['ll']:10.2f} {mean['pyro']['ll']:10.2f}"
          f"   (sd over seeds {sd['numpyro']:.2f} / {sd['pyro']:.2f})")
    print(f"{'test ELBO':>22} {mean['numpyro']['elbo']:10.2f} {mean['pyro']['elbo']:10.2f}")
    print(f"{'seconds per epoch':>22} {mean['numpyro']['epoch']:10.4f} {mean['pyro']['epoch']:10.4f}")
    print(f"{'first epoch (compile)':>22} {mean['numpyro']['first']:10.2f} {mean['pyro']['first']:10.2f}")
    print(f"\nLL difference {gap:.2f} nats/example (target <= 2): {'PASS' if gap <= 2 else 'FAIL'}")
    print(f"Pyro / NumPyro epoch time {ratio:.1f}x (target >= 4): {'PASS' if ratio >= 4 else 'FAIL'}")

    print("\nREADME snippet setting (vamp, iwae with 8 particles, batch 128), timing only, seed 0:")
    t = {b: run(b, 0, 6, "vamp", "iwae", 128, num_particles=8, evaluate=False)
         for b in ("numpyro", "pyro")}
    print(f"  numpyro {t['numpyro']['epoch']:.4f} s/epoch, pyro {t['pyro']['epoch']:.4f} s/epoch, "
          f"ratio {t['pyro']['epoch'] / t['numpyro']['epoch']:.1f}x (compute-bound: same matmuls)")


if __name__ == "__main__":
    main()
