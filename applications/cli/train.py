"""``probvae train``: train a model into a run folder, with checkpoints; ``--resume`` continues one.

Examples
--------
>>> import tempfile
>>> run = tempfile.mkdtemp() + "/run"
>>> from probvae.applications.cli import main
>>> main(["train", "--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--prior", "normal",
...       "--eval-samples", "4", "--no-progress", "--out", run])  # doctest: +ELLIPSIS
training VAE ...
0
>>> main(["train", "--resume", run, "--epochs", "2", "--no-progress"])  # doctest: +ELLIPSIS
resuming VAE ...
0
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import numpy as np

import probvae as pv
from probvae import backends
from probvae.inference import distributed
from probvae.inference.checkpoint import read_config
from probvae.models.base import MODELS
from probvae.backends.base import OPTIMIZER_NAMES
from probvae.inference.inputs import check_count
from probvae.inference.training import RUN_FILES
from probvae.outputs import DamagedFileError, check_field, check_run_dir, writing

from .common import EXIT_DIVERGED, finite, load_data, needs_binary, print_scores

__all__ = ["cmd_train"]

#: the `probvae train` settings recorded in a run's config.json, so --resume needs no others
_TRAIN_SETTINGS = ("model", "prior", "likelihood", "objective", "backend", "dataset", "data_dir",
                   "epochs", "batch_size", "lr", "latent_dim", "hidden", "num_particles",
                   "alpha", "beta", "warmup", "patience", "seed", "eval_samples", "clip_norm",
                   "checkpoint_every", "binarize", "encoder", "decoder", "optimizer")


#: settings runs from earlier versions did not record
_RECORD_DEFAULTS = {"binarize": "threshold", "encoder": "mlp", "decoder": "mlp",
                    "checkpoint_every": 1}


def _resume_settings(args):
    """``args`` completed from the run folder's recorded settings (``--resume RUN``)."""
    cfg = read_config(args.resume)
    recorded = cfg.get("cli")
    if not recorded:
        raise ValueError(f"{args.resume} was not written by `probvae train`; resume it in Python "
                         "with pv.fit(model, data, resume=...)")
    if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
        raise ValueError("--resume continues the run in its own folder; drop --out")
    given = {k: getattr(args, k) for k in ("epochs", "lr", "clip_norm", "patience")
             if getattr(args, k) is not None}
    _check_recorded(recorded, Path(args.resume) / "config.json", given)
    for key in _TRAIN_SETTINGS:
        setattr(args, key, recorded.get(key, _RECORD_DEFAULTS.get(key)))
    for key, value in given.items():
        setattr(args, key, value)
    args.hidden = tuple(args.hidden)
    args.out = args.resume
    return args


#: the kinds of the recorded settings (config.json's "cli"): names, counts, numbers
_NAMES = {"model": lambda: [k.lower() for k in MODELS], "prior": lambda: pv.priors.names(),
          "likelihood": lambda: pv.likelihoods.names(), "backend": lambda: ["numpyro", "pyro"],
          "encoder": lambda: ["mlp", "conv"], "decoder": lambda: ["mlp", "conv"],
          "optimizer": lambda: list(OPTIMIZER_NAMES),
          "dataset": None, "objective": None, "data_dir": None}
_COUNTS = ("epochs", "batch_size", "latent_dim", "eval_samples", "checkpoint_every",
           "num_particles", "patience", "warmup")
_NUMBERS = ("lr", "clip_norm", "alpha", "beta")


