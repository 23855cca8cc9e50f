"""The epoch loop that ``fit`` runs on either backend, and the run folder it writes.

``train`` owns what is the same on both backends: resuming, the epochs, history and early
stopping (:mod:`.tracker`), divergence, Ctrl-C / SIGTERM / SIGHUP, and checkpoints (:mod:`.train_state`) in a run
folder (``config.json``, ``params.npz``, ``history.json``); each backend's ``Loop`` runs epochs
and moves its state in and out.

``train`` takes the model, its loop, the fit's :class:`~.config.TrainConfig` and a
:class:`Run`: where the fit writes and what it continues from.

Examples
--------
>>> from probvae.models import VAE
>>> from probvae.inference.config import TrainConfig
>>> config = TrainConfig("elbo", model=VAE(input_dim=4, latent_dim=2).config())
>>> run_config(config)["files"][:2], Run(every=5).resuming
(['config.json', 'params.npz'], False)
"""
from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from probvae.outputs import (FORMAT, DamagedFileError, check_field, check_run_dir, is_run,
                             json_text, read_json, write_json, write_npz)

from . import optimizers, train_state
from .config import TrainConfig
from .result import FitResult
from .tracker import StopRequest, Tracker, check_state

__all__ = ["train", "Run", "run_config", "resolve_dirs", "RUN_FILES"]

#: the run-folder files a checkpointed fit writes (config.json's manifest; the numbered
#: state files are named by checkpoint.json)
RUN_FILES = list(train_state.RUN_FILES)
#: settings a resumed fit may change; every other one must match the checkpoint
_CHANGEABLE = ("epochs", "lr", "clip_norm", "patience")


@dataclass(frozen=True)
class Run:
    """Where a fit writes and what it continues from.

    Parameters
    ----------
    folder : Path, optional
        The run folder the fit writes (``checkpoint=``); None: none.
    resume : Path, optional
        The folder whose last checkpoint the fit continues.
    state : TrainState, optional
        A result's training state in memory that the fit continues (``pv.fit(res, ...)``).
    overwrite : bool
        ``folder`` may replace an earlier run.
    every : int
        Epochs between checkpoints.
    info : dict, optional
        ``config.json``'s ``"data"`` and ``"cli"`` records (``run_info=``).

    Examples
    --------
    >>> Run(folder=Path("runs/a"), resume=Path("runs/a")).resuming
    True
    """

    folder: Optional[Path] = None
    resume: Optional[Path] = None
    state: Optional[train_state.TrainState] = None
    overwrite: bool = False
    every: int = 1
    info: Optional[dict] = None

    @property
    def resuming(self) -> bool:
        """Whether the fit continues a checkpoint (in a folder or in memory)."""
        return self.resume is not None or self.state is not None


def run_config(config: TrainConfig, status="running", best_epoch=None, extra=None):
    """The ``config.json`` of a run folder: model config, objective, settings, manifest."""
    record = {"format": FORMAT, "version": train_state.CONFIG_VERSION,
              "model": config.model,
              "objective": config.objective, "options": config.options,
              "best_epoch": best_epoch, "seed": config.seed, "status": status,
              "files": list(RUN_FILES)}
    return {**record, **(extra or {})}


def _counted(epoch):
    """An epoch index (from 0, as the loop counts) as a user counts it (from 1)."""
    return None if epoch is None else epoch + 1


def _dump(obj):
    return lambda tmp: tmp.write_text(json_text(obj))


class _Writer:
    """The run folder of a checkpointed fit: its config, checkpoints and the result files."""

    def __init__(self, path, config):
        self.path, self.config = Path(path), config
        self.counter = 0

    def start(self, overwrite):
        train_state.write_folder(self.path, {"config.json": _dump(self.config)},
                                 overwrite=overwrite, plans=RUN_FILES)

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
                   {**self.config, "status": status, "best_epoch": _counted(tracker.best_epoch)})


