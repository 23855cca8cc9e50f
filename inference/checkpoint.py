"""Saved models: a run folder of JSON and NumPy arrays (no pickled code), written atomically and
checked field by field when read.

Layout of ``DIR``: ``config.json`` (model config, objective, settings, data), ``params.npz``
(parameters as plain arrays) and ``history.json``; a checkpointed fit, and :func:`save` of a
result that carries its training state, add ``checkpoint.json`` and ``state-NNNNNN.npz``
(:mod:`.train_state`), from which a fit continues. Loading rebuilds the model from its config
and fills in the arrays, so a checkpoint made on a GPU machine loads on a CPU-only one. A user's
``(model, guide)`` pair is code: ``config.json`` records its contract (sites, event shapes, data
plate) and input shapes instead, and ``load(path, model=(model, guide))`` checks the pair
given against them and the saved parameters. Every
damaged or hostile file (truncated or empty arrays, invalid JSON, missing or extra fields,
wrong shapes, NaN, absurd sizes) gets an error that names the file and the field, before
anything large is allocated.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
from pathlib import Path

import numpy as np

from probvae import backends
from probvae import batch as batching
from probvae.backends import init_params
from probvae.memory import check_allocation
from probvae.models.base import MODELS, CustomModel, Model
from probvae.networks.architectures import USER
from probvae.models.contract import read_contract
from probvae.outputs import (FORMAT, DamagedFileError, check_field, json_text, read_json,
                             read_npz)

from . import train_state
from .inputs import MISSING
from .optimizers import OPTIMIZER_NAMES, is_custom
from .result import FitResult
from .tracker import check_history

__all__ = ["save", "load", "read_config", "to_state", "from_state"]

VERSION = train_state.CONFIG_VERSION
#: config.json's ``model.class`` for a user's (model, guide) pair (:meth:`CustomModel.record`)
CUSTOM = "CustomModel"
#: the fields of config.json: required ones, and the others probvae may write
_REQUIRED = {"format": str, "version": int, "model": dict, "objective": str, "options": dict}
_OPTIONAL = {"best_epoch": (int, type(None)), "seed": int, "files": list, "data": dict,
             "status": str, "cli": dict}


def save(res: FitResult, path, extra: dict | None = None, overwrite: bool = False,
         metrics: dict | None = None, training_state: bool = True) -> Path:
    """Save a fitted model to run folder ``path``.

    ``path`` may be new or an empty folder. An earlier run there is replaced only with
    ``overwrite=True``, and then only the files probvae wrote (files of yours in it stay); a
    folder holding anything else is refused (:class:`~probvae.outputs.OutputError`), with
    nothing written. The folder appears complete or not at all. Saving into the folder the
    fit checkpointed to keeps its training checkpoint, so the run can still be resumed.

    With the result's training state (optimizer and random state, the default), the folder
    is a checkpoint too: ``pv.fit(pv.load(path), data, epochs=N)`` and ``pv.fit(...,
    resume=path)`` continue the fit exactly. A user's ``(model, guide)`` pair saves like a
    built-in model: its parameters, and in ``config.json`` its contract (sites and shapes),
    not its code; ``pv.load(path, model=(model, guide))`` loads it.

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
    training_state : bool
        Also write the result's training state (``checkpoint.json`` and a state file), where
        it has one (not after a divergence).

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
    ours = res.training_state is not None and res.training_state.run is not None and Path(
        res.training_state.run).resolve() == path.resolve()      # loaded from this folder
    keep = ours or res.checkpoint is not None and Path(res.checkpoint).resolve() == path.resolve()
    if training_state and not keep and res.training_state is not None:
        files.update(_state_files(res, path, overwrite))
    config = {**state["config"], **(extra or {}),
              "files": ["config.json", *(n for n in files if not train_state.is_state_name(n)),
                        *([train_state.POINTER] if keep else [])]}
    files["config.json"] = lambda tmp: tmp.write_text(json_text(config))
    return train_state.write_folder(path, files, overwrite=overwrite, keep_checkpoint=keep)


def _state_files(res, path, overwrite) -> dict:
    """The training state of ``res`` as the checkpoint files of run folder ``path`` (read
    from its folder for a loaded result); numbered after the state files a run there wrote,
    which it replaces."""
    meta, arrays = res.training_state.read(max_bytes=_state_bytes(res.bk.params_to_numpy(
        res.param_state)))
    old = [p.name for p in train_state.owned_states(path)] if overwrite else []
    counter = max([int(meta["counter"])] + [int(n[6:-4]) + 1 for n in old])
    return train_state.checkpoint_files(meta, arrays, counter, stale=old)


