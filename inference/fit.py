"""``fit``: one function for both backends, dispatching to a per-backend loop."""
from __future__ import annotations

import math
import time

import numpy as np
from tqdm.auto import tqdm

from probvae.data import as_split
from probvae.models import CustomModel

from . import objectives
from .result import FitResult

__all__ = ["fit", "register_loop"]

_LOOPS = {"pyro": "probvae.inference.pyro_loop", "numpyro": "probvae.inference.numpyro_loop"}


def register_loop(backend: str, module: str):
    """Point ``fit`` at the training-loop module (with a ``run`` function) for ``backend``."""
    _LOOPS[backend] = module


class Tracker:
    """History, progress bar and early stopping, shared by both loops."""

    def __init__(self, epochs, patience, has_valid, progress, desc):
        self.history = {"train_loss": [], "valid_loss": [], "kl_weight": [], "seconds": []}
        self.patience, self.has_valid = patience, has_valid
        self.best, self.best_epoch, self.bad_epochs = math.inf, None, 0
        self.bar = tqdm(total=epochs, desc=desc, disable=not progress, unit="epoch",
                        dynamic_ncols=True, leave=True)
        self._t0 = time.perf_counter()

    def record(self, epoch, train_loss, valid_loss, kl_weight) -> tuple:
        """Log an epoch; returns ``(improved, stop)``."""
        h = self.history
        now = time.perf_counter()
        h["seconds"].append(now - self._t0)
        self._t0 = now
        h["train_loss"].append(float(train_loss))
        h["kl_weight"].append(float(kl_weight))
        post = {"loss": f"{train_loss:.3f}"}
        if not np.isfinite(train_loss):
            self.bar.close()
            raise FloatingPointError(
                f"training loss became {train_loss} at epoch {epoch + 1}; lower lr, check the "
                f"data against the likelihood's support, or use a fixed likelihood scale")
        improved, stop = False, False
        if self.has_valid:
            h["valid_loss"].append(float(valid_loss))
            post["valid"] = f"{valid_loss:.3f}"
            if valid_loss < self.best:
                self.best, self.best_epoch, self.bad_epochs, improved = valid_loss, epoch, 0, True
            else:
                self.bad_epochs += 1
                stop = self.patience is not None and self.bad_epochs >= self.patience
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)
        return improved, stop

    def close(self):
        self.bar.close()


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


def prepare_x(model, data, what="data") -> np.ndarray:
    """The float32 array a model trains or is evaluated on, checked against its likelihood."""
    split = as_split(data)
    x = split.x
    dim = getattr(model, "input_dim", None)
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what} has {x.shape[1]} features but the model's input_dim is {dim}")
    lik = getattr(model, "likelihood", None)
    return lik.check(x) if lik is not None else x


def fit(model, data, *, objective="elbo", epochs=50, batch_size=128, lr=1e-3, seed=0,
        validation=None, patience=None, progress=True, backend=None, **objective_options):
    """Train a model (or a user's ``(model, guide)`` pair) by stochastic variational inference.

    Parameters
    ----------
    model : Model or (callable, callable)
        A probvae model (its ``backend`` decides the loop) or a pair of Pyro/NumPyro functions
        ``model(x)``, ``guide(x)`` with ``backend=`` given.
    data : Split or array (N, D)
        Training data; checked against the likelihood's support before training starts.
    objective : str
        A registered objective name (see :mod:`probvae.inference.objectives`).
    epochs, batch_size, lr : int, int, float
        Passes over the data; mini-batch size (the last partial batch of each shuffled epoch is
        dropped); Adam learning rate.
    seed : int
        Seeds networks, parameter initialisation, shuffling and sampling: the same seed on the
        same backend gives the same numbers.
    validation : Split or array, optional
        Validation data: its loss is recorded each epoch, and the best epoch's parameters are
        kept.
    patience : int, optional
        Stop when the validation loss has not improved for this many epochs.
    progress : bool
        Show a tqdm progress bar.
    backend : str, optional
        Required for a ``(model, guide)`` pair; must match a model's own backend otherwise.
    **objective_options
        Passed to the objective (``num_particles``, ``alpha``, ``beta``, ``warmup``).

    Returns
    -------
    FitResult

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> vae = pv.models.VAE(input_dim=64, latent_dim=4, hidden=(64,), backend="numpyro")
    >>> res = pv.fit(vae, data.train, objective="iwae", num_particles=4, epochs=2,
    ...              validation=data.valid, progress=False)
    >>> sorted(res.history)
    ['kl_weight', 'seconds', 'train_loss', 'valid_loss']
    """
    import importlib

    model = _as_model(model, backend)
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if patience is not None and validation is None:
        raise ValueError("patience (early stopping) needs validation data: pass validation=")
    elbo, schedule = objectives.build(objective, model.bk, **objective_options)
    if schedule is not None and not model.takes_kl_weight:
        raise ValueError(f"objective {objective!r} weights the KL term, which needs a model that "
                         "takes kl_weight= (the built-in models do)")
    x = prepare_x(model, data, "training data")
    xv = prepare_x(model, validation, "validation data") if validation is not None else None
    built = model.build(int(seed))
    tracker = Tracker(int(epochs), patience, xv is not None, progress,
                      desc=f"{type(model).__name__}[{model.backend}] {objective}")
    loop = importlib.import_module(_LOOPS[model.backend])
    try:
        params = loop.run(built, x, xv, elbo, schedule, epochs=int(epochs),
                          batch_size=int(batch_size), lr=float(lr), seed=int(seed), tracker=tracker)
    finally:
        tracker.close()
    options = dict(objective_options, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                   seed=int(seed), patience=patience)
    return FitResult(built, params, tracker.history, objective if isinstance(objective, str)
                     else objective.name, options, tracker.best_epoch)
