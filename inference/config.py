"""The training config: every setting of one fit, decided once by ``fit`` and frozen.

``fit`` checks its arguments, fills in the defaults and builds one :class:`TrainConfig`; what
records those settings is derived from it, so each setting is stated in one place:

- :attr:`TrainConfig.options`: a result's ``FitResult.options`` and ``config.json``'s
  ``"options"`` (what ``pv.fit(res, ...)`` and ``probvae train --resume`` read back);
- :attr:`TrainConfig.fit_meta`: ``checkpoint.json``'s ``"fit"``, which a resumed or continued
  fit must match (:func:`.training.train` checks it);
- :attr:`TrainConfig.cache_key`: the key of the NumPyro loop's compiled programs.

Their fields and values are those of the run folders written before the config existed, so
those folders resume and their compiled programs are found again.

Examples
--------
>>> from probvae.models import VAE
>>> config = TrainConfig(objective="iwae", objective_options={"num_particles": 4}, epochs=2,
...                      model=VAE(input_dim=4, latent_dim=2).config())
>>> list(config.options)      # the objective's options, fit's settings, what trained it
['num_particles', 'epochs', 'batch_size', 'lr', 'seed', 'patience', 'missing', 'processes', 'devices']
>>> config.fit_meta["objective"], config.fit_meta["epochs"]
('iwae', 2)
>>> split_options(config.options)[1]
{'num_particles': 4}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .optimizers import Optimizer, lr_record

__all__ = ["TrainConfig", "SETTINGS", "split_options", "default_epochs", "holdout_rows",
           "default_patience", "TARGET_STEPS", "MIN_EPOCHS", "MAX_EPOCHS"]

#: fit's own settings in a result's ``options``, in their order there (the other entries are
#: the objective's options)
SETTINGS = ("epochs", "batch_size", "lr", "optimizer", "seed", "patience", "missing",
            "binarize", "clip_norm", "num_labelled", "holdout")
#: what trained a fit (``options``' global counts of processes and devices), not settings
PLACEMENT = ("processes", "devices")
#: the settings ``options`` holds only when they are set (the others always)
_WHEN_SET = ("optimizer", "binarize", "clip_norm", "num_labelled", "holdout")

# ---- the training length and validation that fit chooses when not told (issue 36) --------
# Measured by bench/defaults_length.py (the figures are in its docstring): a VAE's bound and
# its imputations keep improving over the first few thousand Adam steps at lr 1e-3 whatever
# the data's size (digits' test ELBO: 90.3 after 2,000 steps, 91.7 after 4,000, 92.3 after
# 8,000, at twice the time again), so small data need hundreds of passes; large data need
# passes (MNIST: 50 epochs, 23,400 steps, as before); the ceiling bounds the time a tiny table
# takes (1,000 steps at one batch an epoch: 2-11 s), and its held-out rows stop it early.
#: the optimizer steps a fit aims for when ``epochs`` is not given
TARGET_STEPS = 4000
#: the fewest and most epochs the rule gives (large data: 50 passes, as fit always gave)
MIN_EPOCHS, MAX_EPOCHS = 50, 1000
#: held-out share of small data, its fewest rows, and the size from which none is held out
HOLDOUT_FRACTION, HOLDOUT_MIN_ROWS, HOLDOUT_BELOW = 0.1, 30, 20_000
#: fit's own early stopping: the share of the epochs without improvement it waits, and the
#: fewest epochs
PATIENCE_FRACTION, MIN_PATIENCE = 0.2, 20


def default_epochs(rows: int, batch_size: int) -> int:
    """The epochs ``fit`` trains when not told: :data:`TARGET_STEPS` optimizer steps over
    ``rows`` training examples in batches of ``batch_size`` (the last partial batch dropped),
    but at least :data:`MIN_EPOCHS` and at most :data:`MAX_EPOCHS` passes.

    Examples
    --------
    >>> default_epochs(60_000, 128), default_epochs(1_131, 128), default_epochs(270, 128)
    (50, 500, 1000)
    """
    steps = max(1, rows // max(1, min(batch_size, rows)))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, -(-TARGET_STEPS // steps))))


def holdout_rows(rows: int) -> int:
    """How many of ``rows`` training examples ``fit`` holds out for validation when none is
    given: a tenth, at least 30, for data under 20,000 rows that can spare them (at most a
    fifth held out, so from 150 rows); 0 otherwise. Small data are where the rule gives
    hundreds of epochs and where a VAE overfits (wine's 178 rows: 3,000 epochs on every row
    impute worse than 400). From 10,240 rows the rule gives its floor of 50 epochs, which do
    not overfit data that large (MNIST's bound still improves after 500 epochs), so from
    20,000 rows none is held out; pass ``validation=`` there for early stopping.

    Examples
    --------
    >>> holdout_rows(100), holdout_rows(150), holdout_rows(1_257), holdout_rows(60_000)
    (0, 30, 126, 0)
    """
    if rows >= HOLDOUT_BELOW:
        return 0
    held = max(HOLDOUT_MIN_ROWS, int(round(HOLDOUT_FRACTION * rows)))
    return held if 5 * held <= rows else 0


def default_patience(epochs: int) -> int:
    """The early-stopping patience of a fit whose length or validation ``fit`` chose: a fifth
    of its epochs, at least :data:`MIN_PATIENCE`. The validation loss of a few dozen rows is
    noisy from one epoch to the next while it still falls slowly (on a 300-row table a tenth
    stopped some fits hundreds of epochs before their best one); the best epoch's parameters
    are kept either way.

    Examples
    --------
    >>> default_patience(1000), default_patience(50)
    (200, 20)
    """
    return max(MIN_PATIENCE, int(PATIENCE_FRACTION * int(epochs)))


def split_options(options: dict) -> tuple:
    """``(settings, objective_options)`` of a result's ``options``: fit's own settings (each
    of :data:`SETTINGS`, None where not recorded) and the objective's options (the rest).

    Examples
    --------
    >>> settings, objective_options = split_options({"num_particles": 4, "epochs": 2})
    >>> settings["epochs"], settings["clip_norm"], objective_options
    (2, None, {'num_particles': 4})
    """
    rest = dict(options)
    settings = {k: rest.pop(k, None) for k in SETTINGS}
    for key in PLACEMENT:                  # what trained it, not a setting of the objective
        rest.pop(key, None)
    return settings, rest


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one fit, as ``fit`` decided it (checked, defaults filled in).

    Parameters
    ----------
    objective : str
        The registered objective's name.
    objective_options : dict
        The objective's options as the user gave them (its defaults are not filled in here:
        the records hold what was asked for).
    objective_definition : dict, optional
        What an objective the user registered from a kind is
        (:func:`~.objectives.definition`); None for probvae's own objectives.
    epochs, batch_size : int
    lr : float, callable or None
        The learning rate: a number, a schedule of the step count, or None where the
        optimizer holds its own (recorded by :func:`~.optimizers.lr_record`).
    optimizer : Optimizer
        What steps (:class:`~.optimizers.Optimizer`; default Adam), recorded by its
        ``record`` (only when it is not the default Adam).
    seed : int
    patience : int, optional
    clip_norm : float, optional
    missing : None or "mask"
    binarize : None or "dynamic"
    num_labelled : int, optional
        How many training examples carry a label (models that learn from labels).
    holdout : int, optional
        How many rows of the data ``fit`` held out for validation itself (chosen by
        ``seed``; a continued or resumed fit holds out the same).
    model : dict, optional
        ``config.json``'s ``"model"``: a probvae model's ``config()``, or a user's pair's
        ``record()`` (its backend, contract and input shapes).
    pair : bool
        The model is a user's ``(model, guide)`` pair: Python code, which a checkpoint
        cannot hold nor a compiled program be keyed by (``fit_meta["model"]`` is None and
        so is ``cache_key``).
    data, validation : str, optional
        Fingerprints of the training data (with its labels) and of the validation data.
    progress : bool
        Show a progress bar.
    device : None, "cpu" or "gpu"
    devices : int, "all" or list, optional
        Where training runs, as asked (NumPyro: the devices a batch is split across).
    processes, device_count : int
        What trained it: the processes (torchrun's, or those joined by ``jax.distributed``)
        and the devices of all of them; ``options`` holds them as ``"processes"`` and
        ``"devices"``.
    metric : callable, optional
        ``metric(params) -> {name: value}`` recorded each epoch (validation accuracy of a
        classifier); not a setting that is recorded or compared.

    Examples
    --------
    >>> config = TrainConfig(objective="elbo", clip_norm=5.0, binarize="dynamic")
    >>> sorted(set(config.options) - {"epochs", "batch_size", "lr", "seed"})
    ['binarize', 'clip_norm', 'devices', 'missing', 'patience', 'processes']
    """

    objective: str
    objective_options: dict = field(default_factory=dict)
    objective_definition: Optional[dict] = None
    epochs: int = 50
    batch_size: int = 128
    lr: Any = 1e-3
    optimizer: Optimizer = field(default_factory=Optimizer)
    seed: int = 0
    patience: Optional[int] = None
    clip_norm: Optional[float] = None
    missing: Optional[str] = None
    binarize: Optional[str] = None
    num_labelled: Optional[int] = None
    holdout: Optional[int] = None
    model: Optional[dict] = None
    pair: bool = False
    data: Optional[str] = None
    validation: Optional[str] = None
    progress: bool = True
    device: Optional[str] = None
    devices: Any = None
    processes: int = 1
    device_count: int = 1
    metric: Optional[Callable] = field(default=None, compare=False, repr=False)

    @property
    def options(self) -> dict:
        """A result's ``options`` and ``config.json``'s: the objective's options, then fit's
        settings (:data:`SETTINGS`; ``optimizer``, ``binarize``, ``clip_norm``,
        ``num_labelled`` and ``holdout`` only when set), as JSON: a schedule or a user's
        optimizer by its description (:mod:`.optimizers`)."""
        options = dict(self.objective_options)
        for key in SETTINGS:
            value = self.recorded(key)
            if key not in _WHEN_SET or value is not None:
                options[key] = value
        options["processes"], options["devices"] = self.processes, self.device_count
        return options

    def recorded(self, key):
        """Setting ``key`` (one of :data:`SETTINGS`) as the records hold it: JSON, with a
        schedule or a user's optimizer by its description (:mod:`.optimizers`).

        >>> TrainConfig("elbo", lr=0.01).recorded("lr"), TrainConfig("elbo").recorded("optimizer")
        (0.01, None)
        """
        if key == "lr":
            return lr_record(self.lr)
        if key == "optimizer":
            return self.optimizer.record
        return getattr(self, key)

    @property
    def fit_meta(self) -> dict:
        """``checkpoint.json``'s ``"fit"``: what a resumed or continued fit must match (all
        but ``epochs``, ``lr``, ``clip_norm`` and ``patience``; ``lr`` keeps its kind: a number,
        a schedule, or held by the optimizer; ``optimizer`` only when it is not the default
        Adam), as JSON gives it back."""
        meta = {"objective": self.objective, "objective_options": self.objective_options,
                "batch_size": self.batch_size, "seed": self.seed, "missing": self.missing,
                "binarize": self.binarize,
                "model": None if self.pair else self.model,    # (code: nothing to compare)
                "data": self.data, "validation": self.validation, "epochs": self.epochs,
                "lr": lr_record(self.lr), "clip_norm": self.clip_norm,
                "patience": self.patience}
        if self.optimizer.record is not None:       # (only when it is not the default Adam)
            meta["optimizer"] = self.optimizer.record
        return json.loads(json.dumps(meta, default=str))

    @property
    def cache_key(self) -> Optional[str]:
        """The compiled programs' key (the NumPyro loop adds the learning rate, clipping, seed
        and shapes): the model's configuration, the objective and its options, ``missing``
        and ``binarize`` (and a user's objective's definition, and an optimizer other than the
        default Adam), as sorted JSON; None for a user's pair (code). Kept byte for byte as
        the programs already compiled were keyed."""
        meta = self.fit_meta
        if meta["model"] is None:
            return None
        parts = [meta["model"], self.objective, self.objective_options, self.missing,
                 self.binarize]
        if self.objective_definition is not None:
            parts.append(self.objective_definition)
        if self.optimizer.record is not None:
            parts.append({"optimizer": self.optimizer.record})
        return json.dumps(parts, sort_keys=True, default=str)