def _state_bytes(flat) -> int:
    """Room for a training state of a model whose parameters are ``flat``: the parameters,
    the optimizer's moments and the best parameters in float64, and 64 MiB for the rest."""
    return 8 * sum(int(np.asarray(a).nbytes) for a in flat.values()) + (1 << 26)


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
    if cfg["model"].get("class") == CUSTOM:
        _check_custom(cfg["model"], cfg_file)
    else:
        _model_class(cfg, cfg_file)
        _check_model(cfg["model"], cfg_file)
    _check_record(cfg, cfg_file)
    return cfg


#: the fields of config.json's ``model`` for a user's pair, and of its ``model.contract``
_CUSTOM_FIELDS = ("class", "backend", "max_plate_nesting", "contract", "inputs")
_CONTRACT_FIELDS = ("latents", "observed", "batch_keys", "data_plate", "training_sites",
                    "given")
_SITE_FIELDS = ("name", "event_shape", "discrete", "num_values")
#: the dtypes of a pair's recorded inputs (what the batches hold: floats, labels, masks)
_INPUT_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                 "bool")


def _check_custom(model, where):
    """config.json's ``model`` for a user's pair: backend, contract (sites, event shapes, data
    plate) and the shapes of its inputs, each field of the kind and range probvae writes."""
    _check_fields(model, where, "model", _CUSTOM_FIELDS)
    check_field(model["backend"], where, "model.backend", str)
    check_field(model["max_plate_nesting"], where, "model.max_plate_nesting", int, low=1,
                high=64)
    c = check_field(model["contract"], where, "model.contract", dict)
    _check_fields(c, where, "model.contract", _CONTRACT_FIELDS)
    names = []
    for group in ("latents", "observed"):
        for i, site in enumerate(check_field(c[group], where, f"model.contract.{group}", list)):
            f = f"model.contract.{group}[{i}]"
            _check_fields(check_field(site, where, f, dict), where, f, _SITE_FIELDS)
            names.append(check_field(site["name"], where, f"{f}.name", str))
            if not site["name"] or site["name"] in names[:-1]:
                raise DamagedFileError(f"{where}: field '{f}.name' is {site['name']!r}: a "
                                       "site's name is a non-empty string, given once")
            _check_shape(site["event_shape"], where, f"{f}.event_shape", low=0)
            check_field(site["discrete"], where, f"{f}.discrete", bool)
            check_field(site["num_values"], where, f"{f}.num_values", int, low=1,
                        high=_MAX_SIZE, none=True)
    for key in ("batch_keys", "training_sites"):
        values = check_field(c[key], where, f"model.contract.{key}", list,
                             none=key == "batch_keys")
        for i, v in enumerate(values or []):
            check_field(v, where, f"model.contract.{key}[{i}]", str)
    check_field(c["data_plate"], where, "model.contract.data_plate", str)
    check_field(c["given"], where, "model.contract.given", bool)
    for key, spec in check_field(model["inputs"], where, "model.inputs", dict).items():
        f = f"model.inputs.{key}"
        _check_fields(check_field(spec, where, f, dict), where, f, ("shape", "dtype"))
        _check_shape(spec["shape"], where, f"{f}.shape", low=1)
        if spec["dtype"] not in _INPUT_DTYPES:
            raise DamagedFileError(f"{where}: field '{f}.dtype' should be one of "
                                   f"{list(_INPUT_DTYPES)}, found {spec['dtype']!r}"[:300])


def _check_fields(value, where, field, fields):
    """``value`` (a dict) has exactly the keys ``fields``."""
    for key in fields:
        if key not in value:
            raise DamagedFileError(f"{where}: field '{field}.{key}' is missing")
    extra = sorted(set(value) - set(fields))
    if extra:
        raise DamagedFileError(f"{where}: field '{field}.{extra[0]}' is not one probvae "
                               f"writes (fields: {list(fields)})"[:300])


