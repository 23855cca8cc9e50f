"""Where probvae writes: output folders that never delete or overwrite what probvae did not write.

A *run folder* is one that probvae made: it holds ``config.json`` with ``"format":
"probvae-checkpoint"`` and a manifest (``"files"``) of the files probvae wrote there. The rules,
checked **before** any training starts:

* a folder that does not exist yet is created (its parents too);
* an empty folder is used as it is;
* an existing run folder is replaced only with ``overwrite=True`` (``--overwrite``), and then only
  the files its manifest names are replaced or removed: the manifest is a list of literal file
  names (never patterns), and only names of the files probvae writes count; anything else in the
  folder (your ``NOTES.txt``, a picture you made, a ``metrics.json`` of yours that the manifest
  does not list) stays, and a file of yours under a name probvae would write is refused;
* a non-empty folder that is not a run folder, a path that is a file, the data folder or a folder
  that contains it, and a place that cannot be written are refused with :class:`OutputError`;
* one writer at a time: :func:`writing` holds an advisory lock (``fcntl.flock`` on
  ``.NAME.probvae-lock`` beside the folder), which the operating system releases when the
  process ends, however it ends; a second writer is refused at once (:class:`FolderBusyError`,
  naming the process that holds it). Readers need no lock.

Files are written to a temporary name in the same folder and renamed into place, so a reader
never sees a half-written file, and a killed process leaves the previous version intact; the
temporary files a killed writer left are removed by the next writer of that folder.

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

import contextlib
import fcntl
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["OutputError", "DamagedFileError", "FolderBusyError", "FORMAT", "DIAGNOSTICS_FORMAT",
           "is_run", "run_manifest", "check_run_dir", "check_new_file", "check_writable",
           "atomic_write", "write_run", "read_json", "read_npz", "owned_files", "write_npz",
           "write_json", "writing", "remove_stale_temporaries", "TEMP_TAG", "check_field"]

#: the marker in ``config.json`` that makes a folder a probvae run folder
FORMAT = "probvae-checkpoint"
#: the marker in ``report.json`` of a folder written by ``probvae diagnose``
DIAGNOSTICS_FORMAT = "probvae-diagnostics"
_MARKERS = {FORMAT: "config.json", DIAGNOSTICS_FORMAT: "report.json"}


class OutputError(ValueError):
    """An output location probvae refuses to write to; the message names the fix."""


class FolderBusyError(OutputError):
    """Another process (or thread) is writing the output folder; the message names it."""


class DamagedFileError(ValueError):
    """A file probvae reads is damaged or not what it should be; the message names the file
    (and the field) and what to do."""


def _listing(path: Path, limit: int = 4) -> str:
    """A few of the names in folder ``path`` (its own entries, not its whole tree: a folder
    such as ``/`` holds places no one may read)."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    except OSError:
        return "its entries cannot be listed"
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
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != kind:
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        files = ["config.json", "params.npz", "history.json", "metrics.json"]   # version 1 runs
        files = files if kind == FORMAT else [_MARKERS[kind]]
    return [f for f in files if _plain_name(f)]


