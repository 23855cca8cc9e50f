"""``fit``: one function for both backends, dispatching to a per-backend loop.

``fit`` owns what is the same on both backends: checking the arguments, the epoch loop,
history and early stopping (:mod:`.tracker`), divergence, Ctrl-C, and checkpoints
(:mod:`.train_state`); each backend's ``Loop`` runs epochs and moves its state in and out.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from probvae.data import as_split
from probvae.data.streaming import Stream
from probvae.backends.base import check_device
from probvae.models import CustomModel
from probvae.outputs import (FORMAT, check_run_dir, is_run, json_text, read_json, write_json,
                             write_npz, write_run)

from . import distributed, objectives, train_state
from .inputs import (check_batch_keys, check_binarize, check_count, check_missing,
                     check_positive, check_seed, labelled_batch, model_batch, StreamedBatch)
from .result import FitResult
from .scoring import class_probabilities
from .tracker import StopRequest, Tracker

__all__ = ["fit", "run_config"]

#: the training loop of each backend (a module with a ``Loop`` class), imported on first use
_LOOPS = {"pyro": "probvae.inference.pyro_loop", "numpyro": "probvae.inference.numpyro_loop"}
#: the run-folder files a checkpointed fit writes (config.json's manifest)
RUN_FILES = ["config.json", "params.npz", "history.json", train_state.POINTER,
             train_state.PATTERN]
#: settings a resumed fit may change; every other one must match the checkpoint
_CHANGEABLE = ("epochs", "lr", "clip_norm", "patience")


def _as_model(model, backend):
    if isinstance(model, tuple):
        if len(model) != 2:
            raise TypeError("a custom model is a (model, guide) pair of functions")
        if backend is None:
            raise ValueError("pass backend='pyro' or backend='numpyro' with a (model, guide) pair")
        return CustomModel(model[0], model[1], backend)
    if not hasattr(model, "build"):
        raise TypeError(f"fit takes a probvae model or a (model, guide) pair, got {type(model)}")
    if backend is not None and backend != model.backend:
        raise ValueError(f"the model was made for backend {model.backend!r} but fit got "
                         f"backend={backend!r}; make the model with backend={backend!r}")
    return model


def _accuracy_metric(model, validation, valid_batch):
    """Validation accuracy per epoch for models with a classifier and labelled validation."""
    y = as_split(validation, allow_missing=True).y
    if not getattr(model, "is_classifier", False) or y is None:
        return None
    x = valid_batch["x"]

    def metric(params):
        probs = class_probabilities(model, params, x)
        return {"valid_accuracy": float((probs.argmax(1) == y).mean())}
    return metric


def _check_keywords(objective, bk_name, options):
    """Unknown keywords of fit: a misspelled fit argument gets a "did you mean"."""
    try:
        allowed_obj = objectives.get(objective).options(bk_name)
    except ValueError:
        return
    unknown = [k for k in options if k not in allowed_obj]
    if not unknown:
        return
    fit_args = [p for p in inspect.signature(fit).parameters if p not in ("model", "data")]
    for key in unknown:
        close = difflib.get_close_matches(key, fit_args + list(allowed_obj), n=1, cutoff=0.75)
        if close:
            raise TypeError(f"fit() got an unexpected keyword argument {key!r}; did you mean "
                            f"{close[0]!r}?")


def run_config(model, objective, options, status="running", best_epoch=None, extra=None):
    """The ``config.json`` of a run folder: model config, objective, settings, manifest."""
    config = {"format": FORMAT, "version": 1,
              "model": model.config() if hasattr(model, "config") and not isinstance(
                  model, CustomModel) else None,
              "objective": objective, "options": options, "best_epoch": best_epoch,
              "seed": options.get("seed", 0), "status": status, "files": list(RUN_FILES)}
    return {**config, **(extra or {})}


def _dump(obj):
    return lambda tmp: tmp.write_text(json_text(obj))


class _Run:
    """The run folder of a checkpointed fit: its config, checkpoints and the result files."""

    def __init__(self, path, config):
        self.path, self.config = Path(path), config
        self.counter = 0

    def start(self, overwrite):
        write_run(self.path, {"config.json": _dump(self.config)}, overwrite=overwrite)

    def write(self, loop, tracker, epoch, best, status, fit_meta, result_params):
        loop_meta, arrays = loop.state()
        if best is not None:
            arrays.update({f"best/{k}": v for k, v in loop.snapshot_to_arrays(best).items()})
        self.counter += 1
        train_state.write(self.path, {"epoch": epoch, "counter": self.counter, "status": status,
                                      "history": tracker.history, "tracker": tracker.state(),
                                      "loop": loop_meta, "fit": fit_meta,
                                      "has_best": best is not None}, arrays)
        self.finish(loop, tracker, status, result_params)

    def finish(self, loop, tracker, status, params):
        """The result files (what ``pv.load`` reads): parameters, history, config."""
        write_npz(self.path / "params.npz", loop.bk.params_to_numpy(loop.result(params)))
        write_json(self.path / "history.json", tracker.history)
        write_json(self.path / "config.json",
                   {**self.config, "status": status, "best_epoch": tracker.best_epoch})


def _resolve_dirs(checkpoint, resume):
    """``(run_dir, resume_dir)`` from ``checkpoint=`` and ``resume=``."""
    if resume is True:
        if checkpoint is None:
            raise ValueError("resume=True continues the run in checkpoint=DIR; pass checkpoint "
                             "too, or resume='runs/NAME'")
        return Path(checkpoint), (Path(checkpoint) if train_state.exists(checkpoint) else None)
    if resume in (None, False):
        return (Path(checkpoint) if checkpoint is not None else None), None
    resume = Path(resume)
    if not train_state.exists(resume):
        raise FileNotFoundError(f"cannot resume: {resume} holds no training checkpoint "
                                f"({train_state.POINTER} is missing)")
    return (Path(checkpoint) if checkpoint is not None else resume), resume


def _check_resumable(meta, fit_meta, path):
    """A resumed fit must train the same model on the same data with the same settings."""
    saved = meta["fit"]
    for key, value in fit_meta.items():
        if key in _CHANGEABLE:
            continue
        if saved.get(key) != value:
            raise ValueError(f"cannot resume from {path}: {key} was {saved.get(key)!r} there "
                             f"and is {value!r} now; resume with the same {key} (settings "
                             f"that may change: {', '.join(_CHANGEABLE)})")


def fit(model, data, *, objective=None, epochs=None, batch_size=None, lr=1e-3, seed=0,
        validation=None, patience=None, progress=True, backend=None, labels=None,
        missing=None, binarize=None, clip_norm=None, checkpoint=None, checkpoint_every=1,
        resume=None, overwrite=False, run_info=None, devices=None, device=None,
        **objective_options):
    """Train a model (or a user's ``(model, guide)`` pair) by stochastic variational inference.

    Parameters
    ----------
    model : Model or (callable, callable)
        A probvae model (its ``backend`` decides the loop) or a pair of Pyro/NumPyro functions
        ``model(x)``, ``guide(x)`` with ``backend=`` given.
    data : Split, array (N, D) or Stream
        Training data; checked against the likelihood's support before training starts. A
        :func:`probvae.data.stream` over a ``.npy``/IDX file trains on data larger than
        memory, one chunk of rows at a time (chunks in random order, rows shuffled within
        each).
    objective : str, optional
        A registered objective name (see :mod:`probvae.inference.objectives`). Default:
        ``"enum"`` for a model with discrete latents to sum out (:class:`SSVAE`),
        ``"elbo"`` otherwise.
    epochs, batch_size, lr : int, int, float
        Passes over the data; mini-batch size (the last partial batch of each shuffled epoch is
        dropped); Adam learning rate. Defaults: 50 epochs of batch 128, or the model's own
        ``fit_defaults`` (:class:`SSVAE`: 100 epochs of batch 32).
    seed : int
        Seeds networks, parameter initialisation, shuffling and sampling: the same seed on the
        same backend gives the same numbers. An integer in 0..2**32-1.
    validation : Split or array, optional
        Validation data: its loss is recorded each epoch, and the best epoch's parameters are
        kept.
    patience : int, optional
        Stop when the validation loss has not improved for this many epochs.
    progress : bool
        Show a tqdm progress bar.
    backend : str, optional
        Required for a ``(model, guide)`` pair; must match a model's own backend otherwise.
    labels : bool mask (N,) or int index, optional
        For models that learn from labels (:class:`~probvae.models.SSVAE`): which training
        examples have their label ``data.y`` observed. Each step then takes one unlabelled batch
        (labels summed out) and one labelled batch. With labelled validation data the history
        also gets ``valid_accuracy``.
    missing : None or "mask"
        ``"mask"``: NaN cells of the data are missing values, left out of the likelihood (the
        bound covers the observed cells only; the encoder sees the likelihood's ``fill``
        value there). ``None`` (default): NaN is an error. Scoring functions later use the
        same setting.
    binarize : None or "dynamic"
        ``"dynamic"``: the data are grey values in [0, 1] and every training step draws fresh
        binary pixels from them (Bernoulli with probability x), the standard for MNIST
        likelihood tables; needs a likelihood of binary data (``bernoulli``). The validation
        data are binarized once (from ``seed``); evaluate on a test set binarized once, e.g.
        ``data.test.binarize(stochastic=True, seed=0)``.
    clip_norm : float, optional
        Clip the gradient's global norm to this value before each step (both backends).
    checkpoint : str or Path, optional
        A run folder (new, empty, or an earlier run with ``overwrite=True``) that receives,
        atomically, every ``checkpoint_every`` epochs and when training stops: parameters,
        optimizer and random state, epoch, history and the best parameters so far (JSON and
        NumPy arrays). ``pv.load`` reads it at any time, also after a kill.
    checkpoint_every : int
        Epochs between checkpoints.
    resume : str, Path or True, optional
        Continue the run saved in this folder (``True``: in ``checkpoint``, if it holds one,
        else start it) where its last checkpoint left it. Model, data and settings must be the
        same; ``epochs``, ``lr``, ``clip_norm`` and ``patience`` may change. A resumed run
        ends with the same parameters and history as one never stopped.
    overwrite : bool
        Allow ``checkpoint`` to replace an earlier run (only the files probvae wrote there).
    run_info : dict, optional
        JSON-able records for the run folder's ``config.json``: ``"data"`` (which data set)
        and ``"cli"`` (the command's settings), as ``probvae train`` writes them.
    devices : int, "all" or list, optional
        NumPyro: split every batch across this many JAX devices (data parallelism with
        ``jax.sharding``: parameters replicated, gradients summed by XLA; the same numbers
        as one device, within float rounding). ``batch_size`` must divide evenly. Pyro
        trains on several devices as several processes instead: ``torchrun`` (see
        :mod:`probvae.inference.distributed`). Default: one device.
    device : None, "cpu" or "gpu"
        Where training runs. ``None`` (default): a GPU when the library sees one (the CUDA
        build of jax or torch), else the CPU; ``"gpu"`` without one is an error naming the
        install command. On Pyro the fitted model is moved back to the CPU afterwards, and
        on both backends its parameters save as NumPy arrays, so a model trained on a GPU
        loads, scores and samples on a machine without one.
    **objective_options
        Passed to the objective (``num_particles``, ``alpha``, ``beta``, ``warmup``).

    Returns
    -------
    FitResult
        ``status`` says how training ended (``"completed"``, ``"stopped_early"``,
        ``"interrupted"`` by Ctrl-C, ``"diverged"`` on a non-finite loss: the parameters are
        then the best ones before it) and ``message`` what to do next.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> vae = pv.models.VAE(input_dim=64, latent_dim=4, hidden=(64,), backend="numpyro")
    >>> res = pv.fit(vae, data.train, objective="iwae", num_particles=4, epochs=2,
    ...              validation=data.valid, progress=False)
    >>> sorted(res.history), res.status
    (['kl_weight', 'seconds', 'train_loss', 'valid_loss'], 'completed')
    """
    model = _as_model(model, backend)
    if objective is None:
        objective = "enum" if getattr(model, "needs_enumeration", False) else "elbo"
    own = getattr(model, "fit_defaults", {})
    epochs = own.get("epochs", 50) if epochs is None else epochs
    batch_size = own.get("batch_size", 128) if batch_size is None else batch_size
    _check_keywords(objective, model.bk.name, objective_options)
    epochs = check_count(epochs, "epochs")
    batch_size = check_count(batch_size, "batch_size")
    lr = check_positive(lr, "lr")
    seed = check_seed(seed)
    checkpoint_every = check_count(checkpoint_every, "checkpoint_every")
    if clip_norm is not None:
        clip_norm = check_positive(clip_norm, "clip_norm")
    if patience is not None:
        patience = check_count(patience, "patience")
        if validation is None:
            raise ValueError("patience (early stopping) needs validation data: pass validation=")
    missing = check_missing(missing)
    binarize = check_binarize(binarize)
    device = check_device(device, model.bk)
    if run_info is not None and (not isinstance(run_info, dict) or set(run_info) - {"data", "cli"}):
        raise ValueError("run_info takes a dict with the keys 'data' and/or 'cli'")
    run_dir, resume_dir = _resolve_dirs(checkpoint, resume)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not model.bk.multi_process:
            raise ValueError("several processes (torchrun) train Pyro models; a NumPyro model "
                             "uses several devices from one process: pv.fit(..., devices=N)")
        if not distributed.is_main():        # rank 0 alone writes; every rank may resume
            run_dir, progress = None, False
    if run_dir is not None and resume_dir is None:
        if is_run(run_dir) and train_state.exists(run_dir) and not overwrite:
            raise ValueError(f"{run_dir} holds an earlier run with a checkpoint: pass "
                             f"resume={str(run_dir)!r} to continue it, or overwrite=True to "
                             "start again")
        check_run_dir(run_dir, overwrite=overwrite)       # before any work: nothing lost
    elbo, schedule = objectives.build(objective, model.bk,
                                      max_plate_nesting=model.max_plate_nesting,
                                      **objective_options)
    if getattr(model, "needs_enumeration", False) and not objectives.get(objective).enumerates:
        raise ValueError(f"{type(model).__name__} sums its discrete latents out by enumeration: "
                         f"use objective='enum' (got {objective!r})")
    if schedule is not None and not model.takes_kl_weight:
        raise ValueError(f"objective {objective!r} weights the KL term, which needs a model that "
                         "takes kl_weight= (the built-in models do)")
    if isinstance(data, Stream):
        if labels is not None:
            raise ValueError("labels= needs the data in memory; a stream from disk carries x "
                             "only")
        train = StreamedBatch(model, data, missing, binarize)
        check_batch_keys(model, train.chunk(0))
    else:
        train = model_batch(model, data, "training data", missing, binarize)
        check_batch_keys(model, train)
    valid = (model_batch(model, validation, "validation data", missing, binarize)
             if validation is not None else None)
    if valid is not None and binarize == "dynamic":      # one fixed draw, comparable epochs
        rng = np.random.default_rng([seed, 1])
        valid["x"] = (rng.random(valid["x"].shape) < valid["x"]).astype(np.float32)
    labelled = (labelled_batch(model, data, labels, missing, binarize)
                if labels is not None else None)
    objective_name = objective if isinstance(objective, str) else objective.name
    options = dict(objective_options, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                   patience=patience, missing=missing)
    if binarize is not None:
        options["binarize"] = binarize
    if clip_norm is not None:
        options["clip_norm"] = clip_norm
    if labelled is not None:
        options["num_labelled"] = int(len(labelled["y"]))
    fit_meta = {"objective": objective_name, "objective_options": objective_options,
                "batch_size": batch_size, "seed": seed, "missing": missing,
                "binarize": binarize,
                "model": run_config(model, objective_name, options)["model"],
                "data": (train.fingerprint if isinstance(train, StreamedBatch)
                         else train_state.fingerprint(train, labelled)),
                "validation": train_state.fingerprint(valid), "epochs": epochs, "lr": lr,
                "clip_norm": clip_norm, "patience": patience}
    fit_meta = json.loads(json.dumps(fit_meta, default=str))   # as a checkpoint holds it
    loop_cls = importlib.import_module(_LOOPS[model.backend]).Loop
    started = time.perf_counter()   # the first epoch's seconds include building and compiling
    with model.bk.lock:             # building networks touches the library's global RNG too
        built = model.build(seed)
        metric = _accuracy_metric(built, validation, valid) if validation is not None else None
        cache_key = None if fit_meta["model"] is None else json.dumps(
            [fit_meta["model"], objective_name, objective_options, missing, binarize],
            sort_keys=True, default=str)
        with model.bk.placement(device):     # data, parameters and steps on that device
            loop = loop_cls(built, train, valid, elbo, schedule, batch_size=batch_size, lr=lr,
                            seed=seed, labelled=labelled, clip_norm=clip_norm,
                            cache_key=cache_key, binarize=binarize == "dynamic",
                            devices=devices, device=device)
            with (loop if hasattr(loop, "__enter__") else contextlib.nullcontext(loop)):
                return _train(model, built, loop, epochs, patience, progress, metric,
                              options, objective_name, fit_meta, run_dir, resume_dir,
                              overwrite, checkpoint_every, run_info, started)


def _train(model, built, loop, epochs, patience, progress, metric, options, objective_name,
           fit_meta, run_dir, resume_dir, overwrite, every, run_info, started):
    start, best, counter = 0, None, 0
    meta = None
    if resume_dir is not None:
        meta, arrays = train_state.read(resume_dir)
        _check_resumable(meta, fit_meta, resume_dir)
        loop.restore(meta["loop"], arrays)
        best_arrays = {k[len("best/"):]: v for k, v in arrays.items() if k.startswith("best/")}
        best = loop.snapshot_from_arrays(best_arrays) if meta.get("has_best") else None
        start, counter = meta["epoch"], meta["counter"]
    tracker = Tracker(epochs, patience, loop.valid is not None, progress,
                      desc=f"{type(model).__name__}[{model.backend}] {objective_name}",
                      metric_fn=metric, initial=min(start, epochs))
    run = None
    if run_dir is not None:
        extra = dict(run_info or {})
        if resume_dir is not None and is_run(resume_dir):
            old = read_json(Path(resume_dir) / "config.json")
            extra = {**{k: v for k, v in old.items() if k in ("data", "cli")}, **extra}
        run = _Run(run_dir, run_config(model, objective_name, options, extra=extra))
        if resume_dir is None:
            run.start(overwrite)
        elif Path(run_dir).resolve() != Path(resume_dir).resolve():
            check_run_dir(run_dir, overwrite=overwrite)
            run.start(overwrite)
        run.counter = counter
    if meta is not None:
        tracker.restore(meta["tracker"])
    tracker.restart_clock(started)
    status, where = "completed", None
    epoch = start
    last_good = loop.snapshot()
    try:
        with StopRequest() as stop:
            for epoch in range(start, epochs):
                last_good = loop.snapshot()
                loss, finished = loop.epoch(epoch, stop)
                if tracker.initial_loss is None and loop.first_loss is not None:
                    tracker.initial_loss = loop.first_loss      # the untrained model's loss
                if not finished:
                    status, where = "interrupted", epoch
                    break
                valid_loss = loop.validate()
                improved, halt = tracker.record(epoch, loss, valid_loss, loop.kl_weight(epoch),
                                                params=loop.params)
                if tracker.diverged_at is not None:
                    status = "diverged"
                    break
                if improved:
                    best = loop.snapshot()
                if run is not None and ((epoch + 1) % every == 0 or halt
                                        or epoch + 1 == epochs):
                    run.write(loop, tracker, epoch + 1, best,
                              "running" if epoch + 1 < epochs else "completed", fit_meta,
                              best if best is not None else loop.snapshot())
                if halt:
                    status = "stopped_early"
                    break
                if stop.requested and epoch + 1 < epochs:
                    status, where = "interrupted", epoch + 1
                    break
    finally:
        tracker.close()
    if status == "diverged":
        kept = best if best is not None else last_good
        params = loop.result(kept)
    else:
        kept = best if best is not None else loop.snapshot()
        params = loop.result(kept)
    message = _message(status, tracker, where, epochs, options, run_dir, loop)
    if run is not None and status in ("interrupted", "diverged", "stopped_early"):
        if status == "interrupted":
            run.write(loop, tracker, where if where is not None else epoch, best, status,
                      fit_meta, kept)
        else:                         # keep the last good training state; update the result
            run.finish(loop, tracker, status, kept)
    if status == "diverged":
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    elif status == "interrupted":
        print(message, file=sys.stderr)
    return FitResult(built, params, tracker.history, objective_name, options,
                     tracker.best_epoch, status=status, message=message,
                     checkpoint=None if run_dir is None else str(run_dir))


def _message(status, tracker, where, epochs, options, run_dir, loop):
    if status == "completed":
        return ""
    if status == "stopped_early":
        return (f"stopped early: the validation loss did not improve for {options['patience']} "
                f"epochs; kept epoch {tracker.best_epoch + 1}")
    if status == "diverged":
        e = tracker.diverged_at
        loss = tracker.history["train_loss"][-1]
        kept = (f"the best validation epoch {tracker.best_epoch + 1}"
                if tracker.best_epoch is not None else
                (f"epoch {e}" if e > 0 else "the initial parameters"))
        clip = "" if options.get("clip_norm") else " or pass clip_norm=10"
        return (f"training diverged at epoch {e + 1} (loss {loss}); stopped and kept the "
                f"parameters of {kept}. Lower lr (now {options['lr']:g}, e.g. "
                f"lr={options['lr'] / 10:g}){clip}")
    done = where if where is not None else len(tracker.history["train_loss"])
    step = (f" (inside epoch {done + 1}, after step {loop.pending['step']})"
            if getattr(loop, "pending", None) else "")
    how = (f"resume with pv.fit(..., resume={str(run_dir)!r}) or probvae train --resume "
           f"{run_dir}" if run_dir is not None else
           "pass checkpoint='runs/NAME' to fit to be able to resume")
    return f"stopped by Ctrl-C after {done} of {epochs} epochs{step}; {how}"
