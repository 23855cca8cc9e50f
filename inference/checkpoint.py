"""Saved models: a run folder of JSON and NumPy arrays (no pickled code), written atomically and
checked field by field when read.

Layout of ``DIR``: ``config.json`` (model config, objective, settings, data), ``params.npz``
(parameters as plain arrays) and ``history.json``; a checkpointed fit adds ``checkpoint.json``
and ``state-NNNNNN.npz`` (:mod:`.train_state`). Loading rebuilds the model from its config and
fills in the arrays, so a checkpoint made on a GPU machine loads on a CPU-only one. Every
damaged or hostile file (truncated or empty arrays, invalid JSON, missing or extra fields,
wrong shapes, NaN, absurd sizes) gets an error that names the file and the field, before
anything large is allocated.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np

from probvae import backends
from probvae.backends import init_params
from probvae.models.base import MODELS
from probvae.outputs import (FORMAT, DamagedFileError, check_field, json_text, read_json,
                             read_npz)

from . import train_state
from .inputs import MISSING
from .result import FitResult
from .tracker import check_history

__all__ = ["save", "load", "read_config", "to_state", "from_state"]

VERSION = 1
#: the fields of config.json: required ones, and the others probvae may write
_REQUIRED = {"format": str, "version": int, "model": dict, "objective": str, "options": dict}
_OPTIONAL = {"best_epoch": (int, type(None)), "seed": int, "files": list, "data": dict,
             "status": str, "cli": dict}


def save(res: FitResult, path, extra: dict | None = None, overwrite: bool = False,
         metrics: dict | None = None) -> Path:
    """Save a fitted model to run folder ``path``.

    ``path`` may be new or an empty folder. An earlier run there is replaced only with
    ``overwrite=True``, and then only the files probvae wrote (files of yours in it stay); a
    folder holding anything else is refused (:class:`~probvae.outputs.OutputError`), with
    nothing written. The folder appears complete or not at all. Saving into the folder the
    fit checkpointed to keeps its training checkpoint, so the run can still be resumed.

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
    path = Path(path)
    state = to_state(res)
    files = {"params.npz": lambda tmp: _savez(tmp, state["params"]),
             "history.json": lambda tmp: tmp.write_text(json_text(state["history"]))}
    if metrics is not None:
        files["metrics.json"] = lambda tmp: tmp.write_text(json_text(metrics))
    keep = res.checkpoint is not None and Path(res.checkpoint).resolve() == path.resolve()
    config = {**state["config"], **(extra or {}),
              "files": ["config.json", *files, *([train_state.POINTER] if keep else [])]}
    files["config.json"] = lambda tmp: tmp.write_text(json_text(config))
    return train_state.write_folder(path, files, overwrite=overwrite, keep_checkpoint=keep)


def _savez(tmp, arrays):
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _model_class(cfg, where):
    model = check_field(cfg["model"], where, "model", dict)
    if "class" not in model:
        raise DamagedFileError(f"{where}: field 'model.class' is missing")
    name = check_field(model["class"], where, "model.class", str)
    if name not in MODELS:
        raise DamagedFileError(f"{where}: field 'model.class' is {name!r}; known model classes: "
                               f"{sorted(MODELS)}")
    cls = MODELS[name]
    params = inspect.signature(cls.__init__).parameters
    accepted = {k for k in params if k != "self"}
    extra = sorted(set(model) - accepted - {"class"})
    if extra:
        raise DamagedFileError(f"{where}: field 'model.{extra[0]}' is not a setting of {name} "
                               f"(its settings: {sorted(accepted)})")
    missing = [k for k, p in params.items() if k != "self" and p.default is p.empty
               and k not in model]
    if missing:
        raise DamagedFileError(f"{where}: field 'model.{missing[0]}' is missing")
    return cls


def read_config(path) -> dict:
    """The ``config.json`` of a run folder, checked field by field.

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / "config.json").write_text(json.dumps({"format": "probvae-checkpoint"}))
    >>> read_config(run)
    Traceback (most recent call last):
    ...
    probvae.outputs.DamagedFileError: .../config.json: field 'version' is missing
    """
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path} is not a probvae checkpoint: {cfg_file} is missing "
                                "(make one with `probvae train --out DIR` or probvae.save)")
    return _check_config(read_json(cfg_file), cfg_file)