def _plain_name(name) -> bool:
    """A file name in the folder itself: no path, no hidden file, no pattern characters."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and not name.startswith(".")
            and not any(c in name for c in "/\\*?[]\0"))


def owned_files(path, manifest, names=None) -> list:
    """The regular files in folder ``path`` that ``manifest`` names, each entry a literal file
    name (never a pattern: an entry ``*`` names a file called ``*``); with ``names``, only
    those among them (the file names the writer knows it writes), so a manifest edited by
    hand cannot point probvae at a file of yours. Symbolic links are never owned.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("state-000001.npz", "notes.txt", "config.json"):
    ...     _ = (d / name).write_text("")
    >>> [p.name for p in owned_files(d, ["*", "state-*.npz", "config.json"])]
    ['config.json']
    >>> owned_files(d, ["notes.txt", "config.json"], names=["config.json", "params.npz"])
    [PosixPath('.../config.json')]
    """
    path = Path(path)
    wanted = [m for m in manifest if _plain_name(m) and (names is None or m in names)]
    return [path / m for m in dict.fromkeys(wanted)
            if (path / m).is_file() and not (path / m).is_symlink()]


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


def _why_not_run(path: Path, kind: str) -> str:
    """Why folder ``path`` is not a probvae folder of ``kind``: a damaged marker file reads as
    damaged, not as a file of yours."""
    marker = path / _MARKERS[kind]
    if not marker.is_file():
        return (f"output folder {path} holds files probvae did not write ({_listing(path)}); "
                "choose a new or empty folder (nothing was written)")
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError, RecursionError):
        return (f"output folder {path} holds a damaged {marker.name} (not readable JSON): a "
                "damaged probvae folder, or a file of yours; probvae replaces nothing there: "
                "restore the file, move the folder away, or choose a new folder (nothing was "
                "written)")
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt in _MARKERS:
        other = "a run folder" if fmt == FORMAT else "a diagnostics folder"
        return (f"output folder {path} is {other} ({marker.name} says format {fmt!r}), not "
                "the kind this command writes; choose a new or empty folder (nothing was "
                "written)")
    return (f"output folder {path} holds files probvae did not write ({_listing(path)}; its "
            f"{marker.name} is not a probvae {marker.name}); choose a new or empty folder "
            "(nothing was written)")


def check_run_dir(path, overwrite: bool = False, protect=(), kind: str = FORMAT,
                  writes=()) -> Path:
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
    writes : iterable of str
        The file names the writer will write: in an existing run folder, a file of one of
        these names that its manifest does not list is someone else's, and is refused.

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
    if target.parent == target:
        raise OutputError(f"output folder {path} is the root of the file system; name a folder "
                          "of its own, e.g. runs/NAME")
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
    if path.is_symlink() and not path.exists():
        raise OutputError(f"output folder {path} is a symbolic link to {os.readlink(path)}, "
                          "which does not exist; make that folder, or choose another name")
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"output folder {path} is a file, not a folder; choose another "
                              "name (probvae never replaces a file it did not write)")
        try:
            occupied = any(path.iterdir())
        except OSError as err:
            raise OutputError(f"cannot read output folder {path}: {err.strerror or err}; "
                              "choose a folder you can read and write") from None
        if occupied:
            manifest = run_manifest(path, kind)
            if manifest is None:
                raise OutputError(_why_not_run(path, kind))
            if not overwrite:
                what = "run" if kind == FORMAT else "diagnosis"
                raise OutputError(f"output folder {path} holds an earlier probvae {what}; pass "
                                  "overwrite=True (CLI: --overwrite) to replace it, or choose "
                                  "a new folder")
            theirs = [n for n in dict.fromkeys(writes) if n not in manifest
                      and ((path / n).exists() or (path / n).is_symlink())]
            if theirs:
                it = "it" if len(theirs) == 1 else "them"
                raise OutputError(f"output folder {path} holds {', '.join(theirs)}, which its "
                                  f"manifest ({_MARKERS[kind]}'s \"files\") does not list: "
                                  f"probvae did not write {it} and will not replace {it}; move "
                                  f"{it} away, or choose a new folder (nothing was written)")
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


#: the tag in the names of probvae's temporary files and staging folders
TEMP_TAG = "probvae-tmp-"
_STAGE_TAG = "probvae-stage-"


def atomic_write(path, write) -> Path:
    """Write file ``path`` through ``write(tmp_path)`` to a temporary file, then rename.

    The temporary file (``.NAME.probvae-tmp-XXXXXXXX``) sits in the same folder, so the rename
    is atomic, and is removed if ``write`` fails; the file is flushed to disk before the
    rename. One that a killed process left is removed by the next writer of a run folder
    (:func:`remove_stale_temporaries`).

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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{TEMP_TAG}")
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


#: a temporary file of :func:`atomic_write` (and of earlier versions: ``.NAME.XXXXXXXX.tmp``)
_TEMP = re.compile(r"\.(?P<name>.+)\.(?:" + TEMP_TAG + r"[a-z0-9_]{8}|[a-z0-9_]{8}\.tmp)")


