"""The backend contract: both backends implement every member of ``Backend``, and no code
outside the backends asks which backend it runs on."""
import inspect
import re
from pathlib import Path

import pytest

import probvae as pv
from probvae.backends.base import Backend

ROOT = Path(__file__).resolve().parent.parent


def contract_members():
    names = set(getattr(Backend, "__annotations__", {}))
    names |= {n for n, v in vars(Backend).items() if inspect.isfunction(v)}
    return sorted(n for n in names if not n.startswith("_"))


@pytest.mark.parametrize("name", ["pyro", "numpyro"])
def test_backend_implements_the_contract(name):
    bk = pv.backends.get(name)
    assert isinstance(bk, Backend)
    missing = [m for m in contract_members() if not hasattr(bk, m)]
    assert not missing, f"{name} lacks {missing}"
    for flag in ("fixed_shapes", "shared_param_store"):
        assert isinstance(getattr(bk, flag), bool)


def test_flags_differ_where_the_libraries_do():
    pyro, numpyro = pv.backends.get("pyro"), pv.backends.get("numpyro")
    assert numpyro.fixed_shapes and not pyro.fixed_shapes
    assert pyro.shared_param_store and not numpyro.shared_param_store
    assert pyro.multi_process and not numpyro.multi_process


def test_no_backend_name_checks_outside_the_backends():
    """Capability flags, not names: ``bk.name == ...`` / ``.backend == ...`` tests stay in
    probvae/backends/ (tests and benchmarks may compare names)."""
    pattern = re.compile(r"""(\.name|\.backend|backend)\s*[!=]=\s*["'](pyro|numpyro)["']""")
    hits = []
    for top in ("probvae", "models", "inference", "applications"):
        for path in (ROOT / top).rglob("*.py"):
            if "backends" in path.parts:
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "backend name checks:\n" + "\n".join(hits)


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match="choose one of \\['pyro', 'numpyro'\\]"):
        pv.backends.get("tensorflow")
