"""What both training loops share per epoch: history, progress bar, early stopping, the
watch for a diverging loss, and Ctrl-C turned into a clean stop.

Examples
--------
>>> t = Tracker(epochs=3, patience=None, has_valid=False, progress=False)
>>> t.record(0, 5.0, None, 1.0)
(False, False)
>>> t.record(1, float("nan"), None, 1.0)
(False, True)
>>> t.diverged_at, t.history["train_loss"][-1]
(1, nan)
"""
from __future__ import annotations

import math
import signal
import threading
import time
import warnings

import numpy as np
from tqdm.auto import tqdm

from probvae.outputs import DamagedFileError, check_field

__all__ = ["Tracker", "StopRequest", "GROWTH", "DIVERGED", "MAX_EPOCHS", "check_state",
           "check_history"]

#: a training loss this many times above the best one so far (in scale) draws a warning
GROWTH = 100.0
#: a training loss this many times above the untrained model's (in scale) is divergence
DIVERGED = 1e6


class Tracker:
    """History, progress bar, early stopping and divergence, shared by both loops.

    ``record`` logs an epoch and says ``(improved, stop)``; a non-finite loss, or one
    :data:`DIVERGED` times the untrained model's (``initial_loss``, in scale), stops training
    and sets ``diverged_at``; a loss that grows by orders of magnitude warns once.
    """

    def __init__(self, epochs, patience, has_valid, progress, desc="", metric_fn=None,
                 initial=0):
        self.history = {"train_loss": [], "valid_loss": [], "kl_weight": [], "seconds": []}
        self.patience, self.has_valid, self.metric_fn = patience, has_valid, metric_fn
        self.best, self.best_epoch, self.bad_epochs = math.inf, None, 0
        self.lowest_train = math.inf
        self.diverged_at = None
        self.warned = False
        self.initial_loss = None
        self.bar = tqdm(total=epochs, initial=initial, desc=desc, disable=not progress,
                        unit="epoch", dynamic_ncols=True, leave=True)
        self._t0 = time.perf_counter()

    # ---- checkpoint state -----------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to continue exactly (JSON-able)."""
        return {"history": self.history, "best": _finite_or_none(self.best),
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "lowest_train": _finite_or_none(self.lowest_train), "warned": self.warned,
                "initial_loss": self.initial_loss}

    def restore(self, state: dict, where="the checkpoint"):
        """Continue from a :meth:`state` read from file ``where``, checked first
        (:func:`check_state`): a damaged one raises DamagedFileError and changes nothing."""
        state = check_state(state, where)
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.best = math.inf if state["best"] is None else float(state["best"])
        self.best_epoch, self.bad_epochs = state["best_epoch"], int(state["bad_epochs"])
        self.lowest_train = (math.inf if state.get("lowest_train") is None
                             else float(state["lowest_train"]))
        self.warned = bool(state.get("warned", False))
        self.initial_loss = state.get("initial_loss")
        self._t0 = time.perf_counter()

    # ---- one epoch ------------------------------------------------------------------------
    def restart_clock(self, at=None):
        """Count the next epoch's seconds from ``at`` (default: now)."""
        self._t0 = time.perf_counter() if at is None else at

    def record(self, epoch, train_loss, valid_loss, kl_weight, params=None) -> tuple:
        """Log an epoch; returns ``(improved, stop)``. ``params()`` gives the current
        parameters, for extra validation metrics (e.g. a classifier's accuracy)."""
        h = self.history
        now = time.perf_counter()
        h["seconds"].append(now - self._t0)
        self._t0 = now
        train_loss = float(train_loss)
        h["train_loss"].append(train_loss)
        h["kl_weight"].append(float(kl_weight))
        post = {"loss": f"{train_loss:.3f}"}
        finite = math.isfinite(train_loss) and (valid_loss is None
                                                or math.isfinite(float(valid_loss)))
        init = self.initial_loss
        if finite and init is not None and train_loss > init + DIVERGED * max(1.0, abs(init)):
            finite = False                   # finite in name only: far beyond any model
        if self.has_valid:
            h["valid_loss"].append(float(valid_loss))
        if not finite:
            self.diverged_at = epoch
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)
            return False, True
        self._watch_growth(epoch, train_loss)
        if self.metric_fn is not None and params is not None:
            for key, value in self.metric_fn(params()).items():
                h.setdefault(key, []).append(float(value))
                post[key.replace("valid_", "")] = f"{value:.3f}"
        improved, stop = False, False
        if self.has_valid:
            post["valid"] = f"{valid_loss:.3f}"
            if valid_loss < self.best:
                self.best, self.best_epoch, self.bad_epochs, improved = valid_loss, epoch, 0, True
            else:
                self.bad_epochs += 1
                stop = self.patience is not None and self.bad_epochs >= self.patience
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)
        return improved, stop

    def _watch_growth(self, epoch, loss):
        low = self.lowest_train
        if not math.isfinite(low) and self.initial_loss is not None:
            low = self.initial_loss
        if math.isfinite(low) and not self.warned and loss > low + GROWTH * max(1.0, abs(low)):
            self.warned = True
            warnings.warn(f"the training loss grew from {low:.4g} to {loss:.4g} at epoch "
                          f"{epoch + 1}: training is diverging; lower lr or pass clip_norm= "
                          "(e.g. clip_norm=10)", RuntimeWarning, stacklevel=4)
        self.lowest_train = min(low, loss)

    def close(self):
        self.bar.close()


