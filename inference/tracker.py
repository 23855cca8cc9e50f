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

__all__ = ["Tracker", "StopRequest", "GROWTH", "DIVERGED"]

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

    def restore(self, state: dict):
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


class StopRequest:
    """Ctrl-C as a request to stop at the end of the current step.

    Inside ``with StopRequest() as stop:`` the first SIGINT sets ``stop.requested`` and the
    loop ends cleanly after its current step; a second one raises ``KeyboardInterrupt`` at
    once. Outside the main thread (where Python delivers no signals) it does nothing.

    Examples
    --------
    >>> with StopRequest() as stop:
    ...     stop.requested
    False
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
