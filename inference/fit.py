"""``fit``: one function for both backends, dispatching to a per-backend loop."""
from __future__ import annotations

import importlib
import math
import time

import numpy as np
from tqdm.auto import tqdm

from probvae.data import as_split
from probvae.models import CustomModel

from . import objectives
from .inputs import check_batch_keys, check_missing, labelled_batch, model_batch
from .result import FitResult
from .scoring import class_probabilities

__all__ = ["fit"]

#: the training loop of each backend (a module with a ``run`` function), imported on first use
_LOOPS = {"pyro": "probvae.inference.pyro_loop", "numpyro": "probvae.inference.numpyro_loop"}


class Tracker:
    """History, progress bar and early stopping, shared by both loops."""

    def __init__(self, epochs, patience, has_valid, progress, desc, metric_fn=None):
        self.history = {"train_loss": [], "valid_loss": [], "kl_weight": [], "seconds": []}
        self.patience, self.has_valid, self.metric_fn = patience, has_valid, metric_fn
        self.best, self.best_epoch, self.bad_epochs = math.inf, None, 0
        self.bar = tqdm(total=epochs, desc=desc, disable=not progress, unit="epoch",
                        dynamic_ncols=True, leave=True)
        self._t0 = time.perf_counter()

    def record(self, epoch, train_loss, valid_loss, kl_weight, params=None) -> tuple:
        """Log an epoch; returns ``(improved, stop)``. ``params()`` gives the current
        parameters, for extra validation metrics (e.g. a classifier's accuracy)."""
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
        if self.metric_fn is not None and params is not None:
            for key, value in self.metric_fn(params()).items():
                h.setdefault(key, []).append(float(value))
                post[key.replace("valid_", "")] = f"{value:.3f}"
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


def fit(model, data, *, objective="elbo", epochs=50, batch_size=128, lr=1e-3, seed=0,
        validation=None, patience=None, progress=True, backend=None, labels=None,
        missing=None, **objective_options):
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
    model = _as_model(model, backend)
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if patience is not None and validation is None:
        raise ValueError("patience (early stopping) needs validation data: pass validation=")
    missing = check_missing(missing)
    elbo, schedule = objectives.build(objective, model.bk,
                                      max_plate_nesting=model.max_plate_nesting,
                                      **objective_options)
    if getattr(model, "needs_enumeration", False) and not objectives.get(objective).enumerates:
        raise ValueError(f"{type(model).__name__} sums its discrete latents out by enumeration: "
                         f"use objective='enum' (got {objective!r})")
    if schedule is not None and not model.takes_kl_weight:
        raise ValueError(f"objective {objective!r} weights the KL term, which needs a model that "
                         "takes kl_weight= (the built-in models do)")
    train = model_batch(model, data, "training data", missing)
    check_batch_keys(model, train)
    valid = (model_batch(model, validation, "validation data", missing)
             if validation is not None else None)
    labelled = labelled_batch(model, data, labels, missing) if labels is not None else None
    built = model.build(int(seed))
    metric = _accuracy_metric(built, validation, valid) if validation is not None else None
    tracker = Tracker(int(epochs), patience, valid is not None, progress,
                      desc=f"{type(model).__name__}[{model.backend}] {objective}", metric_fn=metric)
    loop = importlib.import_module(_LOOPS[model.backend])
    try:
        params = loop.run(built, train, valid, elbo, schedule, labelled=labelled,
                          epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                          seed=int(seed), tracker=tracker)
    finally:
        tracker.close()
    options = dict(objective_options, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                   seed=int(seed), patience=patience, missing=missing)
    if labelled is not None:
        options["num_labelled"] = int(len(labelled["y"]))
    return FitResult(built, params, tracker.history, objective if isinstance(objective, str)
                     else objective.name, options, tracker.best_epoch)
