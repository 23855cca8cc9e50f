"""Where probvae writes: output folders that never delete or overwrite what probvae did not write.

A *run folder* is one that probvae made: it holds ``config.json`` with ``"format":
"probvae-checkpoint"`` and a manifest (``"files"``) of the files probvae wrote there. The rules,
checked **before** any training starts:

* a folder that does not exist yet is created (its parents too);
* an empty folder is used as it is;
* an existing run folder is replaced only with ``overwrite=True`` (``--overwrite``), and then only
  the files in its manifest are replaced or removed: anything else in it (your ``NOTES.txt``, a
  picture you made) stays;
* a non-empty folder that is not a run folder, a path that is a file, the data folder or a folder
  that contains it, and a place that cannot be written are refused with :class:`OutputError`.

Files are written to a temporary name in the same folder and renamed into place, so a reader
never sees a half-written file, and a killed process leaves the previous version intact.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "thesis.tex").write_text("my thesis")
9
>>> check_run_dir(root)
Traceback (most recent call last):
...
probvae.outputs.OutputError: ... holds files probvae did not write (thesis.tex); ...
>>> check_run_dir(root / "run").name
'run'
"""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["OutputError", "DamagedFileError", "FORMAT", "DIAGNOSTICS_FORMAT", "is_run",
           "run_manifest", "check_run_dir", "check_new_file", "check_writable", "atomic_write",
           "write_run", "read_json", "read_npz", "owned_files", "write_npz", "write_json"]

#: the marker in ``config.json`` that makes a folder a probvae run folder
FORMAT = "probvae-checkpoint"
#: the marker in ``report.json`` of a folder written by ``probvae diagnose``
DIAGNOSTICS_FORMAT = "probvae-diagnostics"
_MARKERS = {FORMAT: "config.json", DIAGNOSTICS_FORMAT: "report.json"}


class OutputError(ValueError):
    """An output location probvae refuses to write to; the message names the fix."""


class DamagedFileError(ValueError):
    """A file probvae reads is damaged or not what it should be; the message names the file
    (and the field) and what to do."""


def _listing(path: Path, limit: int = 4) -> str:
    names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    names = names or sorted(p.name for p in path.iterdir())
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def run_manifest(path, kind: str = FORMAT) -> list | None:
    """The files probvae wrote in folder ``path`` (None when probvae did not write it).

    ``kind`` is :data:`FORMAT` for a run folder (marked by ``config.json``) or
    :data:`DIAGNOSTICS_FORMAT` for a ``probvae diagnose`` folder (marked by ``report.json``).

    Examples
    --------
    >>> run_manifest("no/such/folder") is None
    True
    """
    cfg = Path(path) / _MARKERS[kind]
    try:
        data = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != kind:
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        files = ["config.json", "params.npz", "history.json", "metrics.json"]   # version 1 runs
        files = files if kind == FORMAT else [_MARKERS[kind]]
    return [f for f in files if f and "/" not in f and "\\" not in f and not f.startswith(".")]


def owned_files(path, manifest) -> list:
    """The files in ``path`` that a manifest names (entries may be ``*`` patterns, such as the
    numbered training states ``state-*.npz``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("state-000001.npz", "notes.txt"):
    ...     _ = (d / name).write_text("")
    >>> [p.name for p in owned_files(d, ["state-*.npz", "config.json"])]
    ['state-000001.npz']
    """
    path = Path(path)
    if not path.is_dir():
        return []
    names = sorted(p.name for p in path.iterdir() if p.is_file())
    return [path / n for n in names if any(fnmatch.fnmatchcase(n, m) for m in manifest)]


def is_run(path, kind: str = FORMAT) -> bool:
    """True when ``path`` is a folder that probvae wrote (its ``config.json`` says so).

    Examples
    --------
    >>> is_run("no/such/folder")
    False
    """
    return Path(path).is_dir() and run_manifest(path, kind) is not None


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe


def check_writable(path) -> Path:
    """Raise :class:`OutputError` unless folder ``path`` exists or can be created and written.

    Nothing is left behind: the probe is a temporary folder, removed at once.

    Examples
    --------
    >>> check_writable("/proc/no/such/place")
    Traceback (most recent call last):
    ...
    probvae.outputs.OutputError: cannot write to /proc/no/such/place: ...
    """
    path = Path(path)
    base = _nearest_existing(path.absolute())
    if not base.is_dir():
        raise OutputError(f"cannot write to {path}: {base} is a file, not a folder; "
                          "choose another output folder")
    try:
        probe = tempfile.mkdtemp(dir=base, prefix=".probvae-probe-")
        os.rmdir(probe)
    except OSError as err:
        raise OutputError(f"cannot write to {path}: {err.strerror or err} (in {base}); "
                          "choose a folder you can write to") from None
    return path


