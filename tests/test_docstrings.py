"""Every public docstring example runs (doctest), so the documentation cannot drift."""
import doctest
import importlib
import pkgutil

import pytest

import probvae

SKIP = {"probvae.data"}   # covered by tests/test_data.py, which runs its examples itself


def _modules():
    """Every module of the four packages and their sub-packages (backends, networks, ...)."""
    names = set()
    for pkg in ("probvae", "probvae.models", "probvae.inference", "probvae.applications"):
        mod = importlib.import_module(pkg)
        names.add(pkg)
        for info in pkgutil.walk_packages(mod.__path__, prefix=f"{pkg}."):
            names.add(info.name)
    return sorted(names - SKIP)


def test_every_sub_package_is_collected():
    mods = _modules()
    for name in ("probvae.backends.base", "probvae.networks.jax_nets", "probvae.networks.torch_nets",
                 "probvae.distributions.continuous_bernoulli", "probvae.applications.diagnostics.amortized",
                 "probvae.inference.scoring", "probvae.models.vae"):
        assert name in mods


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    assert result.attempted > 0, f"{name} has no docstring example that runs"
