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


def prepare_x(model, data, what="data") -> np.ndarray:
    """The float32 array a model trains or is evaluated on, checked against its likelihood."""
    split = as_split(data)
    x = split.x
    dim = getattr(model, "input_dim", None)
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what} has {x.shape[1]} features but the model's input_dim is {dim}")
    lik = getattr(model, "likelihood", None)
    return lik.check(x) if lik is not None else x


def labelled_subset(model, split, labels):
    """``(x_labelled, y_labelled)`` from a mask or an index of labelled examples, checked."""
    k = getattr(model, "num_classes", None)
    if not getattr(model, "is_classifier", False):
        raise ValueError("labels= is for models that learn from labels (e.g. SSVAE); "
                         f"{type(model).__name__} does not use them")
    if split.y is None:
        raise ValueError("labels= needs data with labels: pass a Split whose y is set "
                         "(e.g. data.train)")
    n = len(split)
    labels = np.asarray(labels)
    if labels.dtype == bool:
        if labels.shape != (n,):
            raise ValueError(f"a labels mask needs one entry per example ({n}), got shape "
                             f"{labels.shape}")
        idx = np.flatnonzero(labels)
    elif labels.ndim == 1 and (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
        if labels.size and (labels.min() < 0 or labels.max() >= n):
            raise ValueError(f"labels index out of range: the data has {n} examples, got indices "
                             f"from {labels.min()} to {labels.max()}")
        idx = np.unique(labels).astype(np.int64)
    else:
        raise TypeError("labels= takes a boolean mask (N,) or an integer index of labelled "
                        f"examples, got dtype {labels.dtype} and shape {labels.shape}")
    if len(idx) == 0:
        raise ValueError("labels= selects no example; label at least one per class, e.g. "
                         "labels=data.train.label_subset(n_per_class=5)")
    y = split.y[idx]
    bad = (y < 0) | (y >= k)
    if bad.any():
        raise ValueError(f"labels must lie in 0..{k - 1} for num_classes={k}; found "
                         f"{sorted(set(y[bad].tolist()))[:5]}")
    missing = sorted(set(range(k)) - set(y.tolist()))
    if missing:
        raise ValueError(f"no labelled example of class(es) {missing}; label at least one "
                         "example per class (data.train.label_subset(n_per_class=...))")
    return split.x[idx], y.astype(np.int64)


def _accuracy_metric(model, validation):
    """Validation accuracy per epoch for models with a classifier and labelled validation."""
    split = as_split(validation)
    if not getattr(model, "is_classifier", False) or split.y is None:
        return None
    from .predict import class_probabilities
    x, y = model.likelihood.check(split.x), split.y

    def metric(params):
        probs = class_probabilities(model, params, x)
        return {"valid_accuracy": float((probs.argmax(1) == y).mean())}
    return metric


def fit(model, data, *, objective="elbo", epochs=50, batch_size=128, lr=1e-3, seed=0,
        validation=None, patience=None, progress=True, backend=None, labels=None,
        **objective_options):
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
    if getattr(model, "needs_enumeration", False) and "Enum" not in type(elbo).__name__:
        raise ValueError(f"{type(model).__name__} sums its discrete latents out by enumeration: "
                         f"use objective='enum' (got {objective!r})")
    if schedule is not None and not model.takes_kl_weight:
        raise ValueError(f"objective {objective!r} weights the KL term, which needs a model that "
                         "takes kl_weight= (the built-in models do)")
    x = prepare_x(model, data, "training data")
    xv = prepare_x(model, validation, "validation data") if validation is not None else None
    labelled = None
    if labels is not None:
        xl, yl = labelled_subset(model, as_split(data), labels)
        labelled = (model.likelihood.check(xl), yl)
    built = model.build(int(seed))
    metric = _accuracy_metric(built, validation) if validation is not None else None
    tracker = Tracker(int(epochs), patience, xv is not None, progress,
                      desc=f"{type(model).__name__}[{model.backend}] {objective}", metric_fn=metric)
    loop = importlib.import_module(_LOOPS[model.backend])
    try:
        params = loop.run(built, x, xv, elbo, schedule, labelled=labelled, epochs=int(epochs),
                          batch_size=int(batch_size), lr=float(lr), seed=int(seed), tracker=tracker)
    finally:
        tracker.close()
    options = dict(objective_options, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                   seed=int(seed), patience=patience)
    if labelled is not None:
        options["num_labelled"] = int(len(labelled[1]))
    return FitResult(built, params, tracker.history, objective if isinstance(objective, str)
                     else objective.name, options, tracker.best_epoch)
