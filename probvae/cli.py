"""The ``probvae`` command: train, evaluate and sample from the shell.

Examples
--------
    probvae train --prior vamp --likelihood continuous_bernoulli --objective elbo \\
        --backend numpyro --dataset digits --epochs 50 --out runs/demo
    probvae evaluate runs/demo
    probvae sample runs/demo --n 64 --png runs/demo/samples.png
    probvae diagnose runs/demo --out runs/demo/diagnostics

A user's mistake is an error message and a non-zero exit, never a traceback:

>>> main(["evaluate", "no/such/run"])
2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

#: defaults of `probvae train` (and so of `make demo`); bench/backends.py measures them
DEFAULTS = dict(model="vae", prior="vamp", likelihood="continuous_bernoulli", objective="elbo",
                backend="numpyro", dataset="digits", epochs=50, batch_size=32, lr=1e-3,
                latent_dim=8, hidden="256,256", seed=0, eval_samples=1000)


def _parse_hidden(text):
    try:
        sizes = tuple(int(h) for h in str(text).split(",") if h.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated widths like 256,256, "
                                         f"got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--hidden needs positive widths, got {text!r}")
    return sizes


def _load_data(dataset, data_dir, seed, binarize):
    from . import data as pvdata
    ds = pvdata.load(dataset, path=data_dir, seed=seed)
    if binarize:
        ds = type(ds)(ds.train.binarize(), ds.valid.binarize(), ds.test.binarize(), ds.name,
                      ds.image_shape, ds.num_classes)
    return ds


def _needs_binary(likelihood_name):
    from . import likelihoods
    return likelihoods.get(likelihood_name).support == "{0, 1}"


def _print_scores(scores, out=sys.stdout):
    kl = np.asarray(scores["kl_per_dim"], dtype=float)
    print(f"test ELBO            {scores['elbo']:10.3f} nats/example", file=out)
    print(f"test log-likelihood  {scores['log_likelihood']:10.3f} nats/example "
          f"(IWAE bound, {scores['num_samples']} samples)", file=out)
    print(f"reconstruction       {scores['reconstruction']:10.3f}   KL {scores['kl']:.3f}", file=out)
    print("KL per latent dim    " + " ".join(f"{v:.2f}" for v in kl), file=out)
    if "active_units" in scores:
        print(f"active units         {scores['active_units']} of {len(kl)}", file=out)


def cmd_train(args):
    import probvae as pv
    from .models.base import MODELS

    model_cls = {k.lower(): v for k, v in MODELS.items()}.get(args.model.lower())
    if model_cls is None:
        raise SystemExit(f"unknown --model {args.model!r}; known: {sorted(k.lower() for k in MODELS)}")
    from .outputs import check_run_dir
    # the output folder is checked before anything is loaded or trained: nothing of yours is
    # ever replaced, and an impossible --out fails now, not after training
    check_run_dir(args.out, overwrite=args.overwrite, protect=[args.data_dir])
    binarize = _needs_binary(args.likelihood)
    ds = _load_data(args.dataset, args.data_dir, args.seed, binarize)
    if binarize:
        print(f"likelihood {args.likelihood!r} needs binary data: pixels binarized at 0.5")
    model = model_cls(input_dim=ds.train.x.shape[1], latent_dim=args.latent_dim,
                      hidden=args.hidden, prior=args.prior, likelihood=args.likelihood,
                      backend=args.backend)
    opts = {k: getattr(args, k) for k in ("num_particles", "alpha", "beta", "warmup")
            if getattr(args, k) is not None}
    print(f"training {type(model).__name__} (prior={args.prior}, likelihood={args.likelihood}) "
          f"with {args.objective} on {ds!r}, backend {args.backend}")
    res = pv.fit(model, ds.train, objective=args.objective, epochs=args.epochs,
                 batch_size=args.batch_size, lr=args.lr, seed=args.seed, validation=ds.valid,
                 patience=args.patience, progress=not args.no_progress, **opts)
    t0 = time.perf_counter()
    scores = pv.evaluate(res, ds.test, num_samples=args.eval_samples, seed=args.seed)
    data_info = {"dataset": args.dataset, "data_dir": args.data_dir, "data_seed": args.seed,
                 "binarize": binarize, "image_shape": ds.image_shape}
    sec = res.history["seconds"]
    metrics = {"test": {k: v for k, v in scores.items()}, "eval_seconds": time.perf_counter() - t0,
               "first_epoch_seconds": sec[0],
               "epoch_seconds_median": float(np.median(sec[1:])) if len(sec) > 1 else sec[0],
               "epochs_run": len(sec), "best_epoch": res.best_epoch}
    out = pv.save(res, args.out, extra={"data": data_info}, overwrite=args.overwrite,
                  metrics=metrics)
    _print_scores(scores)
    print(f"seconds per epoch    {metrics['epoch_seconds_median']:.4f} "
          f"(first epoch, with compilation: {sec[0]:.2f})")
    print(f"wrote {out}/ (config.json, params.npz, history.json, metrics.json)")


def _open_run(run):
    import probvae as pv
    from .inference.checkpoint import read_config
    cfg = read_config(run)
    return pv.load(run), cfg


def cmd_evaluate(args):
    import probvae as pv
    if args.json:
        from .outputs import check_new_file
        check_new_file(args.json, overwrite=args.overwrite)
    res, cfg = _open_run(args.run)
    d = cfg.get("data") or {}
    if not d.get("dataset"):
        raise SystemExit(f"{args.run} does not record its data set; use probvae.evaluate in Python")
    ds = _load_data(d["dataset"], d.get("data_dir"), d.get("data_seed", 0), d.get("binarize"))
    scores = pv.evaluate(res, ds.test, num_samples=args.num_samples, seed=args.seed)
    print(f"{args.run}: {cfg['model']['class']} on {d['dataset']} test split ({len(ds.test)} examples)")
    _print_scores(scores)
    if args.json:
        from .inference.checkpoint import write_json_atomic
        write_json_atomic(Path(args.json), scores)
        print(f"wrote {args.json}")


def cmd_sample(args):
    import probvae as pv
    from .outputs import atomic_write, check_new_file
    for target in (args.npy, args.png):
        if target:
            check_new_file(target, overwrite=args.overwrite)
    res, cfg = _open_run(args.run)
    x = pv.sample(res, n=args.n, seed=args.seed, mean=not args.draw)
    if args.npy:
        def write_npy(tmp):
            with open(tmp, "wb") as f:
                np.save(f, x)
        atomic_write(args.npy, write_npy)
        print(f"wrote {args.npy} {x.shape}")
    if args.png:
        shape = (cfg.get("data") or {}).get("image_shape")
        if not shape:
            raise SystemExit("this run's data has no image shape; use --npy instead of --png")
        pv.plots.image_grid(x, shape, path=args.png)
        print(f"wrote {args.png} ({args.n} samples, {shape[0]}x{shape[1]})")
    if not (args.png or args.npy):
        np.savetxt(sys.stdout, x, fmt="%.4f")


def cmd_diagnose(args):
    import arviz as az
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import diagnostics as dg
    from .outputs import DIAGNOSTICS_FORMAT, check_run_dir, write_run
    out = check_run_dir(args.out, overwrite=args.overwrite, kind=DIAGNOSTICS_FORMAT)
    res, cfg = _open_run(args.run)
    d = cfg.get("data") or {}
    if not d.get("dataset"):
        raise SystemExit(f"{args.run} does not record its data set; use probvae.diagnostics")
    ds = _load_data(d["dataset"], d.get("data_dir"), d.get("data_seed", 0), d.get("binarize"))
    test = ds.test
    n = min(args.n, len(test))
    x, y = test.x[:n], (test.y[:n] if test.y is not None else None)
    rep = dg.report(res, x, num_samples=args.num_samples, seed=args.seed)
    text = dg.format_report(rep)
    print(text)
    idata = dg.latent_posterior(res, test.__class__(x, y), num_samples=args.num_samples,
                                seed=args.seed)
    figs = {"khat.png": lambda: az.plot_khat(dg.khat(idata).values, show_bins=True),
            "forest.png": lambda: az.plot_forest(idata, var_names=["z"],
                                                 coords={"obs": list(range(min(4, n)))},
                                                 combined=True),
            "pair_obs0.png": lambda: az.plot_pair(idata, var_names=["z"], coords={"obs": [0]},
                                                  kind="kde")}

    def figure(draw):
        def write(tmp):
            draw()
            plt.gcf().savefig(tmp, dpi=90, bbox_inches="tight", format="png")
            plt.close("all")
        return write

    files = {"report.txt": lambda tmp: tmp.write_text(text + "\n"),
             "per_observation.csv": lambda tmp: rep[["khat", "iwae_log_likelihood"]]
             .to_dataframe().to_csv(tmp),
             "per_latent_dim.csv": lambda tmp: rep[["kl", "activity", "active"]]
             .to_dataframe().to_csv(tmp),
             "latent_posterior.nc": lambda tmp: idata.to_netcdf(str(tmp)),
             **{name: figure(draw) for name, draw in figs.items()}}
    report = {"format": DIAGNOSTICS_FORMAT, "files": ["report.json", *files],
              **{k: rep[k].values.tolist() for k in rep.data_vars}}
    files["report.json"] = lambda tmp: tmp.write_text(json.dumps(report, indent=2))
    write_run(out, files, overwrite=args.overwrite, kind=DIAGNOSTICS_FORMAT)
    print(f"wrote {out}/ (report.txt, per_observation.csv, per_latent_dim.csv, report.json, "
          f"latent_posterior.nc, {', '.join(figs)})")


def build_parser():
    p = argparse.ArgumentParser(prog="probvae", description="VAEs as Pyro/NumPyro programs")
    sub = p.add_subparsers(dest="command", required=True)
    d = DEFAULTS
    t = sub.add_parser("train", help="train a model and save it to --out",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--model", default=d["model"])
    t.add_argument("--prior", default=d["prior"])
    t.add_argument("--likelihood", default=d["likelihood"])
    t.add_argument("--objective", default=d["objective"])
    t.add_argument("--backend", default=d["backend"], choices=["numpyro", "pyro"])
    t.add_argument("--dataset", default=d["dataset"], help="digits, mnist or fashion_mnist")
    t.add_argument("--data-dir", default=None, help="folder with the IDX files (mnist, fashion_mnist)")
    t.add_argument("--epochs", type=int, default=d["epochs"])
    t.add_argument("--batch-size", type=int, default=d["batch_size"])
    t.add_argument("--lr", type=float, default=d["lr"])
    t.add_argument("--latent-dim", type=int, default=d["latent_dim"])
    t.add_argument("--hidden", type=_parse_hidden, default=_parse_hidden(d["hidden"]))
    t.add_argument("--num-particles", type=int, default=None)
    t.add_argument("--alpha", type=float, default=None, help="renyi's alpha")
    t.add_argument("--beta", type=float, default=None, help="beta objective's KL weight")
    t.add_argument("--warmup", type=int, default=None, help="beta objective's warm-up epochs")
    t.add_argument("--patience", type=int, default=None, help="early stopping on validation loss")
    t.add_argument("--seed", type=int, default=d["seed"])
    t.add_argument("--eval-samples", type=int, default=d["eval_samples"])
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--out", required=True, help="run folder to write (new or empty; an "
                   "earlier run there is replaced only with --overwrite)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace an earlier probvae run in --out (other files there stay)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="test scores of a saved run")
    e.add_argument("run")
    e.add_argument("--num-samples", type=int, default=d["eval_samples"])
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", default=None, help="also write the scores to this JSON file")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    e.set_defaults(func=cmd_evaluate)
    s = sub.add_parser("sample", help="generate from a saved run")
    s.add_argument("run")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--png", default=None, help="write an image grid")
    s.add_argument("--npy", default=None, help="write the samples as a .npy array")
    s.add_argument("--draw", action="store_true", help="draw x ~ p(x|z), not its mean")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --png/--npy")
    s.set_defaults(func=cmd_sample)
    g = sub.add_parser("diagnose", help="ArviZ diagnostics of a saved run's latent posterior")
    g.add_argument("run")
    g.add_argument("--out", required=True, help="folder for the table and the plots (new or "
                   "empty; an earlier diagnosis there is replaced only with --overwrite)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an earlier diagnosis in --out (other files there stay)")
    g.add_argument("--n", type=int, default=100, help="test examples to diagnose")
    g.add_argument("--num-samples", type=int, default=1000)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_diagnose)
    return p


def main(argv=None):
    """Entry point of the ``probvae`` command.

    Examples
    --------
    >>> main(["train", "--help"])  # doctest: +SKIP
    """
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError, TypeError) as err:
        print(f"probvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


def console():
    """Console-script wrapper: exit with :func:`main`'s status."""
    sys.exit(main())
