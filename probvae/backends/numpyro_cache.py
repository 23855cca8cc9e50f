"""What a NumPyro fit keeps between runs, behind one object: :class:`ProgramCache`.

A second run of a NumPyro fit skips most of its start-up: XLA's compiled programs come from
JAX's persistent compilation cache, and the loop's traced programs (``jax.export``, see
``probvae.inference.programs``) from files beside them, named by a :class:`ProgramKey`. Both
need NumPyro to trace the same program in every process, so the cache also owns the one
patch that makes it so (:meth:`ProgramCache.sorted_sets`).

Nothing here happens at import: the NumPyro loop calls :meth:`ProgramCache.start` when a fit
first needs the cache, and :meth:`~ProgramCache.sorted_sets` around the tracing it does.

Examples
--------
>>> key = ProgramKey("the fit's settings", lr=1e-3, rows=1000, batch_size=32)
>>> key == ProgramKey("the fit's settings", lr=1e-3, rows=1000, batch_size=32)
True
>>> key == ProgramKey("the fit's settings", lr=1e-2, rows=1000, batch_size=32)
False
>>> cache = ProgramCache()                  # off until a fit starts it (or ``use``)
>>> cache.folder, cache.path(key), cache.load(key)
(None, None, {})
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import os
import platform
import sys
import threading
from importlib import metadata
from pathlib import Path

import jax
import numpy as np

from ..outputs import write_npz

__all__ = ["ProgramCache", "ProgramKey", "default_cache_dir", "CACHE_ENV", "CACHE_DIR_ENV"]

#: environment variables: PROBVAE_COMPILATION_CACHE=0 turns the persistent compilation cache
#: off; PROBVAE_CACHE_DIR moves it (default: $XDG_CACHE_HOME/probvae, else ~/.cache/probvae)
CACHE_ENV, CACHE_DIR_ENV = "PROBVAE_COMPILATION_CACHE", "PROBVAE_CACHE_DIR"
#: the version of the kept programs' file layout (a new one makes new keys)
FORMAT = 1
#: libraries whose version changes the traced program
LIBRARIES = ("jax", "jaxlib", "numpyro", "equinox", "optax")
_MISSING = object()


def default_cache_dir() -> Path:
    """Where compiled XLA programs are kept between runs.

    Examples
    --------
    >>> default_cache_dir().name
    'jax'
    """
    root = os.environ.get(CACHE_DIR_ENV)
    if root:
        return Path(root).expanduser() / "jax"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "probvae" / "jax"


def library_versions() -> tuple:
    """``((library, version), ...)`` of the libraries that shape a traced program.

    >>> [name for name, _ in library_versions()][:3]
    ['jax', 'jaxlib', 'numpyro']
    """
    return tuple((lib, metadata.version(lib)) for lib in LIBRARIES)


@dataclasses.dataclass(frozen=True)
class ProgramKey:
    """Everything that shapes the traced programs of one NumPyro fit: equal keys, the same
    programs. Its :meth:`digest` names their file.

    The settings come from the fit; the environment (library versions, Python, machine, JAX's
    platform and precision) is read where the key is made.

    Parameters
    ----------
    config : str
        The fit's settings that shape the model and the objective (the model's configuration,
        the objective and its options, missing values, binarization), as one string: what
        ``fit`` passes the loop as ``cache_key``.
    lr, clip_norm : float or None
        Adam's learning rate and the gradient clipping (both inside the compiled update).
    rows, batch_size, labelled_rows, labelled_batch_size : int or None
        The training rows and batch size, and the labelled ones (None: no labels).
    data, labelled, validation : tuple or None
        ``((name, shape, dtype), ...)`` of the training, labelled and validation batches.
    binarize : bool
        Whether the programs draw binary pixels (dynamic binarization).
    kl_schedule : bool
        Whether the programs take a KL weight.
    source : str
        A hash of probvae's source (``probvae.inference.programs.source_hash``).
    libraries, python, machine, jax_backend, x64, format
        The environment, read when the key is made.

    Examples
    --------
    >>> a = ProgramKey("settings", lr=1e-3, rows=100, batch_size=32)
    >>> a.digest() == str(a) == ProgramKey("settings", lr=1e-3, rows=100, batch_size=32).digest()
    True
    >>> a.digest() == ProgramKey("settings", lr=1e-3, rows=100, batch_size=16).digest()
    False
    """

    config: str
    lr: float | None = None
    clip_norm: float | None = None
    rows: int | None = None
    batch_size: int | None = None
    labelled_rows: int | None = None
    labelled_batch_size: int | None = None
    data: tuple | None = None
    labelled: tuple | None = None
    validation: tuple | None = None
    binarize: bool = False
    kl_schedule: bool = False
    source: str = ""
    libraries: tuple = dataclasses.field(default_factory=library_versions)
    python: str = sys.version
    machine: str = dataclasses.field(default_factory=platform.machine)
    jax_backend: str = dataclasses.field(default_factory=lambda: jax.default_backend())
    x64: bool = dataclasses.field(default_factory=lambda: bool(jax.config.jax_enable_x64))
    format: int = FORMAT

    def digest(self) -> str:
        """The file name of the programs made under this key (40 hex digits)."""
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:40]

    def __str__(self):
        return self.digest()


class _SortedSet(set):
    """A set that iterates in sorted order (site names, plate frames)."""

    def __iter__(self):
        return iter(sorted(set.__iter__(self)))

    def union(self, *others):
        return _SortedSet(set.union(self, *others))


class ProgramCache:
    """The start-up caches of NumPyro fits: a folder of XLA's compiled programs (JAX's
    persistent compilation cache, switched on for the process) with probvae's traced programs
    beside it, files named by :class:`ProgramKey`; and the order in which NumPyro's ELBOs sum
    their sites, which must be the same in every process for either cache to hit.

    Making one switches nothing on. :meth:`start` switches JAX's cache on in the default
    folder (:func:`default_cache_dir`) the first time a fit needs it, unless
    ``PROBVAE_COMPILATION_CACHE=0`` is set, :meth:`use` chose already, or the user configured
    JAX's ``jax_compilation_cache_dir`` (then probvae keeps theirs and no programs of its own).
    The NumPyro backend holds one: ``probvae.backends.get("numpyro").program_cache``.

    Examples
    --------
    >>> import numpyro.infer.elbo as elbo
    >>> with ProgramCache.sorted_sets():         # NumPyro's ELBOs sum sites in sorted order
    ...     list(elbo.set(["z", "x", "y"]))
    ['x', 'y', 'z']
    >>> "set" in vars(elbo)                      # the builtin again after the block
    False
    """

    #: how many threads are inside :meth:`sorted_sets` (the patched module is one per
    #: process, so the count is the class's, shared by every instance)
    _depth = 0
    _previous = _MISSING
    _depth_lock = threading.Lock()

    def __init__(self):
        self._folder = None        # the folder :meth:`use` set up (None: off, or not yet)
        self._chosen = False       # :meth:`use` (or :meth:`start`) has decided
        self._lock = threading.RLock()

    # ---- JAX's persistent compilation cache ---------------------------------------------
    def use(self, path="default"):
        """Keep compiled programs in ``path`` (and traced ones beside it); ``"default"`` is
        :func:`default_cache_dir`, ``None`` turns JAX's persistent cache off. Process-wide
        (it sets JAX's config). Returns the folder in use, None when off or not writable.

        >>> import tempfile
        >>> saved = jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache
        >>> cache = ProgramCache()
        >>> folder = cache.use(tempfile.mkdtemp())
        >>> cache.folder == folder and cache.programs_folder == folder.parent / "programs"
        True
        >>> cache.start() == folder                  # chosen already: start keeps it
        True
        >>> cache.use(None) is None and cache.folder is None                   # off
        True
        >>> jax.config.update("jax_compilation_cache_dir", saved[0])  # as it was (a doctest)
        >>> jax.config.update("jax_enable_compilation_cache", saved[1])
        """
        with self._lock:
            self._chosen, self._folder = True, None
            if path is None:
                jax.config.update("jax_enable_compilation_cache", False)
                return None
            folder = default_cache_dir() if path == "default" else Path(path).expanduser()
            try:
                folder.mkdir(parents=True, exist_ok=True)
                if not os.access(folder, os.W_OK):
                    return None
            except OSError:
                return None
            self._folder = folder
            jax.config.update("jax_enable_compilation_cache", True)
            jax.config.update("jax_compilation_cache_dir", str(folder))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
            return folder

    def start(self):
        """Switch the cache on in the default folder, once, when a fit first needs it (see
        the class); later calls change nothing. Returns :attr:`folder`.

        >>> was_on = jax.config.jax_enable_compilation_cache
        >>> cache = ProgramCache()
        >>> cache.use(None) is None and cache.start() is None   # chosen off: stays off
        True
        >>> jax.config.update("jax_enable_compilation_cache", was_on)   # as it was (a doctest)
        """
        with self._lock:
            if not self._chosen:
                self._chosen = True
                off = os.environ.get(CACHE_ENV, "1").lower() in ("0", "off", "false", "no")
                if not off and not jax.config.jax_compilation_cache_dir:  # not the user's
                    self.use("default")
        return self.folder

    @property
    def folder(self):
        """The folder of compiled programs in use, or None: off, not started yet, or JAX's
        cache set elsewhere since (by the user, or another :class:`ProgramCache`)."""
        folder = self._folder
        if folder is None or not jax.config.jax_enable_compilation_cache or \
                Path(jax.config.jax_compilation_cache_dir or "") != folder:
            return None
        return folder

    @property
    def programs_folder(self):
        """Where traced programs are kept (beside the compiled ones), or None when
        :attr:`folder` is None."""
        folder = self.folder
        return None if folder is None else folder.parent / "programs"

    # ---- traced programs, by key --------------------------------------------------------
    def path(self, key):
        """The file of the programs kept under ``key`` (a :class:`ProgramKey` or its
        digest), or None when the cache is off."""
        folder = self.programs_folder
        name = key if isinstance(key, str) else key.digest()
        return None if folder is None else folder / f"{name}.npz"

    def load(self, key) -> dict:
        """The exported programs kept under ``key`` ({name: ``jax.export.Exported``}); empty
        when none are kept, the cache is off or the file does not load (the caller traces)."""
        path = self.path(key)
        if path is None or not path.is_file():
            return {}
        try:
            with np.load(path, allow_pickle=False) as saved:
                return {k: jax.export.deserialize(bytearray(saved[k].tobytes())) for k in saved}
        except Exception:                 # another JAX's file, a damaged file: trace instead
            return {}

    def save(self, key, exported: dict):
        """Keep ``exported`` ({name: ``jax.export.Exported``}) under ``key``; returns the file,
        or None when the cache is off or the folder cannot be written (the run goes on)."""
        path = self.path(key)
        if path is None:
            return None
        try:
            return write_npz(path, {k: np.frombuffer(bytes(e.serialize()), np.uint8)
                                    for k, e in exported.items()})
        except Exception:
            return None

    # ---- the order of NumPyro's sums ----------------------------------------------------
    @staticmethod
    @contextlib.contextmanager
    def sorted_sets():
        """Inside this block, NumPyro's ELBOs take their sites and plates in sorted order.

        They sum log p - log q over ``set(model_sites) | set(guide_sites)``, whose order
        follows Python's per-process string hashing: two processes then trace the same loss
        with the terms in another order, which changes the program (the caches miss, half
        the time) and, with three or more terms, the float result (a resumed run would not
        be bit for bit). ``numpyro.infer.elbo`` looks ``set`` up in its module globals when a
        loss is traced, so a module global that shadows the builtin for the duration of the
        block is enough; it is removed when the last block (of any thread) ends. Re-entrant
        and thread-safe; a thread outside a block that traces an ELBO meanwhile gets the
        sorted order too, which changes nothing but the order.

        >>> import numpyro.infer.elbo as elbo
        >>> with ProgramCache.sorted_sets():
        ...     with ProgramCache.sorted_sets():
        ...         pass
        ...     inside = elbo.set is not set
        >>> inside, "set" in vars(elbo)
        (True, False)
        """
        module = importlib.import_module("numpyro.infer.elbo")
        with ProgramCache._depth_lock:
            if ProgramCache._depth == 0:
                ProgramCache._previous = module.__dict__.get("set", _MISSING)
                module.set = _SortedSet
            ProgramCache._depth += 1
        try:
            yield
        finally:
            with ProgramCache._depth_lock:
                ProgramCache._depth -= 1
                if ProgramCache._depth == 0:
                    if ProgramCache._previous is _MISSING:
                        del module.set
                    else:
                        module.set = ProgramCache._previous
                    ProgramCache._previous = _MISSING