def remove_stale_temporaries(folder, owns) -> list:
    """Remove the temporary files a killed writer left in ``folder``: those of
    :func:`atomic_write` for a file name ``owns(name)`` says the caller writes there. Call
    it only while holding the folder's lock (:func:`writing`): no other writer is at work.
    Returns the names removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in (".params.npz.probvae-tmp-ab3k9_x1", ".notes.txt.probvae-tmp-ab3k9_x1",
    ...              "params.npz.tmp"):
    ...     _ = (d / name).write_text("")
    >>> remove_stale_temporaries(d, lambda name: name == "params.npz")
    ['.params.npz.probvae-tmp-ab3k9_x1']
    """
    folder = Path(folder)
    removed = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP.fullmatch(p.name)
        if m and owns(m.group("name")) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


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
              keep=(), owns=None, plans=()) -> Path:
    """Write a run folder: ``files`` maps a file name to ``write(tmp_path)``.

    The marker file (``config.json`` for a run) must be among the files and is written last;
    its content carries ``"format": kind`` and the manifest of every file written (key
    ``"files"``). A new folder is assembled aside and renamed into place; an existing run
    folder (``overwrite=True``) has its own files replaced one by one and its stale ones
    removed: those its old manifest names, that are not written now nor in ``keep``, and
    whose names are among ``owns`` (every file name this kind of folder may hold; default:
    the names in ``files``). Nothing else is touched, and a file of yours under one of the
    names in ``files`` or ``plans`` (the files the writer will add later, such as a training's
    checkpoints) that the old manifest does not list is refused before anything is written.
    The folder's lock (:func:`writing`) is held throughout.

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> cfg = lambda tmp: tmp.write_text(json.dumps({"format": FORMAT, "files": ["config.json"]}))
    >>> _ = write_run(run, {"config.json": cfg})
    >>> is_run(run)
    True
    """
    marker = _MARKERS[kind]
    if marker not in files:
        raise ValueError(f"a probvae output folder needs a {marker}")
    names = list(files)
    owns = set(names if owns is None else owns) | set(names)
    check_run_dir(path, overwrite=overwrite, protect=protect, kind=kind, writes=[*names, *plans])
    with writing(path):                  # checked again inside: another writer may have been
        path = check_run_dir(path, overwrite=overwrite, protect=protect, kind=kind,
                             writes=[*names, *plans])
        target = path.resolve()           # a link to a folder: write the folder it names
        if target.is_dir() and any(target.iterdir()):
            old = run_manifest(target, kind) or []
            remove_stale_temporaries(target, owns.__contains__)
            for name in names:
                if name != marker:
                    atomic_write(target / name, files[name])
            atomic_write(target / marker, files[marker])
            stale = [m for m in old if m not in names and m not in keep]
            for f in owned_files(target, stale, names=owns):
                f.unlink(missing_ok=True)
            return path
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_stages(target)
        stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.{_STAGE_TAG}"))
        try:
            os.chmod(stage, 0o755)
            for name in names:
                atomic_write(stage / name, files[name])
            if target.is_dir():
                os.rmdir(target)             # empty (checked above): nothing of yours is in it
            os.rename(stage, target)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    return path


def _remove_stale_stages(target: Path):
    """The staging folders a killed writer of ``target`` left beside it (lock held)."""
    pattern = re.compile(re.escape(f".{target.name}.{_STAGE_TAG}") + r"[a-z0-9_]{8}")
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return
    for p in entries:
        if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------- one writer per folder
_HELD: dict = {}                 # lock file -> [fd, depth, thread id]
_HELD_GUARD = threading.Lock()
_LOCK_TAG = "probvae-lock"


def _lock_file(path) -> Path:
    target = Path(path).resolve()
    if target.parent == target:
        raise OutputError(f"output folder {path} is the root of the file system; name a folder "
                          "of its own, e.g. runs/NAME")
    return target.parent / f".{target.name}.{_LOCK_TAG}"


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text() or "{}")
        return (f"process {int(info['pid'])} on {info['host']} "
                f"({info['command'][:120]}, since {info['since']})")
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "another process"