def _finite_or_none(v):
    return float(v) if np.isfinite(v) else None


#: the largest epoch count a checkpoint may hold
MAX_EPOCHS = 2 ** 31 - 1


def check_history(history, where, field="history") -> dict:
    """A training history read from file ``where`` (field ``field``), checked: an object of
    lists of numbers (NaN and inf allowed: a diverged epoch's loss); else DamagedFileError
    naming the file and the field.

    Examples
    --------
    >>> check_history({"train_loss": [1.0, "2"]}, "run/history.json", "")
    Traceback (most recent call last):
    ...
    probvae.outputs.DamagedFileError: run/history.json: field 'train_loss[1]' should be float, found str '2'
    """
    prefix = f"{field}." if field else ""
    check_field(history, where, field or "history", dict)
    for key, values in history.items():
        check_field(values, where, prefix + key, list)
        for i, v in enumerate(values):
            if not isinstance(v, float):      # a float may be NaN; anything else a number
                check_field(v, where, f"{prefix}{key}[{i}]", float)
    return history


def check_state(state, where="the checkpoint", field="tracker") -> dict:
    """A tracker's :meth:`Tracker.state` read from file ``where`` (its field ``field``),
    checked field by field; a damaged one raises DamagedFileError naming the file and the
    field (e.g. ``tracker.best_epoch``).

    Examples
    --------
    >>> t = Tracker(epochs=2, patience=None, has_valid=False, progress=False)
    >>> check_state(t.state())["bad_epochs"]
    0
    >>> check_state({**t.state(), "best_epoch": "3"}, "run/checkpoint.json")
    Traceback (most recent call last):
    ...
    probvae.outputs.DamagedFileError: run/checkpoint.json: field 'tracker.best_epoch' should be int or null, found str '3'
    """
    check_field(state, where, field, dict)
    for key in ("history", "best", "best_epoch", "bad_epochs"):
        if key not in state:
            raise DamagedFileError(f"{where}: field '{field}.{key}' is missing")
    history = check_history(state["history"], where, f"{field}.history")
    for key in ("train_loss", "valid_loss", "kl_weight", "seconds"):    # what record() extends
        if key not in history:
            raise DamagedFileError(f"{where}: field '{field}.history.{key}' is missing")
    if not len(history["train_loss"]) == len(history["kl_weight"]) == len(history["seconds"]):
        raise DamagedFileError(f"{where}: fields '{field}.history.train_loss', 'kl_weight' and "
                               "'seconds' should have one entry per epoch, found "
                               f"{len(history['train_loss'])}, {len(history['kl_weight'])} and "
                               f"{len(history['seconds'])}")
    for key in ("best", "lowest_train", "initial_loss"):      # finite, or null for none yet
        check_field(state.get(key), where, f"{field}.{key}", float, none=True)
    check_field(state["best_epoch"], where, f"{field}.best_epoch", int, low=0, high=MAX_EPOCHS,
                none=True)
    check_field(state["bad_epochs"], where, f"{field}.bad_epochs", int, low=0, high=MAX_EPOCHS)
    check_field(state.get("warned", False), where, f"{field}.warned", bool)
    return state


class StopRequest:
    """Ctrl-C, SIGTERM and SIGHUP as a request to stop at the end of the current step.

    Inside ``with StopRequest() as stop:`` the first of these signals sets ``stop.requested``
    (and ``stop.signal``, its name) and the loop ends cleanly after its current step: the run
    checkpoints and says so. ``timeout``, Slurm, Kubernetes and ``docker stop`` send SIGTERM, a
    closed terminal SIGHUP; each is handled as Ctrl-C is. A second signal stops at once:
    ``KeyboardInterrupt`` for Ctrl-C, ``SystemExit(128 + signal)`` for the others. Outside the
    main thread (where Python delivers no signals) it does nothing.

    Examples
    --------
    >>> with StopRequest() as stop:
    ...     stop.requested
    False
    """

    SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP")
                    if hasattr(signal, n))

    def __init__(self):
        self.requested = False
        self.signal = None
        self._previous = {}

    def _handler(self, signum, frame):
        if self.requested:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        self.requested = True
        self.signal = signal.Signals(signum).name

    def adopt(self, signum: int):
        """Stop as if signal ``signum`` had come here (another process under torchrun got
        it)."""
        self.requested = True
        self.signal = self.signal or signal.Signals(int(signum)).name

    @property
    def exit_code(self) -> int:
        """The shell's status for the signal received: 130 (Ctrl-C), 143 (SIGTERM), 129
        (SIGHUP)."""
        return 128 + int(getattr(signal, self.signal or "SIGINT"))

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
        return False