def _check_recorded(recorded, where, given):
    """config.json's "cli": each recorded setting of the kind the command line gives (a
    setting that may be null may be missing; one given again on the command line is not
    read)."""
    for key in _TRAIN_SETTINGS:
        optional = key in _RECORD_DEFAULTS or key in given or key in (
            "objective", "data_dir", "num_particles", "patience", "warmup", "clip_norm",
            "alpha", "beta", "epochs", "batch_size", "lr",     # None: pv.fit's default
            "optimizer")
        if key not in recorded or key in given:
            if not optional:
                raise DamagedFileError(f"{where}: field 'cli.{key}' is missing")
            continue
        value, field = recorded[key], f"cli.{key}"
        if key in _NAMES:
            check_field(value, where, field, str, none=optional)
            known = _NAMES[key]() if _NAMES[key] else None
            name = value.lower() if key == "model" and value is not None else value
            if known is not None and name is not None and name not in known:
                raise DamagedFileError(f"{where}: field {field!r} is {value!r}"[:200]
                                       + f"; known: {', '.join(known)}")
        elif key in _COUNTS:
            check_field(value, where, field, int, low=0 if key in ("patience", "warmup") else 1,
                        high=2 ** 31 - 1, none=optional)
        elif key in _NUMBERS:
            check_field(value, where, field, float, low=0 if key == "lr" else None,
                        none=optional)
        elif key == "seed":
            check_field(value, where, field, int, low=0, high=2 ** 32 - 1)
        elif key == "binarize":
            if value not in (None, False, "threshold", "dynamic"):
                raise DamagedFileError(f"{where}: field {field!r} should be 'threshold' or "
                                       f"'dynamic', found {value!r}"[:300])
        elif key == "hidden":
            check_field(value, where, field, list)
            if not value:
                raise DamagedFileError(f"{where}: field {field!r} is empty; it lists the "
                                       "widths of the hidden layers")
            for i, w in enumerate(value):
                check_field(w, where, f"{field}[{i}]", int, low=1, high=2 ** 31 - 1)


def cmd_train(args):
    """Train (or with ``--resume`` continue) a run; returns the exit status."""
    try:
        if args.resume:
            args = _resume_settings(args)
        elif args.out is None:
            raise ValueError("train needs --out DIR (a new run folder) or --resume DIR")
        _check_settings(args)
        _join(args)                       # NumPyro's processes: jax.distributed, before JAX runs
        writer = distributed.is_main()    # process 0 alone writes and prints
        if not writer:
            return _train(args, writer)
        # the output folder is checked before anything is loaded or trained: nothing of yours
        # is ever replaced, and an impossible --out fails now, not after training; then it is
        # locked (one writer) until the run is saved
        if not args.resume:
            check_run_dir(args.out, overwrite=args.overwrite, protect=[args.data_dir],
                          writes=RUN_FILES)
        with writing(args.out):
            return _train(args, writer)
    finally:
        distributed.finish()


def _join(args):
    """Join the other processes of a NumPyro run (``--coordinator`` or the environment a
    launcher sets: ``JAX_COORDINATOR_ADDRESS``, srun, mpirun); nothing for one process or
    for Pyro (torchrun starts its process group)."""
    given = [getattr(args, k, None) for k in ("coordinator", "num_processes", "process_id")]
    if backends.get(args.backend).multi_process:      # torchrun's processes (Pyro)
        if any(v is not None for v in given):
            raise ValueError("--coordinator, --num-processes and --process-id join NumPyro's "
                             "processes; Pyro's are started by torchrun (docs/devices.md)")
        return
    if any(v is not None for v in given) or distributed.launched():
        distributed.initialize(*given)


def _check_settings(args):
    """The settings used after training, checked before it (so a mistake costs no training)."""
    check_count(args.eval_samples, "--eval-samples")
    check_count(args.checkpoint_every, "--checkpoint-every")
    for key in ("epochs", "batch_size", "latent_dim", "num_particles", "patience"):
        if getattr(args, key, None) is not None:
            check_count(getattr(args, key), "--" + key.replace("_", "-"))