def _check_shape(shape, where, field, low):
    """A shape: a list of at most 32 sizes in ``low``..2**31-1, of 2**31-1 values at most."""
    check_field(shape, where, field, list)
    if len(shape) > 32:
        raise DamagedFileError(f"{where}: field {field!r} has {len(shape)} dimensions; a "
                               "shape probvae writes has at most 32")
    for i, n in enumerate(shape):
        check_field(n, where, f"{field}[{i}]", int, low=low, high=_MAX_SIZE)
    if math.prod(shape) > _MAX_SIZE:
        raise DamagedFileError(f"{where}: field {field!r} is {shape}, more than {_MAX_SIZE} "
                               "values")


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
    for key in ("hidden", "image_shape", "latent_dims"):
        if model.get(key) is not None or key == "hidden" and key in model:
            sizes = check_field(model[key], where, f"model.{key}", list)
            if key == "image_shape" and len(sizes) not in (2, 3):
                raise DamagedFileError(f"{where}: field 'model.image_shape' should be [height, "
                                       f"width] or [channels, height, width], found {sizes}")
            for i, n in enumerate(sizes):
                check_field(n, where, f"model.{key}[{i}]", int, low=1, high=_MAX_SIZE)
    if "latent_hidden" in model:                         # HVAE: widths per link of latents
        for i, widths in enumerate(check_field(model["latent_hidden"], where,
                                               "model.latent_hidden", list)):
            for j, n in enumerate(check_field(widths, where, f"model.latent_hidden[{i}]",
                                              list)):
                check_field(n, where, f"model.latent_hidden[{i}][{j}]", int, low=1,
                            high=_MAX_SIZE)
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


def _described(value) -> bool:
    """A recorded user's optimizer or schedule: ``{"custom": description, ...}``."""
    return is_custom(value) and isinstance(value["custom"], str)


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
        if key in options and not (key == "lr" and (options[key] is None or _described(
                options[key]))):        # (a schedule's description; None: in the optimizer)
            check_field(options[key], where, f"options.{key}", float, low=0, none=none)
    if "optimizer" in options:
        opt = options["optimizer"]
        name = opt.get("name") if isinstance(opt, dict) and not _described(opt) else opt
        if not _described(opt) and name not in OPTIMIZER_NAMES:
            raise DamagedFileError(f"{where}: field 'options.optimizer' should be one of "
                                   f"{list(OPTIMIZER_NAMES)}, a dict with its 'name' and "
                                   f"'options', or a user's optimizer {{'custom': ...}}, found "
                                   f"{opt!r}"[:300])
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


