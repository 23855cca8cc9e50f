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
>>> list(config.options)      # the objective's options, then fit's settings
['num_particles', 'epochs', 'batch_size', 'lr', 'seed', 'patience', 'missing']
>>> config.fit_meta["objective"], config.fit_meta["epochs"]
('iwae', 2)
>>> split_options(config.options)[1]
{'num_particles': 4}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

__all__ = ["TrainConfig", "SETTINGS", "split_options"]

#: fit's own settings in a result's ``options``, in their order there (the other entries are
#: the objective's options)
SETTINGS = ("epochs", "batch_size", "lr", "seed", "patience", "missing", "binarize",
            "clip_norm", "num_labelled")
#: the settings ``options`` holds only when they are set (the others always)
_WHEN_SET = ("binarize", "clip_norm", "num_labelled")


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
    return {k: rest.pop(k, None) for k in SETTINGS}, rest


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
    lr : float
    seed : int
    patience : int, optional
    clip_norm : float, optional
    missing : None or "mask"
    binarize : None or "dynamic"
    num_labelled : int, optional
        How many training examples carry a label (models that learn from labels).
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
        Where training runs (NumPyro: the devices a batch is split across).
    metric : callable, optional
        ``metric(params) -> {name: value}`` recorded each epoch (validation accuracy of a
        classifier); not a setting that is recorded or compared.

    Examples
    --------
    >>> config = TrainConfig(objective="elbo", clip_norm=5.0, binarize="dynamic")
    >>> sorted(set(config.options) - {"epochs", "batch_size", "lr", "seed"})
    ['binarize', 'clip_norm', 'missing', 'patience']
    """

    objective: str
    objective_options: dict = field(default_factory=dict)
    objective_definition: Optional[dict] = None
    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    patience: Optional[int] = None
    clip_norm: Optional[float] = None
    missing: Optional[str] = None
    binarize: Optional[str] = None
    num_labelled: Optional[int] = None
    model: Optional[dict] = None
    pair: bool = False
    data: Optional[str] = None
    validation: Optional[str] = None
    progress: bool = True
    device: Optional[str] = None
    devices: Any = None
    metric: Optional[Callable] = field(default=None, compare=False, repr=False)

    @property
    def options(self) -> dict:
        """A result's ``options`` and ``config.json``'s: the objective's options, then fit's
        settings (:data:`SETTINGS`; ``binarize``, ``clip_norm`` and ``num_labelled`` only
        when set)."""
        options = dict(self.objective_options)
        for key in SETTINGS:
            value = getattr(self, key)
            if key not in _WHEN_SET or value is not None:
                options[key] = value
        return options

    @property
    def fit_meta(self) -> dict:
        """``checkpoint.json``'s ``"fit"``: what a resumed or continued fit must match (all
        but ``epochs``, ``lr``, ``clip_norm`` and ``patience``), as JSON gives it back."""
        meta = {"objective": self.objective, "objective_options": self.objective_options,
                "batch_size": self.batch_size, "seed": self.seed, "missing": self.missing,
                "binarize": self.binarize,
                "model": None if self.pair else self.model,    # (code: nothing to compare)
                "data": self.data, "validation": self.validation, "epochs": self.epochs,
                "lr": self.lr, "clip_norm": self.clip_norm, "patience": self.patience}
        return json.loads(json.dumps(meta, default=str))

    @property
    def cache_key(self) -> Optional[str]:
        """The compiled programs' key (the NumPyro loop adds the learning rate, clipping, seed
        and shapes): the model's configuration, the objective and its options, ``missing``
        and ``binarize`` (and a user's objective's definition), as sorted JSON; None for a
        user's pair (code). Kept byte for byte as the programs already compiled were keyed."""
        meta = self.fit_meta
        if meta["model"] is None:
            return None
        parts = [meta["model"], self.objective, self.objective_options, self.missing,
                 self.binarize]
        if self.objective_definition is not None:
            parts.append(self.objective_definition)
        return json.dumps(parts, sort_keys=True, default=str)