def _check_config(cfg, cfg_file) -> dict:
    """A run's config (``config.json``, or :func:`to_state`'s ``config``) checked field by
    field: every field probvae writes, at every level, of the kind and in the range it
    writes; an error names the file and the field."""
    check_field(cfg, cfg_file, "config", dict)
    if cfg.get("format") != FORMAT:
        raise DamagedFileError(f"{cfg_file} is not a probvae checkpoint "
                               f"(format={cfg.get('format')!r})")
    for field, kind in _REQUIRED.items():
        if field not in cfg:
            raise DamagedFileError(f"{cfg_file}: field {field!r} is missing")
        if field == "model" and cfg[field] is None:
            raise DamagedFileError(f"{cfg_file}: this run trained a custom (model, guide) pair, "
                                   "which is Python code and cannot be rebuilt from a file; "
                                   "continue it with pv.fit((model, guide), ..., resume=DIR)")
        if not isinstance(cfg[field], kind) or isinstance(cfg[field], bool):
            raise DamagedFileError(f"{cfg_file}: field {field!r} should be {kind.__name__}, "
                                   f"found {type(cfg[field]).__name__}")
    for field in sorted(set(cfg) - set(_REQUIRED)):
        if field not in _OPTIONAL:
            raise DamagedFileError(f"{cfg_file}: field {field!r} is not one probvae writes "
                                   f"(fields: {sorted([*_REQUIRED, *_OPTIONAL])})")
        if not isinstance(cfg[field], _OPTIONAL[field]) or isinstance(cfg[field], bool):
            raise DamagedFileError(f"{cfg_file}: field {field!r} has the wrong type "
                                   f"({type(cfg[field]).__name__})")
    if cfg["version"] > VERSION:
        raise DamagedFileError(f"{cfg_file} has checkpoint version {cfg['version']}; this "
                               f"probvae reads up to {VERSION}: upgrade probvae")
    check_field(cfg["version"], cfg_file, "version", int, low=1)
    _model_class(cfg, cfg_file)
    _check_model(cfg["model"], cfg_file)
    _check_record(cfg, cfg_file)
    return cfg


#: the largest size (input_dim, latent_dim, a layer's width, ...) and seed a config may hold
_MAX_SIZE, _MAX_SEED = 2 ** 31 - 1, 2 ** 32 - 1
#: how a run ended (:class:`FitResult`'s ``status``), or ``running`` while it trains
_STATUSES = ("running", "completed", "stopped_early", "interrupted", "diverged")


def _check_model(model, where):
    """config.json's ``model``: the settings of a built-in model, by kind (sizes are integers
    in 1..2**31-1; how large a model this machine can hold is checked when it is built)."""
    for key in ("input_dim", "latent_dim", "num_classes", "aux_dim"):
        if key in model:
            check_field(model[key], where, f"model.{key}", int, low=1, high=_MAX_SIZE,
                        none=key == "input_dim")
    for key in ("hidden", "image_shape"):
        if model.get(key) is not None or key == "hidden" and key in model:
            sizes = check_field(model[key], where, f"model.{key}", list)
            if key == "image_shape" and len(sizes) not in (2, 3):
                raise DamagedFileError(f"{where}: field 'model.image_shape' should be [height, "
                                       f"width] or [channels, height, width], found {sizes}")
            for i, n in enumerate(sizes):
                check_field(n, where, f"model.{key}[{i}]", int, low=1, high=_MAX_SIZE)
    for key in ("activation", "backend"):
        if key in model:
            check_field(model[key], where, f"model.{key}", str)
    for key in ("prior", "likelihood", "encoder", "decoder"):   # a name, or a name and settings
        if key in model and not isinstance(model[key], str):
            check_field(model[key], where, f"model.{key}", (str, dict))
            if not isinstance(model[key].get("name"), str):
                raise DamagedFileError(f"{where}: field 'model.{key}.name' should be str, "
                                       "found " + ("nothing" if "name" not in model[key] else
                                                   type(model[key]["name"]).__name__))
            _check_plain(model[key], where, f"model.{key}")
    if "alpha" in model:
        check_field(model["alpha"], where, "model.alpha", float, low=0)
    if "skip" in model:
        check_field(model["skip"], where, "model.skip", bool)


def _check_plain(value, where, field):
    """Settings of plain values at any depth: finite numbers, integers of magnitude up to
    2**32-1 (no setting probvae writes is larger: a seed), strings, booleans, null."""
    stack = [(value, field)]
    while stack:
        v, name = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, f"{name}.{k}") for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, f"{name}[{i}]") for i, x in enumerate(v))
        elif isinstance(v, float):
            check_field(v, where, name, float)
        elif isinstance(v, int) and not isinstance(v, bool):
            check_field(v, where, name, int, low=-_MAX_SEED, high=_MAX_SEED)