def load(path, model=None) -> FitResult:
    """Load a run folder written by :func:`save`, ``probvae train`` or a checkpointed fit.

    A run that was killed, interrupted or diverged loads too: its ``params.npz`` holds the best
    parameters written so far. Where the folder holds a training checkpoint, the result
    carries it (read when it is used): ``pv.fit(pv.load(path), data, epochs=N)`` continues
    the fit.

    Parameters
    ----------
    path : str or Path
    model : (callable, callable) or Model, optional
        For a run of a user's ``(model, guide)`` pair: the pair again (its functions are code,
        which a run folder does not hold). Its parameters (names and shapes) and the sites of
        one trace of it are checked against the saved ones; what differs is named. For a
        built-in model with a user's own network (``VAE(encoder=MyEncoder())``): the model,
        made again with the same settings and modules (its configuration is checked against
        the saved one, and the module's parameters against the saved arrays).

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
    custom = cfg["model"].get("class") == CUSTOM
    if custom and model is None:
        c = cfg["model"]["contract"]
        raise ValueError(f"{path} holds a fit of a user's (model, guide) pair (latent sites "
                         f"{[s['name'] for s in c['latents']]}, backend "
                         f"{cfg['model']['backend']!r}); its functions are code, which a run "
                         "folder does not hold: pass them again, pv.load(path, model=(model, "
                         "guide))")
    users = _user_networks(cfg["model"])
    if users and model is None:
        raise ValueError(f"{path} holds a {cfg['model'].get('class')} with a user's own "
                         f"network ({users}): its code is not in the run folder; make the "
                         "model again with the same settings and modules and pass it, "
                         "pv.load(path, model=VAE(..., encoder=MyEncoder()))")
    if not custom and not users and model is not None:
        raise ValueError(f"{path} holds a {cfg['model'].get('class')}, which probvae rebuilds "
                         "from its config: call pv.load(path) without model=")
    with _backend(cfg, path / "config.json").lock:
        if custom:
            built, template = _custom(cfg, model, path)
            max_bytes = None
        elif users:
            built, template = _given(cfg, model, path), None
            max_bytes = _max_bytes(built)
        else:
            built, template = _build(cfg, path / "config.json"), None
            max_bytes = _max_bytes(built)
        flat = read_npz(path / "params.npz", max_bytes=max_bytes,
                        check=train_state.fits(path / "params.npz"))
        history_file = path / "history.json"
        history = (check_history(read_json(history_file), history_file, "")
                   if history_file.is_file() else {})
        res = _result(cfg, built, flat, history, path / "params.npz", path / "config.json",
                      template=template)
    state = train_state.TrainState(run=path) if train_state.exists(path) else None
    return dataclasses.replace(res, training_state=state)


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


def _user_networks(model_cfg) -> dict:
    """``{role: module class}`` of a saved model's networks that are a user's own (code)."""
    return {role: value.get("module") for role, value in model_cfg.items()
            if isinstance(value, dict) and value.get("name") == USER}


def _given(cfg, model, path):
    """The model given to ``load`` for a run of a built-in model with a user's networks,
    built from the run's seed; its configuration must be the saved one (ValueError naming
    what differs)."""
    if not isinstance(model, Model):
        raise TypeError(f"{path} holds a {cfg['model'].get('class')} with a user's network: "
                        f"model= takes that model made again (e.g. VAE(..., encoder=MyEncoder())"
                        f"), got {type(model).__name__}")
    given = json.loads(json_text(model.config()))
    saved = cfg["model"]
    differ = [f"{k} is {saved.get(k)!r} in the saved run and {given.get(k)!r} in the model "
              "given" for k in sorted(set(saved) | set(given)) if saved.get(k) != given.get(k)]
    if differ:
        raise ValueError(f"the model given does not match the one saved in {path}: "
                         f"{'; '.join(differ[:4])}")
    model.check_size()
    return model.build(int(cfg.get("seed", 0)))


def _custom(cfg, pair, path) -> tuple:
    """``(model, template)``: the user's ``pair`` with the contract and inputs of the run in
    ``path``, and its parameters as one trace of it on inputs of the saved shapes makes them;
    its traced sites are checked against the saved contract (ValueError naming what
    differs)."""
    if not (isinstance(pair, tuple) and len(pair) == 2 and all(callable(f) for f in pair)):
        raise TypeError("model= takes the (model, guide) pair of functions that was fitted, "
                        f"got {type(pair).__name__}")
    built = CustomModel.from_record(pair[0], pair[1], cfg["model"])
    bk, seed = built.bk, int(cfg.get("seed", 0))
    inputs = {k: v[0] for k, v in built.inputs.items()}
    check_allocation(16 * sum(math.prod(s) for s in inputs.values()),
                     f"the inputs {inputs} recorded in {path / 'config.json'}",
                     "load it on a machine with more memory", what="pv.load")
    batch = batching.to_backend(bk, {k: np.full((2, *shape), _FILL[np.dtype(dtype).kind],
                                                dtype) for k, (shape, dtype)
                                     in built.inputs.items()})
    saved = built.contract
    try:
        template = init_params(bk, built, batch, seed)
        if not cfg["model"]["contract"]["given"]:          # (a contract given is not read)
            try:
                traced = read_contract(bk, built.model, built.guide, batch, seed,
                                       batch_keys=built.batch_keys)
            except ValueError:             # several plates around the data: name the saved one
                traced = read_contract(bk, built.model, built.guide, batch, seed,
                                       batch_keys=built.batch_keys, data_plate=saved.data_plate)
    except MemoryError:
        raise
    except Exception as err:
        raise ValueError(f"the (model, guide) pair does not run on inputs like those of the "
                         f"run in {path} ({inputs}): {_reason(err)}") from None
    differ = [] if cfg["model"]["contract"]["given"] else _differences(saved, traced)
    if (saved.batch_keys is not None and built.batch_keys is not None
            and set(saved.batch_keys) != set(built.batch_keys)):
        differ.append(f"it takes the inputs {sorted(built.batch_keys)}, the saved pair "
                      f"{sorted(saved.batch_keys)}")
    if differ:
        raise ValueError(f"the (model, guide) pair does not match the one saved in {path}: "
                         f"{'; '.join(differ[:4])}")
    return built, template


#: the value of each kind of input (floats, integers, booleans) in the trace that checks a pair
_FILL = {"f": 0.5, "i": 0, "u": 0, "b": True}


def _differences(saved, traced) -> list:
    """What differs between the saved contract and the one traced from the pair, in words."""
    out = []
    for group, kind in (("latents", "latent"), ("observed", "observed")):
        a = {s.name: s for s in getattr(saved, group)}
        b = {s.name: s for s in getattr(traced, group)}
        out += [f"the saved {kind} site {n!r} is not in the pair (its {kind} sites: "
                f"{sorted(b)})" for n in sorted(a.keys() - b.keys())]
        out += [f"the pair's {kind} site {n!r} is not in the saved run" for n in
                sorted(b.keys() - a.keys())]
        for n in sorted(a.keys() & b.keys()):
            if a[n].event_shape != b[n].event_shape:
                out.append(f"{kind} site {n!r} has event shape {a[n].event_shape} in the "
                           f"saved run and {b[n].event_shape} in the pair")
            elif a[n].discrete != b[n].discrete:
                out.append(f"{kind} site {n!r} is {'discrete' if a[n].discrete else 'continuous'}"
                           f" in the saved run and not in the pair")
    if saved.data_plate != traced.data_plate:
        out.append(f"the data plate is {saved.data_plate!r} in the saved run and "
                   f"{traced.data_plate!r} in the pair")
    return out


def _shapes(bk, template) -> dict:
    """``{name: shape}`` of a parameter state, named as ``params.npz`` names them."""
    if bk.shared_param_store:
        return {k: tuple(v.shape) for k, v in template["params"].items()}
    return {k: tuple(v.shape) for k, v in bk.params_to_numpy(template).items()}


def _check_pair(expected, flat, params_file):
    """A user's pair makes the parameters ``expected`` (``{name: shape}``): the saved ones
    ``flat`` must be those, else a ValueError names what differs."""
    def name(key):         # as the pair names it (NumPyro's file names: "['df']" for df)
        m = re.fullmatch(r"\['(.*?)'\](.*)", key)
        return repr(m.group(1) + m.group(2) if m else key)
    out = [f"parameter {name(k)} has shape {tuple(flat[k].shape)} in {params_file.name} and "
           f"{expected[k]} in the pair" for k in sorted(expected.keys() & flat.keys())
           if tuple(flat[k].shape) != expected[k]]
    out += [f"the pair has no parameter {name(k)} (saved in {params_file.name})"
            for k in sorted(flat.keys() - expected.keys())]
    out += [f"the pair's parameter {name(k)} is not saved in {params_file.name}"
            for k in sorted(expected.keys() - flat.keys())]
    if out:
        more = f" (and {len(out) - 4} more)" if len(out) > 4 else ""
        raise ValueError(f"the (model, guide) pair does not match the one saved in "
                         f"{params_file.parent}: {'; '.join(out[:4])}{more}")


def _reason(err) -> str:
    """An exception as text for a message: its own words for a ValueError or TypeError (a
    model's checks), with its kind for anything else."""
    text = str(err)[:300]
    return text if type(err) in (ValueError, TypeError) else f"{type(err).__name__}: {text}"


def _result(cfg, model, flat, history, params_file, cfg_file, template=None) -> FitResult:
    bk = model.bk
    if template is None:
        try:
            dummy = {"x": bk.asarray(np.full((2, model.input_dim), 0.5, np.float32))}
            if model.condition_dim is not None:                # a conditional model's input
                dummy["condition"] = bk.asarray(np.zeros((2, model.condition_dim), np.float32))
            template = init_params(bk, model, dummy, int(cfg.get("seed", 0)))
        except MemoryError:
            raise
        except Exception as err:
            raise DamagedFileError(f"{cfg_file}: field 'model' does not describe a usable "
                                   f"{type(model).__name__}: {_reason(err)}") from None
    expected = _shapes(bk, template)
    if isinstance(model, CustomModel):           # the pair given is checked, not the file
        _check_pair(expected, flat, params_file)
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
    best = cfg.get("best_epoch")
    if best is not None and cfg["version"] < 2:       # counted from 0 before version 2
        best += 1
    return FitResult(model, params, history, cfg["objective"], cfg.get("options", {}),
                     best, status=cfg.get("status", "completed"))


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
    model = res.model
    config = {"format": FORMAT, "version": VERSION,
              "model": model.record() if isinstance(model, CustomModel) else model.config(),
              "objective": res.objective, "options": res.options, "best_epoch": res.best_epoch,
              "seed": res.model.seed, "status": res.status}
    return {"config": config, "params": res.bk.params_to_numpy(res.param_state),
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
    if cfg["model"].get("class") == CUSTOM:
        raise ValueError("the state is of a user's (model, guide) pair, whose functions are "
                         "code: save it with pv.save and load it with pv.load(path, "
                         "model=(model, guide))")
    if _user_networks(cfg["model"]):
        raise ValueError(f"the state is of a model with a user's own network "
                         f"({_user_networks(cfg['model'])}), which is code: save it with "
                         "pv.save and load it with pv.load(path, model=<the model made again>)")
    with _backend(cfg, "the model config").lock:
        model = _build(cfg, "the model config")
        return _result(cfg, model, state["params"], state.get("history", {}),
                       "the parameters", "the model config")