@contextlib.contextmanager
def writing(path):
    """Hold the one-writer lock of output folder ``path`` for the block.

    The lock is ``fcntl.flock`` on ``.NAME.probvae-lock`` beside the folder (so it exists
    before the folder does, and a new folder can still be renamed into place). The operating
    system releases it when the process ends, however it ends (``kill -9`` included), so a
    folder is never left locked. A second writer, in another process or another thread, is
    refused at once with :class:`FolderBusyError` naming the process that holds it; the same
    thread may take it again (``probvae train`` holds it while ``fit`` and ``save`` take it).
    The lock file is removed when released.

    Examples
    --------
    >>> import tempfile, pathlib, subprocess, sys
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with writing(run):
    ...     other = subprocess.run([sys.executable, "-c", "import probvae.outputs as o\\n"
    ...                             f"with o.writing({str(run)!r}): pass"], capture_output=True,
    ...                            text=True)
    >>> "is being written by process" in other.stderr
    True
    """
    lock = _lock_file(path)
    me = threading.get_ident()
    with _HELD_GUARD:
        held = _HELD.get(lock)
        if held is not None:
            if held[2] != me:
                raise FolderBusyError(f"output folder {path} is being written by another thread "
                                      "of this process; wait for it to finish, or choose "
                                      "another folder")
            held[1] += 1
        else:
            _HELD[lock] = [_acquire(lock, path), 1, me]
    try:
        yield Path(path)
    finally:
        with _HELD_GUARD:
            held = _HELD[lock]
            held[1] -= 1
            if held[1] == 0:
                del _HELD[lock]
                try:
                    lock.unlink(missing_ok=True)   # while still held: no one else has it now
                finally:
                    os.close(held[0])


def _acquire(lock: Path, path) -> int:
    for _ in range(100):
        try:
            if not lock.parent.is_dir():     # a new folder's parents are made (checked first)
                check_writable(lock.parent)
                lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise OutputError(f"cannot write to {path}: {err.strerror or err} (probvae keeps "
                              f"its lock file {lock.name} in {lock.parent}); choose a folder you "
                              "can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise FolderBusyError(f"output folder {path} is being written by {_holder(lock)}; "
                                  "one writer at a time: wait for it to finish or stop it, or "
                                  "choose another folder (nothing was written)") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if not same:              # the holder removed it as we opened it: take the new one
            os.close(fd)
            continue
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "command": " ".join(sys.argv) or "python",
                "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        return fd
    raise FolderBusyError(f"output folder {path}: could not take its lock; try again")


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
    except RecursionError:
        raise DamagedFileError(f"{path} nests its JSON deeper than Python can read (more than "
                               f"{_MAX_DEPTH} levels is never written by probvae); the file is "
                               "damaged: restore it or retrain") from None
    except ValueError as err:         # e.g. an integer of more digits than Python converts
        raise DamagedFileError(f"{path} is not valid JSON ({err}); the file is damaged: "
                               "restore it or retrain") from None
    if not isinstance(data, dict):
        raise DamagedFileError(f"{path} should hold a JSON object, found {type(data).__name__}")
    deep = _too_deep(data, _MAX_DEPTH)
    if deep is not None:
        raise DamagedFileError(f"{path}: field {deep!r} nests more than {_MAX_DEPTH} levels "
                               "deep, which probvae never writes; the file is damaged: restore "
                               "it or retrain")
    return data


#: the deepest nesting of lists and objects a JSON file probvae reads may have
_MAX_DEPTH = 64


def _too_deep(data: dict, limit: int):
    """The top-level field of ``data`` that nests lists and objects more than ``limit``
    levels deep (counted without recursion), or None."""
    stack = [(value, 2, key) for key, value in data.items()]
    while stack:
        value, depth, top = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return top
            stack.extend((v, depth + 1, top)
                         for v in (value.values() if isinstance(value, dict) else value))
    return None