def _check_record(cfg, where):
    """config.json's run record: ``seed``, ``best_epoch``, ``files``, the training settings
    (``options``) and, where the run has them, its data set (``data``) and command line
    (``cli``; its settings are checked by ``probvae train --resume``)."""
    if cfg.get("status", "completed") not in _STATUSES:
        raise DamagedFileError(f"{where}: field 'status' is {cfg['status']!r}; a run's status "
                               f"is one of {list(_STATUSES)}"[:300])
    check_field(cfg.get("seed", 0), where, "seed", int, low=0, high=_MAX_SEED)
    check_field(cfg.get("best_epoch"), where, "best_epoch", int, low=0, high=_MAX_SIZE, none=True)
    for i, name in enumerate(cfg.get("files", [])):
        check_field(name, where, f"files[{i}]", str)
    options = cfg["options"]
    for key, low, none in (("epochs", 0, False), ("batch_size", 1, False),
                           ("num_labelled", 0, False), ("patience", 0, True)):
        if key in options:
            check_field(options[key], where, f"options.{key}", int, low=low, high=_MAX_SIZE,
                        none=none)
    if "seed" in options:
        check_field(options["seed"], where, "options.seed", int, low=0, high=_MAX_SEED)
    for key, none in (("lr", False), ("clip_norm", True)):
        if key in options:
            check_field(options[key], where, f"options.{key}", float, low=0, none=none)
    if options.get("missing") not in MISSING:
        raise DamagedFileError(f"{where}: field 'options.missing' should be one of "
                               f"{list(MISSING)}, found {options['missing']!r}"[:300])
    _check_plain(options, where, "options")
    data = cfg.get("data")
    if data is not None:
        for key, kind, none in (("dataset", str, False), ("data_dir", str, True)):
            if key in data:
                check_field(data[key], where, f"data.{key}", kind, none=none)
        if data.get("binarize") not in (None, False, True, "threshold", "dynamic"):
            raise DamagedFileError(f"{where}: field 'data.binarize' should be false, "
                                   f"'threshold' or 'dynamic', found {data['binarize']!r}"[:300])
        if "data_seed" in data:
            check_field(data["data_seed"], where, "data.data_seed", int, low=0, high=_MAX_SEED)
        if data.get("image_shape") is not None:
            check_field(data["image_shape"], where, "data.image_shape", list)
            if len(data["image_shape"]) not in (2, 3):
                raise DamagedFileError(f"{where}: field 'data.image_shape' should be [height, "
                                       "width] or [channels, height, width], found "
                                       f"{data['image_shape']}"[:300])
            for i, n in enumerate(data["image_shape"]):
                check_field(n, where, f"data.image_shape[{i}]", int, low=1, high=_MAX_SIZE)
        _check_plain(data, where, "data")
    if cfg.get("cli") is not None:
        _check_plain(cfg["cli"], where, "cli")


def load(path) -> FitResult:
    """Load a run folder written by :func:`save`, ``probvae train`` or a checkpointed fit.

    A run that was killed, interrupted or diverged loads too: its ``params.npz`` holds the best
    parameters written so far.

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
    with _backend(cfg, path / "config.json").lock:
        model = _build(cfg, path / "config.json")
        flat = read_npz(path / "params.npz", max_bytes=_max_bytes(model),
                        check=train_state.fits(path / "params.npz"))
        history_file = path / "history.json"
        history = (check_history(read_json(history_file), history_file, "")
                   if history_file.is_file() else {})
        return _result(cfg, model, flat, history, path / "params.npz", path / "config.json")


def _backend(cfg, where):
    name = cfg["model"].get("backend", "numpyro")
    if name not in backends.names():
        raise DamagedFileError(f"{where}: field 'model.backend' is {name!r}; known backends: "
                               f"{list(backends.names())}")
    return backends.get(name)


def _max_bytes(model) -> int:
    """Generous room for a model's arrays: float64 and twice the counted networks."""
    return 16 * model.parameter_count() + (1 << 24)


