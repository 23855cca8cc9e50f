"""Training checkpoints inside a run folder: written so that a kill at any instant leaves the
last complete one readable.

Each checkpoint's arrays go to a new numbered file ``state-NNNNNN.npz`` (written to a temporary
name, flushed and renamed; it carries probvae's mark, an array ``probvae`` holding
:data:`FORMAT`); then ``checkpoint.json`` (epoch, history, the loop's JSON state, the name of
that arrays file, and under ``"stale"`` the arrays files of the checkpoints it replaces)
replaces the previous one the same way; then those older arrays files are removed. Only the
files a ``checkpoint.json`` named are ever removed: a file of yours called ``state-notes.npz``,
or ``state-000001.npz`` without probvae's mark, is never touched (a run folder holding one is
refused before training, :func:`check_folder`). A reader follows ``checkpoint.json``, which
always names a complete file. JSON and NumPy arrays only: nothing is unpickled.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> meta = {"epoch": 3, "counter": 1, "status": "running", "history": {}, "tracker": {},
...         "loop": {}, "fit": {}}
>>> write(run, meta, {"w": np.ones(2)})
>>> write(run, {**meta, "epoch": 4, "counter": 2}, {"w": np.zeros(2)})
>>> meta, arrays = read(run)
>>> meta["epoch"], arrays["w"].tolist(), sorted(p.name for p in run.iterdir())
(4, [0.0, 0.0], ['checkpoint.json', 'state-000002.npz'])
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from probvae.memory import check_allocation
from probvae.outputs import (DamagedFileError, OutputError, atomic_write, check_field,
                             check_writable, json_text, read_json, read_npz,
                             remove_stale_temporaries, run_manifest, write_npz, write_run)

from .tracker import MAX_EPOCHS, check_history

__all__ = ["FORMAT", "POINTER", "RUN_FILES", "TrainState", "write", "read", "exists",
           "fingerprint", "owned_states", "check_folder", "write_folder", "checkpoint_files",
           "is_state_name"]

FORMAT = "probvae-train-state"
VERSION = 1
POINTER = "checkpoint.json"
#: config.json's version (a run folder's record, which :mod:`.checkpoint` reads): 2 counts
#: ``best_epoch`` from 1, as the messages and plots do (a version-1 folder's counted from 0)
CONFIG_VERSION = 2
#: every file name of a run folder besides its numbered states: what config.json's manifest
#: may list and the only names probvae ever replaces or removes there
RUN_FILES = ("config.json", "params.npz", "history.json", "metrics.json", POINTER)
_NAME = re.compile(r"state-\d{6,}\.npz")
_MARK = "probvae"                # the array in each state file that says probvae wrote it
#: fields every checkpoint.json has, with their JSON types
_FIELDS = {"format": str, "version": int, "arrays": str, "epoch": int, "counter": int,
           "history": dict, "tracker": dict, "loop": dict, "fit": dict, "status": str}


@dataclass(frozen=True)
class TrainState:
    """Where a fit stopped, exactly as a checkpoint holds it, so that it can go on from there
    (:attr:`FitResult.training_state <probvae.inference.result.FitResult>`).

    Either in memory, ``meta`` (the fields of ``checkpoint.json``: epoch, counter, status,
    history, tracker, loop, fit, has_best; plain JSON data) and ``arrays`` (the state file's
    NumPy arrays: parameters, optimizer and random state, the best parameters); or on disk,
    ``run``: the run folder whose checkpoint holds it (a loaded result's), read and checked
    when it is used.

    Examples
    --------
    >>> s = TrainState(meta={"epoch": 2}, arrays={"w": np.zeros(2)})
    >>> s.epoch, TrainState(run=Path("runs/a")).epoch is None
    (2, True)
    """

    meta: dict | None = None
    arrays: dict | None = field(default=None, repr=False)
    run: Path | None = None

    @property
    def epoch(self):
        """The epochs done (None for a state on disk, until it is read)."""
        return None if self.meta is None else self.meta["epoch"]

    def read(self, max_bytes=None) -> tuple:
        """``(meta, arrays)``: the checked checkpoint of ``run``, or copies of the ones in
        memory (a loop that continues from them updates its optimizer's moments in place:
        this state must stay as it is)."""
        if self.run is not None:
            return read(self.run, max_bytes=max_bytes)
        return (copy.deepcopy(self.meta),
                {k: np.array(v, copy=True) for k, v in self.arrays.items()})


def checkpoint_files(meta: dict, arrays: dict, counter: int, stale=()) -> dict:
    """The files of one checkpoint as :func:`write_folder` takes them, ``{name: write(tmp)}``:
    the state file ``state-NNNNNN.npz`` (``counter``), then the ``checkpoint.json`` that names
    it (and, under ``"stale"``, the state files ``stale`` it replaces)."""
    name = f"state-{int(counter):06d}.npz"
    own = {k: v for k, v in meta.items() if k not in ("format", "version", "arrays", "stale")}
    record = {"format": FORMAT, "version": VERSION, **own, "counter": int(counter),
              "arrays": name, "stale": [n for n in stale if n != name]}

    def write_state(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **{**arrays, _MARK: np.array(FORMAT)})
    return {name: write_state, POINTER: lambda tmp: tmp.write_text(json_text(record))}


def is_state_name(name: str) -> bool:
    """Whether ``name`` is the name of a numbered training state (``state-NNNNNN.npz``).

    Examples
    --------
    >>> is_state_name("state-000012.npz"), is_state_name("state-backup.npz")
    (True, False)
    """
    return bool(_NAME.fullmatch(name))


def owned_states(run) -> list:
    """The state files of ``run`` that its ``checkpoint.json`` names (the current one and the
    ones it replaced, where they are still there): the only ones probvae removes.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> owned_states(tempfile.mkdtemp())
    []
    """
    run = Path(run)
    try:
        meta = json.loads((run / POINTER).read_text())
    except (OSError, ValueError, RecursionError):
        return []
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return []
    stale = meta.get("stale", [])
    names = [n for n in [meta.get("arrays"), *(stale if isinstance(stale, list) else [])]
             if isinstance(n, str)]                  # (a damaged one may hold anything)
    return [run / n for n in dict.fromkeys(names) if _NAME.fullmatch(n)
            and (run / n).is_file() and not (run / n).is_symlink()]


def _marked(path: Path) -> bool:
    """Whether the state file ``path`` carries probvae's mark (a killed writer's last state,
    written before the checkpoint.json that would have named it)."""
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.getinfo(f"{_MARK}.npy").file_size > 1024:
                return False
        return str(read_npz(path, max_bytes=1 << 20).get(_MARK, "")) == FORMAT
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False


def check_folder(run):
    """Before training into ``run``: refuse a ``state-NNNNNN.npz`` that probvae did not write
    (neither named by its ``checkpoint.json`` nor carrying probvae's mark), since training
    would write over it, and a folder that cannot be written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / "state-000001.npz").write_bytes(b"mine")
    >>> check_folder(run)
    Traceback (most recent call last):
    ...
    probvae.outputs.OutputError: ... holds state-000001.npz, ...
    """
    run = Path(run)
    if not run.is_dir():
        return
    owned = {p.name for p in owned_states(run)}
    theirs = [p.name for p in sorted(run.iterdir()) if _NAME.fullmatch(p.name)
              and p.name not in owned and (p.is_symlink() or not _marked(p))]
    if theirs:
        raise OutputError(f"run folder {run} holds {', '.join(theirs[:3])}, named like "
                          "probvae's training states but not written by it; training would "
                          "write over it: move it away, or choose another folder (nothing "
                          "was written)")
    check_writable(run)
    if not os.access(run, os.W_OK):
        raise OutputError(f"cannot write to run folder {run}: permission denied; training "
                          "would fail at its first checkpoint: make it writable or choose "
                          "another folder")


def write(run, meta: dict, arrays: dict):
    """Write one training checkpoint (``meta`` needs an increasing integer ``counter``); then
    remove the state files of the checkpoints it replaces, and nothing else."""
    run = Path(run)
    name = f"state-{int(meta['counter']):06d}.npz"
    old = [p.name for p in owned_states(run) if p.name != name]
    remove_stale_temporaries(run, lambda n: n in RUN_FILES or bool(_NAME.fullmatch(n)))
    write_npz(run / name, {**arrays, _MARK: np.array(FORMAT)})
    record = {"format": FORMAT, "version": VERSION, **meta, "arrays": name, "stale": old}
    atomic_write(run / POINTER, lambda tmp: tmp.write_text(json_text(record)))
    for n in old:
        (run / n).unlink(missing_ok=True)


def write_folder(path, files: dict, overwrite=False, keep_checkpoint=False, plans=()):
    """Write the result files of a run folder (:func:`probvae.outputs.write_run` with the
    run's file names; ``plans``: the names the run will write later); unless
    ``keep_checkpoint``, an earlier training checkpoint there goes too, its state files
    included (the ones its ``checkpoint.json`` named, nothing else)."""
    path = Path(path)
    keep = [POINTER] if keep_checkpoint else []
    states = [] if keep_checkpoint or run_manifest(path) is None or not overwrite else [
        p for p in owned_states(path)]
    out = write_run(path, files, overwrite=overwrite, keep=keep, owns=RUN_FILES, plans=plans)
    for p in states:
        p.unlink(missing_ok=True)
    return out


def exists(run) -> bool:
    """True when ``run`` holds a training checkpoint."""
    return (Path(run) / POINTER).is_file()


def read(run, max_bytes=None) -> tuple:
    """``(meta, arrays)`` of the last checkpoint in ``run``, checked field by field.

    A missing, invalid or tampered ``checkpoint.json`` or arrays file raises an error that names
    the file and the field.
    """
    run = Path(run)
    path = run / POINTER
    if not path.is_file():
        raise FileNotFoundError(f"{run} holds no training checkpoint ({POINTER} is missing); "
                                "train with pv.fit(..., checkpoint=DIR) or probvae train --out "
                                "DIR to write one")
    meta = read_json(path, "the training checkpoint")
    for field, kind in _FIELDS.items():
        if field not in meta:
            raise DamagedFileError(f"{path}: field {field!r} is missing")
        check_field(meta[field], path, field, kind)
    if meta["format"] != FORMAT:
        raise DamagedFileError(f"{path}: field 'format' is {meta['format']!r}, not {FORMAT!r}")
    if meta["version"] > VERSION:
        raise DamagedFileError(f"{path} has version {meta['version']}; this probvae reads up to "
                               f"{VERSION}: upgrade probvae")
    check_field(meta["version"], path, "version", int, low=1)
    if not _NAME.fullmatch(meta["arrays"]):
        raise DamagedFileError(f"{path}: field 'arrays' must name a state-NNNNNN.npz file in "
                               f"the run folder, found {meta['arrays']!r}")
    if meta["epoch"] < 0:
        raise DamagedFileError(f"{path}: field 'epoch' is negative ({meta['epoch']})")
    check_field(meta["epoch"], path, "epoch", int, low=0, high=MAX_EPOCHS)
    check_field(meta["counter"], path, "counter", int, low=0, high=MAX_EPOCHS)
    check_field(meta.get("has_best", False), path, "has_best", bool)
    check_history(meta["history"], path)      # "tracker", "loop", "fit": checked by their users
    arrays = read_npz(run / meta["arrays"], max_bytes=max_bytes,
                      check=fits(run / meta["arrays"]))
    arrays.pop(_MARK, None)
    return meta, _checked_arrays(arrays, meta, path, run / meta["arrays"])


def _checked_arrays(arrays, meta, path, arrays_file) -> dict:
    """The arrays of a state file: real numbers (what the loops write), and the best
    parameters there exactly when ``checkpoint.json`` says so (its field ``has_best``)."""
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise DamagedFileError(f"{arrays_file}: array {name!r} has dtype {a.dtype}, not "
                                   "real numbers; the file is damaged: restore it or start again")
    has_best = any(name.startswith("best/") for name in arrays)
    if has_best != meta.get("has_best", False):
        raise DamagedFileError(
            f"{path}: field 'has_best' is {str(meta.get('has_best', False)).lower()} but "
            f"{arrays_file} holds {'' if has_best else 'no '}best parameters (arrays "
            "'best/...'); the checkpoint is damaged: restore it or start again")
    return arrays


def fits(path):
    """The memory check :func:`probvae.outputs.read_npz` runs on a file's declared size before
    it reads the arrays: room for them in this machine's free memory."""
    return lambda nbytes: check_allocation(
        nbytes, f"the arrays of {path}", "close other programs to free memory, or read it on "
        "a machine with more", what="reading a run folder")


def fingerprint(*batches) -> str:
    """A short hash of the training data, so a resume on other data is caught.

    Examples
    --------
    >>> a = {"x": np.zeros((2, 3), np.float32)}
    >>> fingerprint(a) == fingerprint({"x": np.zeros((2, 3), np.float32)}), fingerprint(a) == fingerprint({"x": np.ones((2, 3), np.float32)})
    (True, False)
    """
    h = hashlib.sha256()
    for batch in batches:
        if batch is None:
            h.update(b"none")
            continue
        for key in sorted(batch):
            a = np.ascontiguousarray(batch[key])
            h.update(key.encode())
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]