def resolve_dirs(checkpoint, resume):
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


def _check_resumable(meta, fit_meta, path, pointer=None):
    """A resumed fit must train the same model on the same data with the same settings; a
    saved setting of a kind the fit never writes is damage, not another setting. ``path``:
    the run folder (``pointer``: its checkpoint.json), or for a result continued in memory
    the words for it and for its state."""
    if pointer is None:
        path = Path(path)
        pointer = path / train_state.POINTER
    saved = check_field(meta["fit"], pointer, "fit", dict)
    optimizers.check_resumable(saved, fit_meta, f"cannot resume from {path}" if isinstance(
        path, Path) else f"cannot continue {path}")      # the same optimizer, lr of its kind
    for key, value in fit_meta.items():
        if key in _CHANGEABLE:
            continue
        if key not in saved and value is not None:
            raise DamagedFileError(f"{pointer}: field 'fit.{key}' is missing")
        if key in _FIT_FIELDS and key in saved:
            kind, low, high = _FIT_FIELDS[key]
            check_field(saved[key], pointer, f"fit.{key}", tuple(k for k in kind if k),
                        low=low, high=high, none=None in kind)
        if saved.get(key) != value:
            what = f"{key} was {saved.get(key)!r} there and is {value!r} now" + (
                " (fingerprints of the data: other data)" if key in ("data", "validation")
                else "")
            head, verb = ((f"cannot resume from {path}", "resume") if isinstance(path, Path)
                          else (f"cannot continue {path}", "continue"))
            raise ValueError(f"{head}: {what}; {verb} with the same "
                             f"{'data (and labels=)' if key == 'data' else key} (settings "
                             f"that may change: {', '.join(_CHANGEABLE)})")


#: the kinds (None: null) and ranges of the settings in checkpoint.json's "fit"
_FIT_FIELDS = {"objective": ((str,), None, None), "objective_options": ((dict,), None, None),
               "batch_size": ((int,), 1, 2 ** 31 - 1), "seed": ((int,), 0, 2 ** 32 - 1),
               "missing": ((str, None), None, None), "binarize": ((str, bool, None), None, None),
               "model": ((dict, None), None, None), "data": ((str,), None, None),
               "validation": ((str,), None, None)}


def _restore(loop, meta, arrays, files):
    """Put a checkpoint's training state into ``loop`` (``files``: its ``checkpoint.json``
    and state file); returns its best parameters, or None. The loop checks the fields and
    arrays it reads, naming them; any other failure is named as damage of those files too."""
    try:
        loop.restore(meta["loop"], arrays, where=files)
        best_arrays = {k[len("best/"):]: v for k, v in arrays.items() if k.startswith("best/")}
        return loop.snapshot_from_arrays(best_arrays) if meta.get("has_best") else None
    except (DamagedFileError, MemoryError):
        raise
    except Exception as err:
        raise DamagedFileError(f"{files[0]}: field 'loop' and "
                               f"{getattr(files[1], 'name', files[1])} do not restore "
                               f"this model's training state ({type(err).__name__}: "
                               f"{str(err)[:300]}); the checkpoint is damaged: restore it, or "
                               "train again without resume") from None




def _state_limit(loop) -> int:
    """The most bytes a checkpoint of this loop can hold: its parameters and optimizer state
    (measured on the loop as it starts), room for the optimizer's moments that Pyro makes on
    the first step and the best parameters, and 64 MiB for the rest (random states, an
    unfinished epoch's order). A state file that declares more is refused before it is
    read."""
    template = sum(np.asarray(a).nbytes for a in loop.state()[1].values())
    return 4 * template + (1 << 26)


#: how errors name the training state of a result continued in memory, and its arrays
_IN_MEMORY = ("the result's training state", "its arrays")


