"""``probvae evaluate``, ``sample`` and ``diagnose``: what a saved run can do from the shell.

Examples
--------
>>> from probvae.applications.cli import main
>>> main(["sample", "no/such/run"])
2
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import probvae as pv
from probvae import diagnostics as dg
from probvae.inference.checkpoint import read_config
from probvae.outputs import (DIAGNOSTICS_FORMAT, DamagedFileError, atomic_write,
                             check_new_file, check_run_dir, write_json, write_run, writing)

from .common import finite, load_data, print_scores

__all__ = ["cmd_evaluate", "cmd_sample", "cmd_diagnose"]


def _open_run(run):
    cfg = read_config(run)
    return pv.load(run), cfg


def _recorded_data(cfg, run, instead):
    """``(record, data set)``: the data set a run recorded (config.json's ``data``, whose
    fields :func:`read_config` checked), loaded. A run that records none is an error that
    says to use ``instead`` in Python; one whose record names no data set probvae can load
    is an error naming the file and the field."""
    d = cfg.get("data") or {}
    if not d.get("dataset"):
        raise ValueError(f"{run} does not record its data set (its config.json has no field "
                         f"'data.dataset'); use {instead} in Python")
    try:
        return d, load_data(d["dataset"], d.get("data_dir"), d.get("data_seed", 0),
                            d.get("binarize"))
    except ValueError as err:
        raise DamagedFileError(f"{Path(run) / 'config.json'}: field 'data' does not describe "
                               f"a data set probvae can load: {err}") from None


def cmd_evaluate(args):
    """Test scores of a saved run on the test split of its recorded data set."""
    if args.json:
        check_new_file(args.json, overwrite=args.overwrite)
    res, cfg = _open_run(args.run)
    d, ds = _recorded_data(cfg, args.run, "probvae.evaluate")
    scores = finite(pv.evaluate(res, ds.test, num_samples=args.num_samples, seed=args.seed),
                     args.run)
    print(f"{args.run}: {cfg['model']['class']} on {d['dataset']} test split ({len(ds.test)} examples)")
    print_scores(scores)
    if args.json:
        write_json(Path(args.json), scores)
        print(f"wrote {args.json}")


def cmd_sample(args):
    """Samples of a saved run: printed, or written as .npy or an image grid."""
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
    """ArviZ diagnostics of a saved run's latent posterior, written to a folder (locked
    against a second writer from the check of the folder to the last file written)."""
    check_run_dir(args.out, overwrite=args.overwrite, kind=DIAGNOSTICS_FORMAT)
    with writing(args.out):
        return _diagnose(args)


def _diagnose(args):
    import arviz as az                # plotting libraries: only this command needs them
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = check_run_dir(args.out, overwrite=args.overwrite, kind=DIAGNOSTICS_FORMAT)
    res, cfg = _open_run(args.run)
    _, ds = _recorded_data(cfg, args.run, "pv.diagnostics")
    test = ds.test
    n = min(args.n, len(test))
    x = test.x[:n]
    rep = dg.report(res, x, num_samples=args.num_samples, seed=args.seed)
    text = dg.format_report(rep)
    print(text)
    idata = dg.latent_posterior(res, test[:n], num_samples=args.num_samples,   # labels and
                                seed=args.seed)                               # image shape kept
    latent = res.model.contract.latent().name              # the principal latent site
    obs = idata.sample_stats["log_weight"].dims[-1]        # the examples' dim
    figs = {"khat.png": lambda: az.plot_khat(dg.khat(idata).values, show_bins=True),
            "forest.png": lambda: az.plot_forest(idata, var_names=[latent],
                                                 coords={obs: list(range(min(4, n)))},
                                                 combined=True),
            "pair_obs0.png": lambda: az.plot_pair(idata, var_names=[latent], coords={obs: [0]},
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
