"""Every public docstring example runs (doctest), so the documentation cannot drift."""
import doctest
import importlib
import pkgutil

import pytest

import probvae

SKIP = {"probvae.data"}   # covered by tests/test_data.py, which runs its examples itself


def _modules():
    names = ["probvae", "probvae.models", "probvae.inference"]
    for pkg in ("probvae", "probvae.models", "probvae.inference", "probvae.diagnostics"):
        mod = importlib.import_module(pkg)
        names += [f"{pkg}.{m.name}" for m in pkgutil.iter_modules(mod.__path__)]
    return sorted(set(names) - SKIP)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