def train(model, loop, config: TrainConfig, run: Run, *, stop=None, started=None):
    """Run the epochs of ``loop`` (a backend's ``Loop``, for the built ``model``) with the
    settings of ``config``: resume, history and early stopping, divergence, Ctrl-C, the run
    folder's checkpoints (``run``); returns the :class:`FitResult`.

    Parameters
    ----------
    model : Model or CustomModel
        The built model the loop trains (the result holds it).
    loop : Loop
        The backend's training loop (:class:`.loop.Loop`), entered.
    config : TrainConfig
        The fit's settings.
    run : Run
        The run folder it writes, and the checkpoint (in a folder, or a result's training
        state in memory) it continues from.
    stop : StopRequest, optional
        The :class:`~.tracker.StopRequest` that ``fit`` entered before building the loop (a
        signal that came while it was building or compiling stops before the first step).
    started : float, optional
        ``time.perf_counter()`` when the fit started (the first epoch's seconds count from
        there: building and compiling included); default: now.

    Returns
    -------
    FitResult
    """
    started = time.perf_counter() if started is None else started
    epochs, fit_meta = config.epochs, config.fit_meta
    run_dir, resume_dir, overwrite, every = run.folder, run.resume, run.overwrite, run.every
    start, best, counter = 0, None, 0
    meta = None
    if run.resuming:
        if resume_dir is not None:
            meta, arrays = train_state.read(resume_dir, max_bytes=_state_limit(loop))
            files = (Path(resume_dir) / train_state.POINTER, Path(resume_dir) / meta["arrays"])
            _check_resumable(meta, fit_meta, resume_dir)
        else:
            meta, arrays = run.state.read()
            files = _IN_MEMORY
            _check_resumable(meta, fit_meta, "this result", pointer=files[0])
        check_state(meta["tracker"], files[0])       # checked before anything is written
        best = _restore(loop, meta, arrays, files)
        start, counter = meta["epoch"], meta["counter"]
    tracker = Tracker(epochs, config.patience, loop.valid is not None, config.progress,
                      desc=f"{_name(model)}[{model.backend}] {config.objective}",
                      metric_fn=config.metric, initial=min(start, epochs))
    writer = None
    if run_dir is not None:
        extra = dict(run.info or {})
        if resume_dir is not None and is_run(resume_dir):
            old = read_json(Path(resume_dir) / "config.json")
            extra = {**{k: v for k, v in old.items() if k in ("data", "cli")}, **extra}
        writer = _Writer(run_dir, run_config(config, extra=extra))
        if resume_dir is None:
            writer.start(overwrite)
        elif Path(run_dir).resolve() != Path(resume_dir).resolve():
            check_run_dir(run_dir, overwrite=overwrite, writes=RUN_FILES)
            writer.start(overwrite)
        writer.counter = counter
    if meta is not None:
        tracker.restore(meta["tracker"], files[0])
    tracker.restart_clock(started)
    status, where = "completed", None
    epoch = done = start
    last_good = loop.snapshot()
    try:
        with (contextlib.nullcontext(stop) if stop is not None else StopRequest()) as stop:
            if start < epochs and loop.stop_agreed(stop):   # asked while building, compiling
                status, where = "interrupted", start
            for epoch in range(start, epochs if where is None else start):
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
                done = epoch + 1
                if improved:
                    best = loop.snapshot()
                if writer is not None and ((epoch + 1) % every == 0 or halt
                                           or epoch + 1 == epochs):
                    writer.write(loop, tracker, epoch + 1, best,
                                 "running" if epoch + 1 < epochs else "completed", fit_meta,
                                 best if best is not None else loop.snapshot())
                if halt:
                    status = "stopped_early"
                    break
                if loop.stop_agreed(stop) and epoch + 1 < epochs:
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
    by_cli = writer is not None and bool(writer.config.get("cli"))
    stopped_by = stop.signal if status == "interrupted" else None
    message = _message(status, tracker, where, config, run_dir, loop, by_cli, stopped_by)
    if writer is not None and status in ("interrupted", "diverged", "stopped_early"):
        if status == "interrupted":
            writer.write(loop, tracker, where if where is not None else epoch, best, status,
                         fit_meta, kept)
        else:                         # keep the last good training state; update the result
            writer.finish(loop, tracker, status, kept)
    final = None if status == "diverged" else _final_state(
        loop, tracker, where if status == "interrupted" and where is not None else done,
        writer.counter if writer is not None else counter, best, status, fit_meta)
    if status == "diverged":
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    elif status == "interrupted":
        print(message, file=sys.stderr)
    return FitResult(model, params, tracker.history, config.objective, config.options,
                     _counted(tracker.best_epoch), status=status, message=message,
                     checkpoint=None if run_dir is None else str(run_dir),
                     stopped_by=stopped_by, training_state=final)