def _inside(a: Path, b: Path) -> bool:
    """True when ``a`` is ``b`` or lies inside it."""
    try:
        a.relative_to(b)
        return True
    except ValueError:
        return False


def check_run_dir(path, overwrite: bool = False, protect=(), kind: str = FORMAT) -> Path:
    """Check that a run may be written to folder ``path``; raise :class:`OutputError` if not.

    Parameters
    ----------
    path : str or Path
        The run folder to write.
    overwrite : bool
        Allow replacing an existing run folder (only the files probvae wrote there).
    protect : iterable of paths
        Folders that must not be written into nor contain the output (the data folder).
    kind : str
        :data:`FORMAT` (a run) or :data:`DIAGNOSTICS_FORMAT` (a diagnostics folder).

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> data_dir = pathlib.Path(tempfile.mkdtemp())
    >>> check_run_dir(data_dir / "run", protect=[data_dir])
    Traceback (most recent call last):
    ...
    probvae.outputs.OutputError: ... is inside the data folder ...
    """
    path = Path(path)
    if str(path).strip() == "":
        raise OutputError("the output folder is empty; name a folder such as runs/NAME")
    target = path.resolve()
    for p in protect:
        if p is None:
            continue
        p = Path(p).expanduser().resolve()
        if _inside(target, p):
            raise OutputError(f"output folder {path} is inside the data folder {p}; probvae "
                              "never writes there: choose another folder, e.g. runs/NAME")
        if _inside(p, target):
            raise OutputError(f"output folder {path} contains the data folder {p}; choose a "
                              "folder of its own, e.g. runs/NAME")
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise OutputError(f"output folder {path} is a file, not a folder; choose another "
                              "name (probvae never replaces a file it did not write)")
        if any(path.iterdir()):
            if not is_run(path, kind):
                raise OutputError(f"output folder {path} holds files probvae did not write "
                                  f"({_listing(path)}); choose a new or empty folder "
                                  "(nothing was written)")
            if not overwrite:
                what = "run" if kind == FORMAT else "diagnosis"
                raise OutputError(f"output folder {path} holds an earlier probvae {what}; pass "
                                  "overwrite=True (CLI: --overwrite) to replace it, or choose "
                                  "a new folder")
    return check_writable(path)


def check_new_file(path, overwrite: bool = False) -> Path:
    """Check that a single output file may be written: refuse to replace an existing file
    unless ``overwrite``, and check the folder is writable.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "mine.png"
    >>> _ = f.write_bytes(b"mine")
    >>> check_new_file(f)
    Traceback (most recent call last):
    ...
    probvae.outputs.OutputError: ... already exists; ...
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; name a file to write")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; pass --overwrite (overwrite=True) to "
                          "replace it, or choose another name")
    check_writable(path.parent if str(path.parent) else Path("."))
    return path


def atomic_write(path, write) -> Path:
    """Write file ``path`` through ``write(tmp_path)`` to a temporary file, then rename.

    The temporary file sits in the same folder (so the rename is atomic) and is removed if
    ``write`` fails; the file is flushed to disk before the rename.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = atomic_write(f, lambda tmp: tmp.write_text("hello"))
    >>> f.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_npz(path, arrays: dict) -> Path:
    """Write ``{name: ndarray}`` to ``path`` as ``.npz``, atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = write_npz(pathlib.Path(tempfile.mkdtemp()) / "a.npz", {"w": np.zeros(2)})
    >>> sorted(read_npz(f))
    ['w']
    """
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return atomic_write(path, write)


def write_json(path, obj) -> Path:
    """Write ``obj`` to ``path`` as indented JSON, atomically (NumPy values become lists).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> read_json(write_json(pathlib.Path(tempfile.mkdtemp()) / "a.json", {"a": np.int64(2)}))
    {'a': 2}
    """
    return atomic_write(path, lambda tmp: tmp.write_text(json_text(obj)))


def json_text(obj) -> str:
    """``obj`` as indented JSON text; NumPy arrays and scalars become lists and numbers."""
    def plain(v):
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
        raise TypeError(f"not JSON serialisable: {type(v).__name__}")
    return json.dumps(obj, indent=2, default=plain)


