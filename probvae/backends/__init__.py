"""Backend namespaces: the only place (with :mod:`probvae.networks`) that imports Pyro or NumPyro.

A model receives a backend namespace ``bk`` and writes ``bk.sample``, ``bk.plate``, ``bk.param``,
``bk.module``, ``bk.factor``, ``bk.scale``, ``bk.deterministic``, ``bk.dist`` and
``bk.constraints``; Pyro and NumPyro share these names, so the same model body runs on both.
Everything in which the libraries really differ (parameter storage, RNG, handlers, flows,
compilation) is a method of the backend object, in one place; :class:`~.base.Backend` declares
the contract both implement, with capability flags instead of backend names.
"""
from __future__ import annotations

import importlib

from .base import Backend, init_params

__all__ = ["get", "names", "Backend", "init_params"]

_MODULES = {"pyro": "probvae.backends.pyro_backend", "numpyro": "probvae.backends.numpyro_backend"}
_CACHE: dict = {}


def names() -> tuple:
    """The known backend names.

    Examples
    --------
    >>> names()
    ('pyro', 'numpyro')
    """
    return tuple(_MODULES)


def get(name):
    """Return the backend namespace for ``name`` (``"pyro"`` or ``"numpyro"``).

    The backend's library is imported on first use only.

    Examples
    --------
    >>> bk = get("numpyro")
    >>> bk.name
    'numpyro'
    """
    if isinstance(name, Backend):       # already a backend
        return name
    if name not in _MODULES:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(_MODULES)}")
    if name not in _CACHE:
        _CACHE[name] = importlib.import_module(_MODULES[name]).BACKEND
    return _CACHE[name]