def _final_state(loop, tracker, epoch, counter, best, status, fit_meta):
    """Where the fit stopped, as :meth:`_Writer.write` would checkpoint it (its JSON fields as
    ``checkpoint.json`` holds them, its arrays copied out of the live tensors): what
    ``pv.fit(res, data, epochs=N)`` continues from and ``pv.save`` writes."""
    loop_meta, arrays = loop.state()
    if best is not None:
        arrays.update({f"best/{k}": v for k, v in loop.snapshot_to_arrays(best).items()})
    meta = {"epoch": int(epoch), "counter": int(counter), "status": status,
            "history": tracker.history, "tracker": tracker.state(), "loop": loop_meta,
            "fit": fit_meta, "has_best": best is not None}
    return train_state.TrainState(meta=json.loads(json_text(meta)),
                                  arrays={k: np.array(v, copy=True) for k, v in arrays.items()})


def _name(model) -> str:
    """The model's name in progress bars: its ``display_name`` (ADGM/SDGM), else its class."""
    return model.display_name


#: how a stop signal is named in messages
_SIGNAL_NAMES = {"SIGINT": "Ctrl-C", "SIGTERM": "SIGTERM", "SIGHUP": "SIGHUP", None: "Ctrl-C"}


def _message(status, tracker, where, config, run_dir, loop, by_cli=False, stopped_by=None):
    if status == "completed":
        return ""
    epochs = config.epochs
    if status == "stopped_early":
        return (f"stopped early: the validation loss did not improve for {config.patience} "
                f"epochs; kept epoch {tracker.best_epoch + 1}")
    if status == "diverged":
        e = tracker.diverged_at
        loss = tracker.history["train_loss"][-1]
        kept = (f"the parameters of the best validation epoch {tracker.best_epoch + 1}"
                if tracker.best_epoch is not None else
                (f"the parameters of epoch {e}" if e > 0 else "the initial parameters"))
        clip = "" if config.clip_norm else " or pass clip_norm=10"
        lower = (f"Lower lr (now {config.lr:g}, e.g. lr={config.lr / 10:g})"
                 if isinstance(config.lr, float) else "Lower the learning rate")
        return (f"training diverged at epoch {e + 1} (loss {loss}); stopped and kept "
                f"{kept}. {lower}{clip}")
    done = where if where is not None else len(tracker.history["train_loss"])
    step = (f" (inside epoch {done + 1}, after step {loop.pending['step']})"
            if loop.pending else "")
    # `probvae train --resume` takes only the runs it started (it rebuilds them from the
    # settings they record); a run of pv.fit resumes in Python
    how = ("pass checkpoint='runs/NAME' to fit to be able to resume" if run_dir is None else
           f"resume with probvae train --resume {run_dir}" if by_cli else
           f"resume with pv.fit(..., resume={str(run_dir)!r})")
    saved = "" if run_dir is None else f"; checkpoint written to {run_dir}"
    return (f"stopped by {_SIGNAL_NAMES.get(stopped_by, stopped_by)} after {done} of {epochs} "
            f"epochs{step}{saved}; {how}")
