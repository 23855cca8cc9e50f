"""Traced programs kept between runs, so a second run of a NumPyro fit neither traces nor lowers.

JAX's persistent compilation cache skips XLA's compilation on a second run, but every run still
traces the model and guide through NumPyro and lowers the result to StableHLO: most of a warm
start. Here the NumPyro loop's epoch and validation programs are exported once (``jax.export``:
traced and lowered) and kept as files beside the compiled ones; a later run with the same key
loads them and goes straight to the (cached) compilation. (``init`` is traced in every run: it
holds that run's initial weights.)

The key (:class:`~probvae.backends.numpyro_cache.ProgramKey`, made by :func:`key`) holds
everything that shapes a program: the model's configuration, the objective and its settings,
the batch and data shapes, the learning rate, and the exact source of probvae and the versions
of JAX, NumPyro, Equinox and optax. The folder is the NumPyro backend's
:class:`~probvae.backends.numpyro_cache.ProgramCache` (``bk.program_cache``). A program is kept
only when every part of the model and objective is probvae's or the libraries' own: a user's
class or function can change between runs under the same name, so models that use one trace
as before. Nor is a program that holds an array constant of more than a few values (weights
or data closed over by a model would be stale in the next run).

Examples
--------
>>> import jax, jax.numpy as jnp
>>> prog = export(jax.jit(lambda a, b: {"sum": a["x"] + b}), {"x": jnp.ones(2)}, 1.0)
>>> prog.compile()({"x": jnp.ones(2)}, 2.0)["sum"].tolist()
[3.0, 3.0]
>>> prog.accepts(({"x": jnp.zeros(2)}, 1.0)), prog.accepts(({"x": jnp.zeros(3)}, 1.0))
(True, False)

Kept in a folder (here a temporary one) and loaded back by a later run:

>>> import tempfile
>>> from probvae.backends.numpyro_cache import ProgramCache
>>> cache = ProgramCache()
>>> saved = jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache
>>> _ = cache.use(tempfile.mkdtemp())
>>> save(key("sum"), {"sum": prog}, cache).suffix, sorted(load(key("sum"), cache))
('.npz', ['sum'])
>>> load(key("other"), cache)
{}
>>> jax.config.update("jax_compilation_cache_dir", saved[0])    # as it was (a doctest)
>>> jax.config.update("jax_enable_compilation_cache", saved[1])
"""
from __future__ import annotations

import functools
import hashlib
import re
import types
from pathlib import Path

import jax
import numpy as np

from probvae.backends.numpyro_cache import ProgramCache, ProgramKey

__all__ = ["Program", "ProgramKey", "export", "own_code", "key", "load", "save"]

#: a program is kept only if no array constant in it is larger (RNG rotations are 4 values;
#: initial weights or data closed over by the model would be stale in a later run)
MAX_CONSTANT = 64
_CONSTANT = re.compile(r'stablehlo\.constant dense<(?:"0x|\[)[^>]*> : tensor<([^>]*)>')
#: where code may come from for a program to be kept (a user's own classes are not)
TRUSTED = {"probvae", "numpyro", "jax", "jaxlib", "equinox", "optax", "numpy", "builtins",
           "functools", "math", "operator", "collections", "typing", "threading", "_thread"}
_SOURCE = None


class Program:
    """An exported program, called with the same pytrees as the function it was exported
    from. :meth:`compile` compiles it (JAX's compilation cache answers on a second run)."""

    def __init__(self, exported, in_tree, out_tree):
        self.exported, self.in_tree, self.out_tree = exported, in_tree, out_tree
        self._fn, self._compiled = jax.jit(exported.call), {}

    @classmethod
    def fitted(cls, exported, args, out):
        """A program from a loaded ``exported`` for arguments ``args`` and outputs shaped like
        ``out`` (values or specs), or None when they do not fit it. (Pytree structures are not
        saved: Equinox modules' do not survive pickling.)"""
        if exported is None:
            return None
        out_leaves, out_tree = jax.tree_util.tree_flatten(out)
        prog = cls(exported, jax.tree_util.tree_structure(args), out_tree)
        fits = prog.accepts(args) and [(_spec(v).shape, _spec(v).dtype) for v in out_leaves] \
            == [(a.shape, a.dtype) for a in exported.out_avals]
        return prog if fits else None

    def compile(self):
        """Compile now (once) with XLA's default options; returns the program."""
        self._fn = self.compiled()._fn
        return self

    def compiled(self, options=None):
        """This program compiled with XLA's ``options`` (a dict; None: the defaults), once per
        options: a :class:`Program` that calls the compiled executable."""
        tag = repr(sorted((options or {}).items()))
        if tag not in self._compiled:
            avals = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in self.exported.in_avals]
            prog = Program(self.exported, self.in_tree, self.out_tree)
            prog._fn = self._fn.lower(*avals).compile(options)
            self._compiled[tag] = prog
        return self._compiled[tag]

    def out_spec(self):
        """The outputs' shapes and dtypes, in their pytree (``jax.eval_shape``'s answer)."""
        return jax.tree_util.tree_unflatten(
            self.out_tree, [jax.ShapeDtypeStruct(a.shape, a.dtype)
                            for a in self.exported.out_avals])

    def accepts(self, args) -> bool:
        """Whether ``args`` (a tuple of positional arguments) has this program's structure."""
        leaves, tree = jax.tree_util.tree_flatten(args)
        return tree == self.in_tree and all(
            _spec(v).shape == a.shape and _spec(v).dtype == a.dtype
            for v, a in zip(leaves, self.exported.in_avals))

    def __call__(self, *args):
        leaves, tree = jax.tree_util.tree_flatten(args)
        if tree != self.in_tree:
            raise ValueError(f"this program takes {self.in_tree}, got {tree}")
        return jax.tree_util.tree_unflatten(self.out_tree, self._fn(*leaves))


