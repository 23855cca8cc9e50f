"""DReG vs IWAE: the encoder gradient's signal-to-noise ratio as k grows, and the test bound.

Prints, on each backend:
  * for k = 8, 32, 64 importance samples: the gradient of the IWAE bound on one fixed batch of
    binarized digits, evaluated R times with fresh draws (the parameters of a VAE trained
    briefly with IWAE), for ``iwae`` and ``dreg``. Per parameter: SNR = |mean| / sd over the R
    evaluations (Rainforth et al. 2018); the table gives the median SNR over the encoder's
    parameters, the median of their variance, and the decoder's median SNR (the same
    estimator in both: a check). IWAE's encoder SNR falls as k grows (Rainforth et al.
    predict 1/sqrt(k) asymptotically); DReG's should not.
  * a short training at equal steps (same seed, same batches, k = 32) with each objective: the
    test IWAE bound (``pv.evaluate``'s log-likelihood, 2000 importance samples) and seconds.

    .venv/bin/python bench/dreg.py              # both backends: 14 min on 2 shared cores,
                                                # most of it Pyro's two trainings
    .venv/bin/python bench/dreg.py --quick      # fewer repeats and epochs
    .venv/bin/python bench/dreg.py --backends numpyro
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import probvae as pv
from probvae.inference import objectives

KS = (8, 32, 64)
LATENT, HIDDEN, BATCH = 8, (64,), 64


def load():
    data = pv.data.load("digits", seed=0)
    binary = {name: (getattr(data, name).x > 0.5).astype(np.float32)
              for name in ("train", "valid", "test")}
    return binary


def vae(backend):
    return pv.models.VAE(input_dim=64, latent_dim=LATENT, hidden=HIDDEN, likelihood="bernoulli",
                         backend=backend)


def fit(backend, data, objective, epochs, seed=0, **options):
    t = time.perf_counter()
    res = pv.fit(vae(backend), data["train"], objective=objective, epochs=epochs,
                 batch_size=BATCH, lr=1e-3, seed=seed, validation=None, progress=False,
                 **options)
    return res, time.perf_counter() - t


def gradients(res, name, k, x, repeats):
    """``{parameter path: (repeats, size) array}``: the gradient of the loss of objective
    ``name`` with ``k`` particles on the batch ``x``, ``repeats`` times with fresh draws."""
    bk, model = res.model.bk, res.model
    elbo, _ = objectives.build(name, bk, num_particles=k)
    batch = {"x": bk.asarray(x)}
    out = {}
    if not bk.shared_param_store:                    # NumPyro: params as a pytree
        import jax
        grad = jax.jit(jax.grad(lambda p, key: elbo.loss(key, p, model.model, model.guide,
                                                         **batch)))
        params = res.param_state
        for r in range(repeats):
            g = grad(params, jax.random.PRNGKey(r))
            for site, tree in g.items():
                for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                    key = f"{site}{jax.tree_util.keystr(path)}"
                    out.setdefault(key, []).append(np.asarray(leaf).ravel())
        return {k_: np.stack(v) for k_, v in out.items()}
    import pyro
    from probvae.backends.pyro_backend import param_scope
    with param_scope(res.param_state):
        pyro.set_rng_seed(0)
        for r in range(repeats):
            elbo.loss_and_grads(model.model, model.guide, **batch)
            for key, p in pyro.get_param_store().named_parameters():
                if p.grad is not None:
                    out.setdefault(key, []).append(p.grad.numpy().ravel().copy())
                    p.grad = None
    return {k_: np.stack(v) for k_, v in out.items()}


def summary(grads, prefix):
    """Median SNR and median variance over the scalar parameters whose name starts with
    ``prefix`` (those whose gradient is not identically zero)."""
    g = np.concatenate([v for k, v in grads.items() if k.startswith(prefix)], axis=1)
    mean, sd = g.mean(0), g.std(0, ddof=1)
    live = sd > 0
    return float(np.median(np.abs(mean[live]) / sd[live])), float(np.median(sd[live] ** 2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default="numpyro,pyro")
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--warm-epochs", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--eval-samples", type=int, default=2000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.warm_epochs, args.epochs, args.eval_samples = 30, 5, 5, 200
    data = load()
    x = data["train"][:BATCH]
    steps = args.epochs * (len(data["train"]) // BATCH)
    print(f"digits binarized at 0.5 (train {len(data['train'])}, test {len(data['test'])}); "
          f"VAE latent {LATENT}, hidden {HIDDEN}, Bernoulli likelihood; batch {BATCH}")
    for backend in args.backends.split(","):
        warm, _ = fit(backend, data, "iwae", args.warm_epochs, num_particles=8)
        print(f"\n[{backend}] gradient SNR on one batch of {BATCH} digits, {args.repeats} "
              f"evaluations each, at the parameters after {args.warm_epochs} epochs of iwae "
              "(k=8)")
        print(f"{'k':>4} {'objective':>9} {'encoder SNR':>12} {'encoder var':>12} "
              f"{'decoder SNR':>12} {'seconds':>8}")
        for k in KS:
            for name in ("iwae", "dreg"):
                t = time.perf_counter()
                grads = gradients(warm, name, k, x, args.repeats)
                sec = time.perf_counter() - t
                enc_snr, enc_var = summary(grads, "encoder")
                dec_snr, _ = summary(grads, "decoder")
                print(f"{k:>4} {name:>9} {enc_snr:>12.4f} {enc_var:>12.3e} {dec_snr:>12.4f} "
                      f"{sec:>8.1f}", flush=True)
        print(f"[{backend}] training at equal steps: {args.epochs} epochs ({steps} steps of "
              f"{BATCH}), k=32, lr 1e-3, seed 0; test IWAE bound with {args.eval_samples} "
              "samples")
        print(f"{'objective':>9} {'test log p(x) >=':>17} {'test ELBO':>10} {'fit seconds':>12}")
        for name in ("iwae", "dreg"):
            res, sec = fit(backend, data, name, args.epochs, num_particles=32)
            sc = pv.evaluate(res, data["test"], num_samples=args.eval_samples, seed=0)
            print(f"{name:>9} {sc['log_likelihood']:>17.3f} {sc['elbo']:>10.3f} {sec:>12.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
