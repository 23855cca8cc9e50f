"""Checkpoints: a folder of JSON and NumPy arrays (no pickled code), written atomically.

Layout of ``DIR``: ``config.json`` (model config, objective, settings, data), ``params.npz``
(parameters as plain arrays) and ``history.json``. Loading rebuilds the model from its config and
fills in the arrays, so a checkpoint made on a GPU machine loads on a CPU-only one.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from probvae.backends import init_params
from probvae.models.base import Model
from probvae.outputs import FORMAT, atomic_write, write_run

from .result import FitResult

__all__ = ["save", "load", "write_json_atomic", "to_state", "from_state"]

VERSION = 1


def write_json_atomic(path, obj):
    """Write JSON to ``path`` via a temporary file and rename (never half-written)."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2,
                                                                     default=_jsonable)))


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON serialisable: {type(v)}")


def save(res: FitResult, path, extra: dict | None = None, overwrite: bool = False,
         metrics: dict | None = None) -> Path:
    """Save a fitted model to run folder ``path``.

    ``path`` may be new or an empty folder. An earlier run there is replaced only with
    ``overwrite=True``, and then only the files probvae wrote (files of yours in it stay); a
    folder holding anything else is refused (:class:`~probvae.outputs.OutputError`), with
    nothing written. The folder appears complete or not at all.

    Parameters
    ----------
    res : FitResult
    path : str or Path
    extra : dict, optional
        More JSON-able information for ``config.json`` (e.g. which data set was used).
    overwrite : bool
        Replace an earlier probvae run in ``path``.
    metrics : dict, optional
        JSON-able scores written beside the model as ``metrics.json``.

    Examples
    --------
    >>> import probvae as pv, tempfile
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> out = pv.save(res, tempfile.mkdtemp() + "/run")
    >>> pv.load(out).model.latent_dim
    2
    >>> pv.save(res, out)
    Traceback (most recent call last):
    ...
    probvae.outputs.OutputError: output folder ... holds an earlier probvae run; pass overwrite=True (CLI: --overwrite) to replace it, or choose a new folder
    """
    state = to_state(res)
    files = {"params.npz": lambda tmp: _savez(tmp, state["params"]),
             "history.json": lambda tmp: _dump_json(tmp, state["history"])}
    if metrics is not None:
        files["metrics.json"] = lambda tmp: _dump_json(tmp, metrics)
    config = {**state["config"], **(extra or {}), "files": ["config.json", *files]}
    files["config.json"] = lambda tmp: _dump_json(tmp, config)
    return write_run(path, files, overwrite=overwrite)


def _dump_json(tmp, obj):
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable))


def _savez(tmp, arrays):
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)


def read_config(path) -> dict:
    """The ``config.json`` of a checkpoint folder, checked for format."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path} is not a probvae checkpoint: {cfg_file} is missing "
                                "(make one with `probvae train --out DIR` or probvae.save)")
    cfg = json.loads(cfg_file.read_text())
    if cfg.get("format") != FORMAT:
        raise ValueError(f"{cfg_file} is not a probvae checkpoint (format={cfg.get('format')!r})")
    if cfg.get("version", 0) > VERSION:
        raise ValueError(f"{cfg_file} has checkpoint version {cfg['version']}; this probvae "
                         f"reads up to {VERSION}: upgrade probvae")
    return cfg


def load(path) -> FitResult:
    """Load a checkpoint folder written by :func:`save` into a :class:`FitResult`.

    Examples
    --------
    >>> import probvae as pv
    >>> pv.load("no/such/run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no/such/run is not a probvae checkpoint: no/such/run/config.json is missing (make one with `probvae train --out DIR` or probvae.save)
    """
    path = Path(path)
    cfg = read_config(path)
    with np.load(path / "params.npz") as npz:
        flat = {k: npz[k] for k in npz.files}
    history_file = path / "history.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else {}
    return from_state({"config": cfg, "params": flat, "history": history})


def to_state(res: FitResult) -> dict:
    """A fitted result as plain data: ``config`` (JSON-able), ``params`` ({name: ndarray}) and
    ``history``; :func:`from_state` rebuilds it. ``save`` writes this to disk, and objects
    that hold a result (e.g. the scikit-learn estimators) pickle through it.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> from_state(to_state(res)).model.latent_dim
    2
    """
    config = {"format": FORMAT, "version": VERSION, "model": res.model.config(),
              "objective": res.objective, "options": res.options, "best_epoch": res.best_epoch,
              "seed": getattr(res.model, "seed", 0)}
    return {"config": config, "params": res.bk.params_to_numpy(res.params),
            "history": res.history}


def from_state(state: dict) -> FitResult:
    """Rebuild a :class:`FitResult` from :func:`to_state`'s output: the model from its config,
    then its parameters filled in from the arrays (on whatever device this machine has)."""
    cfg = state["config"]
    seed = int(cfg.get("seed", 0))
    model = Model.from_config(cfg["model"]).build(seed)
    bk = model.bk
    dummy = bk.asarray(np.full((2, model.input_dim), 0.5, np.float32))
    template = init_params(bk, model, {"x": dummy}, seed)
    params = bk.params_from_numpy(template, state["params"])
    return FitResult(model, params, state.get("history", {}), cfg["objective"],
                     cfg.get("options", {}), cfg.get("best_epoch"))