def _spec(v):
    if isinstance(v, jax.ShapeDtypeStruct):
        return v
    return jax.ShapeDtypeStruct(np.shape(v), jax.numpy.result_type(v))


def export(fn, *args) -> Program:
    """Trace and lower ``fn(*args)`` (arrays or ``jax.ShapeDtypeStruct``) into a :class:`Program`
    over the flattened arguments (any pytrees, Equinox modules included)."""
    leaves, in_tree = jax.tree_util.tree_flatten(args)
    out_tree = []

    def flat(*values):
        out = jax.tree_util.tree_flatten(fn(*jax.tree_util.tree_unflatten(in_tree, values)))
        out_tree.append(out[1])
        return out[0]

    avals = [_spec(v) for v in leaves]
    exported = jax.export.export(jax.jit(flat))(*avals)
    return Program(exported, in_tree, out_tree[0])


def _largest_constant(exported) -> int:
    """The number of values of the largest array constant (not a splat) in the program."""
    sizes = [int(np.prod([int(d) for d in shape.split("x")[:-1]] or [1]))
             for shape in _CONSTANT.findall(exported.mlir_module())]
    return max(sizes, default=0)


def own_code(*objs, depth=4) -> bool:
    """True when ``objs`` (a model, an objective, ...) and every object and function they hold
    come from probvae or the libraries it builds on: then a program traced from them is the same
    in every run with the same probvae source.

    >>> import json
    >>> import probvae as pv
    >>> own_code(pv.models.VAE(input_dim=4, latent_dim=2)), own_code(json.dumps)
    (True, False)
    """
    for obj in objs:
        if obj is None or isinstance(obj, (str, bytes, int, float, bool, types.ModuleType)):
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            items = obj
        elif isinstance(obj, dict):
            items = obj.values()
        elif isinstance(obj, functools.partial):
            items = (obj.func, *obj.args, *obj.keywords.values())
        else:
            where = obj if isinstance(obj, (types.FunctionType, type)) else type(obj)
            module = getattr(where, "__module__", None) or ""
            if module.split(".")[0] not in TRUSTED:
                return False
            mine = type(obj).__module__.startswith("probvae") and hasattr(obj, "__dict__")
            items = vars(obj).values() if mine and depth > 0 else ()
        if not own_code(*items, depth=depth - 1):
            return False
    return True


def source_hash() -> str:
    """A hash of probvae's source files (all three layers), computed once per process."""
    global _SOURCE
    if _SOURCE is None:
        import probvae
        import probvae.inference
        import probvae.models
        h = hashlib.sha256()
        for pkg in (probvae, probvae.models, probvae.inference):
            root = Path(pkg.__file__).parent
            for f in sorted(root.rglob("*.py")):
                h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
        _SOURCE = h.hexdigest()
    return _SOURCE


def key(config, **settings) -> ProgramKey:
    """The key of the programs made from ``config`` (the fit's model and objective settings,
    as one string) and ``settings`` (:class:`~probvae.backends.numpyro_cache.ProgramKey`'s
    other fields: rates, shapes) by this probvae source, these library versions and this
    platform. Its ``digest()`` names the file.

    >>> key("a") == key("a") != key("b"), key("a", lr=1e-3) != key("a", lr=1e-2)
    (True, True)
    """
    return ProgramKey(config, source=source_hash(), **settings)


def _cache(cache):
    if cache is not None:
        return cache
    from probvae.backends import get        # the NumPyro backend's, where none is given
    return get("numpyro").program_cache


def load(key, cache: ProgramCache | None = None) -> dict:
    """The exported programs kept under ``key`` (a :class:`ProgramKey` or its digest) in
    ``cache`` (default: the NumPyro backend's ``program_cache``) as
    ``{name: jax.export.Exported}``; empty when none are kept, the cache is off or the file
    does not load (the caller then traces)."""
    return _cache(cache).load(key)


def save(key, programs: dict, cache: ProgramCache | None = None) -> Path | None:
    """Keep ``programs`` ({name: Program}) under ``key`` in ``cache`` (default: the NumPyro
    backend's) for later runs; None when the cache is off, the folder cannot be written or a
    program holds an array constant of more than ``MAX_CONSTANT`` values (weights or data
    closed over: stale in another run, though right for this one). The run goes on either
    way. The check is here, not in :func:`export`, so that it runs after the caller has
    started compiling the programs (about 0.05 s a program).

    >>> import jax.numpy as jnp, tempfile
    >>> cache = ProgramCache()
    >>> saved = jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache
    >>> _ = cache.use(tempfile.mkdtemp())
    >>> weights = jnp.arange(100.0)
    >>> save(key("w"), {"f": export(lambda x: x * weights, jnp.ones(100))}, cache) is None
    True
    >>> jax.config.update("jax_compilation_cache_dir", saved[0])    # as it was (a doctest)
    >>> jax.config.update("jax_enable_compilation_cache", saved[1])
    """
    cache = _cache(cache)
    if cache.programs_folder is None or max(
            map(_largest_constant, (p.exported for p in programs.values())),
            default=0) > MAX_CONSTANT:
        return None
    return cache.save(key, {k: p.exported for k, p in programs.items()})