def _train(args, writer):
    if not args.resume:
        if writer:
            check_run_dir(args.out, overwrite=args.overwrite, protect=[args.data_dir],
                          writes=RUN_FILES)
    model_cls = {k.lower(): v for k, v in MODELS.items()}.get(args.model.lower())
    if model_cls is None:
        raise ValueError(f"unknown --model {args.model!r}; known: "
                         f"{sorted(k.lower() for k in MODELS)}")
    binarize = needs_binary(args.likelihood) and (args.binarize or "threshold")
    ds = load_data(args.dataset, args.data_dir, args.seed, binarize)
    if binarize == "threshold":
        print(f"likelihood {args.likelihood!r} needs binary data: pixels binarized at 0.5")
    elif binarize == "dynamic":
        print("dynamic binarization: a fresh Bernoulli draw of the pixels at every step")
    shape = ds.image_shape if args.encoder == "conv" or args.decoder == "conv" else None
    model = model_cls(input_dim=ds.train.x.shape[1], latent_dim=args.latent_dim,
                      hidden=args.hidden, prior=args.prior, likelihood=args.likelihood,
                      backend=args.backend, image_shape=shape, encoder=args.encoder,
                      decoder=args.decoder)
    if args.objective is None:
        args.objective = "enum" if model.needs_enumeration else "elbo"
    opts = {k: getattr(args, k) for k in ("num_particles", "alpha", "beta", "warmup")
            if getattr(args, k) is not None}
    data_info = {"dataset": args.dataset, "data_dir": args.data_dir, "data_seed": args.seed,
                 "binarize": binarize, "image_shape": ds.image_shape}
    recorded = {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in ((k, getattr(args, k)) for k in _TRAIN_SETTINGS)}
    verb = "resuming" if args.resume else "training"
    if writer:
        print(f"{verb} {type(model).__name__} (prior={args.prior}, likelihood={args.likelihood}) "
              f"with {args.objective} on {ds!r}, backend {args.backend}; checkpoints in "
              f"{args.out}/")
    res = pv.fit(model, ds.train, objective=args.objective, epochs=args.epochs,
                 batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                 seed=args.seed, validation=ds.valid,
                 patience=args.patience, progress=not args.no_progress, clip_norm=args.clip_norm,
                 binarize="dynamic" if binarize == "dynamic" else None,
                 checkpoint=args.out, checkpoint_every=args.checkpoint_every,
                 resume=args.resume or None, overwrite=args.overwrite,
                 devices=getattr(args, "devices", None), device=getattr(args, "device", None),
                 run_info={"data": data_info, "cli": recorded}, **opts)
    if res.status == "interrupted":          # fit printed how to resume; 130, 143 or 129
        return 128 + int(getattr(signal, res.stopped_by or "SIGINT"))
    if res.status == "diverged":
        if not writer:
            return EXIT_DIVERGED
        print(f"probvae train: {res.message}\nthe parameters before it are saved in "
              f"{args.out}/ (pv.load reads them)", file=sys.stderr)
        return EXIT_DIVERGED
    t0 = time.perf_counter()          # every process scores its share (inference/sharding.py)
    scores = pv.evaluate(res, ds.test, num_samples=args.eval_samples, seed=args.seed)
    if not writer:
        return 0
    scores = finite(scores, args.out)
    sec = res.history["seconds"]
    metrics = {"test": {k: v for k, v in scores.items()}, "eval_seconds": time.perf_counter() - t0,
               "first_epoch_seconds": sec[0],
               "epoch_seconds_median": float(np.median(sec[1:])) if len(sec) > 1 else sec[0],
               "epochs_run": len(sec), "best_epoch": res.best_epoch}
    out = pv.save(res, args.out, extra={"data": data_info, "cli": recorded}, overwrite=True,
                  metrics=metrics)
    print_scores(scores)
    print(f"seconds per epoch    {metrics['epoch_seconds_median']:.4f} "
          f"(first epoch, with compilation: {sec[0]:.2f})")
    print(f"wrote {out}/ (config.json, params.npz, history.json, metrics.json, checkpoint)")
    return 0
