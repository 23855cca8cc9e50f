"""Training checkpoints inside a run folder: written so that a kill at any instant leaves the
last complete one readable.

Each checkpoint's arrays go to a new numbered file ``state-NNNNNN.npz`` (written to a temporary
name, flushed and renamed); then ``checkpoint.json`` (epoch, history, the loop's JSON state and
the name of that arrays file) replaces the previous one the same way; then older arrays files
are removed. A reader follows ``checkpoint.json``, which always names a complete file. JSON and
NumPy arrays only: nothing is unpickled.

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

import hashlib
import re
from pathlib import Path

import numpy as np

from probvae.outputs import (DamagedFileError, atomic_write, json_text, owned_files, read_json,
                             read_npz, write_npz)

__all__ = ["FORMAT", "POINTER", "PATTERN", "write", "read", "exists", "fingerprint"]

FORMAT = "probvae-train-state"
VERSION = 1
POINTER = "checkpoint.json"
PATTERN = "state-*.npz"
_NAME = re.compile(r"state-\d{6,}\.npz")
#: fields every checkpoint.json has, with their JSON types
_FIELDS = {"format": str, "version": int, "arrays": str, "epoch": int, "counter": int,
           "history": dict, "tracker": dict, "loop": dict, "fit": dict, "status": str}


def write(run, meta: dict, arrays: dict):
    """Write one training checkpoint (``meta`` needs an increasing integer ``counter``)."""
    run = Path(run)
    name = f"state-{int(meta['counter']):06d}.npz"
    write_npz(run / name, arrays)
    record = {"format": FORMAT, "version": VERSION, **meta, "arrays": name}
    atomic_write(run / POINTER, lambda tmp: tmp.write_text(json_text(record)))
    for f in owned_files(run, [PATTERN]):
        if f.name != name:
            f.unlink(missing_ok=True)


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
        if not isinstance(meta[field], kind) or (kind is int and isinstance(meta[field], bool)):
            raise DamagedFileError(f"{path}: field {field!r} should be {kind.__name__}, found "
                                   f"{type(meta[field]).__name__}")
    if meta["format"] != FORMAT:
        raise DamagedFileError(f"{path}: field 'format' is {meta['format']!r}, not {FORMAT!r}")
    if meta["version"] > VERSION:
        raise DamagedFileError(f"{path} has version {meta['version']}; this probvae reads up to "
                               f"{VERSION}: upgrade probvae")
    if not _NAME.fullmatch(meta["arrays"]):
        raise DamagedFileError(f"{path}: field 'arrays' must name a state-NNNNNN.npz file in "
                               f"the run folder, found {meta['arrays']!r}")
    if meta["epoch"] < 0:
        raise DamagedFileError(f"{path}: field 'epoch' is negative ({meta['epoch']})")
    arrays = read_npz(run / meta["arrays"], max_bytes=max_bytes)
    return meta, arrays


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