def write_run(path, files: dict, overwrite: bool = False, protect=(), kind: str = FORMAT,
              keep=()) -> Path:
    """Write a run folder: ``files`` maps a file name to ``write(tmp_path)``.

    The marker file (``config.json`` for a run) must be among the files and is written last;
    its content carries ``"format": kind`` and the manifest of every file written (key
    ``"files"``). A new folder is assembled aside and renamed into place;
    an existing run folder (``overwrite=True``) has its own files replaced one by one and its
    stale ones (in the old manifest, not written now) removed; nothing else is touched.

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> cfg = lambda tmp: tmp.write_text(json.dumps({"format": FORMAT, "files": ["config.json"]}))
    >>> _ = write_run(run, {"config.json": cfg})
    >>> is_run(run)
    True
    """
    path = check_run_dir(path, overwrite=overwrite, protect=protect, kind=kind)
    marker = _MARKERS[kind]
    if marker not in files:
        raise ValueError(f"a probvae output folder needs a {marker}")
    names = list(files)
    if path.is_dir() and any(path.iterdir()):
        old = run_manifest(path, kind) or []
        for name in names:
            if name != marker:
                atomic_write(path / name, files[name])
        atomic_write(path / marker, files[marker])
        stale = [m for m in old if m not in names and m not in keep]
        for f in owned_files(path, stale):
            f.unlink(missing_ok=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(stage, 0o755)
        for name in names:
            atomic_write(stage / name, files[name])
        if path.is_dir():
            os.rmdir(path)                   # empty (checked above): nothing of yours is in it
        os.rename(stage, path)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return path


def read_json(path, what: str = "") -> dict:
    """A JSON object from ``path``; a missing, unreadable or invalid file raises an error that
    names the file (:class:`DamagedFileError`, or FileNotFoundError when it is absent).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "config.json"
    >>> _ = f.write_text('{"a": 1,')
    >>> read_json(f)
    Traceback (most recent call last):
    ...
    probvae.outputs.DamagedFileError: .../config.json is not valid JSON (line 1, column 9: Expecting property name enclosed in double quotes); the file is damaged: restore it or retrain
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing{what and ' (' + what + ')'}")
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise DamagedFileError(f"{path} is not a text file; the file is damaged: restore it "
                               "or retrain") from None
    except json.JSONDecodeError as err:
        raise DamagedFileError(f"{path} is not valid JSON (line {err.lineno}, column "
                               f"{err.colno}: {err.msg}); the file is damaged: restore it or "
                               "retrain") from None
    if not isinstance(data, dict):
        raise DamagedFileError(f"{path} should hold a JSON object, found {type(data).__name__}")
    return data


def read_npz(path, max_bytes: int | None = None) -> dict:
    """The arrays of a ``.npz`` file as ``{name: ndarray}``, checked before they are read.

    Every array's header is read first: an object (pickled) array, a header that declares more
    data than the file holds, or more than ``max_bytes`` in all is refused with the file and
    array named, before anything large is allocated; a truncated or empty file gets an error
    that says so.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "params.npz"
    >>> np.savez(f, w=np.ones(3))
    >>> read_npz(f)["w"].tolist()
    [1.0, 1.0, 1.0]
    >>> _ = f.write_bytes(f.read_bytes()[:40])
    >>> read_npz(f)
    Traceback (most recent call last):
    ...
    probvae.outputs.DamagedFileError: .../params.npz is damaged (truncated or not a NumPy .npz archive: ...); restore it or retrain
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    fmt = np.lib.format
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if i.filename.endswith(".npy")]
            if not infos and zf.infolist():
                raise DamagedFileError(f"{path} holds no arrays; restore it or retrain")
            total = 0
            for info in infos:
                name = info.filename[:-4]
                with zf.open(info) as f:
                    version = fmt.read_magic(f)
                    read_header = (fmt.read_array_header_1_0 if version == (1, 0)
                                   else fmt.read_array_header_2_0)
                    shape, _, dtype = read_header(f)
                    if dtype.hasobject:
                        raise DamagedFileError(f"{path}: array {name!r} holds Python objects "
                                               "(pickled data), which probvae never writes "
                                               "nor loads")
                    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    if nbytes > info.file_size:
                        raise DamagedFileError(
                            f"{path}: array {name!r} declares shape {shape} ({nbytes} bytes) "
                            f"but holds {info.file_size} bytes; the file is damaged")
                    total += nbytes
                    if max_bytes is not None and total > max_bytes:
                        raise DamagedFileError(f"{path}: the arrays need more than {max_bytes} "
                                               "bytes, far more than the model they belong to")
            for info in infos:
                with zf.open(info) as f:
                    out[info.filename[:-4]] = fmt.read_array(f, allow_pickle=False)
    except DamagedFileError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, zipfile.LargeZipFile) as err:
        raise DamagedFileError(f"{path} is damaged (truncated or not a NumPy .npz archive: "
                               f"{err}); restore it or retrain") from None
    return out