def _build(cfg, where):
    cls = _model_class(cfg, where)
    model_cfg = {k: v for k, v in cfg["model"].items() if k != "class"}
    seed = cfg.get("seed", 0)
    try:
        model = cls(**model_cfg)
        model.check_size()
        return model.build(int(seed))
    except MemoryError:
        raise
    except Exception as err:        # (a model's own checks raise ValueError or TypeError)
        raise DamagedFileError(f"{where}: field 'model' does not describe a usable "
                               f"{cls.__name__}: {_reason(err)}") from None


def _reason(err) -> str:
    """An exception as text for a message: its own words for a ValueError or TypeError (a
    model's checks), with its kind for anything else."""
    text = str(err)[:300]
    return text if type(err) in (ValueError, TypeError) else f"{type(err).__name__}: {text}"


def _result(cfg, model, flat, history, params_file, cfg_file) -> FitResult:
    bk = model.bk
    try:
        dummy = bk.asarray(np.full((2, model.input_dim), 0.5, np.float32))
        template = init_params(bk, model, {"x": dummy}, int(cfg.get("seed", 0)))
    except MemoryError:
        raise
    except Exception as err:
        raise DamagedFileError(f"{cfg_file}: field 'model' does not describe a usable "
                               f"{type(model).__name__}: {_reason(err)}") from None
    expected = {k: tuple(v.shape) for k, v in
                bk.params_to_numpy(template).items()} if not bk.shared_param_store else {
        k: tuple(v.shape) for k, v in template["params"].items()}
    missing, extra = sorted(set(expected) - set(flat)), sorted(set(flat) - set(expected))
    if missing or extra:
        what = (f"parameter {missing[0]!r} is missing" if missing else
                f"parameter {extra[0]!r} is not one of this model's")
        raise DamagedFileError(f"{params_file}: {what}; the arrays do not belong to the model in "
                               f"{cfg_file}")
    for name, shape in expected.items():
        a = flat[name]
        if tuple(a.shape) != shape:
            raise DamagedFileError(
                f"{params_file}: parameter {name!r} has shape {tuple(a.shape)} but the model in "
                f"{cfg_file} (field 'model': {_sizes(cfg['model'])}) needs {shape}")
        if a.dtype.kind != "f":
            raise DamagedFileError(f"{params_file}: parameter {name!r} has dtype {a.dtype}, "
                                   "not floating point (probvae writes float32)")
        if not np.all(np.isfinite(a)):
            raise DamagedFileError(f"{params_file}: parameter {name!r} has "
                                   f"{int((~np.isfinite(a)).sum())} NaN/inf values (a diverged "
                                   "run?); retrain with a lower lr or clip_norm, or restore the "
                                   "file")
    try:
        params = bk.params_from_numpy(template, flat)
    except MemoryError:
        raise
    except Exception as err:
        raise DamagedFileError(f"{params_file}: the arrays do not fit the model in {cfg_file}: "
                               f"{_reason(err)}") from None
    return FitResult(model, params, history, cfg["objective"], cfg.get("options", {}),
                     cfg.get("best_epoch"), status=cfg.get("status", "completed"))


def _sizes(model_cfg) -> str:
    keys = ("input_dim", "latent_dim", "hidden", "num_classes")
    return ", ".join(f"{k}={model_cfg[k]}" for k in keys if k in model_cfg)


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
              "seed": getattr(res.model, "seed", 0), "status": res.status}
    return {"config": config, "params": res.bk.params_to_numpy(res.params),
            "history": res.history}


def from_state(state: dict) -> FitResult:
    """Rebuild a :class:`FitResult` from :func:`to_state`'s output: the model from its config,
    then its parameters filled in from the arrays (on whatever device this machine has)."""
    where = "the saved state"
    check_field(state, where, "state", dict)
    for key in ("config", "params"):
        if key not in state:
            raise DamagedFileError(f"{where}: field {key!r} is missing")
        check_field(state[key], where, key, dict)
    for name, a in state["params"].items():
        if not isinstance(a, np.ndarray):
            raise DamagedFileError(f"{where}: parameter {name!r} should be a NumPy array, found "
                                   f"{type(a).__name__}")
    try:                              # checked as config.json would hold it
        cfg = json.loads(json_text(state["config"]))
    except (TypeError, ValueError, RecursionError) as err:
        raise DamagedFileError(f"{where}: field 'config' is not plain data ({err})") from None
    cfg = _check_config(cfg, "the model config")
    with _backend(cfg, "the model config").lock:
        model = _build(cfg, "the model config")
        return _result(cfg, model, state["params"], state.get("history", {}),
                       "the parameters", "the model config")