def _short(value, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters (a field may hold a number of 400 digits)."""
    try:
        text = repr(value)
    except ValueError:                  # an int too long for repr
        return f"an integer of more than {sys.get_int_max_str_digits()} digits"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _finite(value) -> bool:
    """Whether a JSON number is finite as a float (an integer of 400 digits is not)."""
    try:
        return bool(np.isfinite(float(value)))
    except OverflowError:
        return False


_JSON_TYPES = {dict: "dict", list: "list", str: "str", bool: "bool", int: "int", float: "float",
               type(None): "null"}


def check_field(value, path, field: str, kind, low=None, high=None, none: bool = False):
    """``value``, field ``field`` of the file at ``path``, checked against what probvae writes
    there: a JSON value of type ``kind`` (``int``, ``float`` for any finite number, ``str``,
    ``bool``, ``dict`` or ``list``; or a tuple of them), with ``none=True`` also null, and a
    number within ``low``..``high``. Anything else raises :class:`DamagedFileError` naming
    the file and the field. Returns ``value``.

    Examples
    --------
    >>> check_field(3, "run/checkpoint.json", "epoch", int, low=0)
    3
    >>> check_field("3", "run/checkpoint.json", "tracker.best_epoch", int, none=True)
    Traceback (most recent call last):
    ...
    probvae.outputs.DamagedFileError: run/checkpoint.json: field 'tracker.best_epoch' should be int or null, found str '3'
    >>> check_field(2 ** 70, "run/config.json", "seed", int, low=0, high=2 ** 32 - 1)
    Traceback (most recent call last):
    ...
    probvae.outputs.DamagedFileError: run/config.json: field 'seed' is 1180591620717411303424, outside 0..4294967295
    """
    if value is None and none:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = any(isinstance(value, (int, float)) and not isinstance(value, bool)
             if k is float else isinstance(value, k) and (k is bool or not isinstance(value, bool))
             for k in kinds)
    if not ok:
        found = _JSON_TYPES.get(type(value), type(value).__name__)
        shown = f" {_short(value)}" if isinstance(value, (int, float, str)) else ""
        wanted = " or ".join(_JSON_TYPES.get(k, k.__name__) for k in kinds)
        raise DamagedFileError(f"{path}: field {field!r} should be {wanted}"
                               f"{' or null' if none else ''}, found {found}{shown}")
    if float in kinds and isinstance(value, (int, float)) and not (
            isinstance(value, int) and int in kinds) and not _finite(value):
        raise DamagedFileError(f"{path}: field {field!r} should be a finite number, found "
                               f"{_short(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (
            (low is not None and value < low) or (high is not None and value > high)):
        bounds = (f"{low}..{high}" if low is not None and high is not None else
                  f">= {low}" if low is not None else f"<= {high}")
        raise DamagedFileError(f"{path}: field {field!r} is {_short(value)}, outside {bounds}")
    return value


def read_npz(path, max_bytes: int | None = None, check=None) -> dict:
    """The arrays of a ``.npz`` file as ``{name: ndarray}``, checked before they are read.

    Every array's header is read first: an object (pickled) array, a header that declares more
    data than the file holds, or more than ``max_bytes`` in all is refused with the file and
    array named, before anything large is allocated; a truncated or empty file gets an error
    that says so. ``check(total_bytes)``, when given, runs after the headers and before the
    arrays are read (:func:`probvae.memory.check_allocation`: room in this machine's memory).

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
                    if any(not isinstance(n, int) or n < 0 for n in shape):
                        raise DamagedFileError(f"{path}: array {name!r} declares shape "
                                               f"{_short(shape)}; the file is damaged")
                    if dtype.hasobject:
                        raise DamagedFileError(f"{path}: array {name!r} holds Python objects "
                                               "(pickled data), which probvae never writes "
                                               "nor loads")
                    nbytes = dtype.itemsize
                    for n in shape:                # Python ints: no overflow
                        nbytes *= n
                    if nbytes > info.file_size:
                        raise DamagedFileError(
                            f"{path}: array {name!r} declares shape {shape} ({nbytes} bytes) "
                            f"but holds {info.file_size} bytes; the file is damaged")
                    total += nbytes
                    if max_bytes is not None and total > max_bytes:
                        raise DamagedFileError(f"{path}: the arrays need more than {max_bytes} "
                                               "bytes, far more than the model they belong to")
            if check is not None:
                check(total)
            for info in infos:
                with zf.open(info) as f:
                    out[info.filename[:-4]] = fmt.read_array(f, allow_pickle=False)
    except (DamagedFileError, MemoryError):
        raise
    except Exception as err:   # zipfile, zlib and NumPy raise many kinds on a damaged file
        raise DamagedFileError(f"{path} is damaged (truncated or not a NumPy .npz archive: "
                               f"{type(err).__name__}: {str(err)[:200]}); restore it or "
                               "retrain") from None
    return out
