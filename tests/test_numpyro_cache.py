"""What NumPyro fits keep between runs (``probvae.backends.numpyro_cache.ProgramCache``):
nothing is patched or switched on at import; the first fit switches JAX's compilation cache on
(unless the user configured theirs, or turned probvae's off); NumPyro's ELBOs sum their sites
in one order only inside the loop's scope, and that order makes the traced program the same
in every process."""
import hashlib
import os
import subprocess
import sys
import threading

import pytest

from probvae.backends.numpyro_cache import ProgramCache, ProgramKey

#: JAX's settings that probvae's cache changes
_SETTINGS = ("jax_enable_compilation_cache", "jax_compilation_cache_dir",
             "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")


def _run(code, **env):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()


def test_importing_patches_nothing_and_switches_nothing_on():
    code = f"""
import builtins, jax
before = [getattr(jax.config, k) for k in {_SETTINGS!r}]
import probvae, probvae.backends.numpyro_backend, probvae.inference.numpyro_loop
import numpyro.infer.elbo as elbo
assert "set" not in vars(elbo) and getattr(elbo, "set", builtins.set) is builtins.set
assert [getattr(jax.config, k) for k in {_SETTINGS!r}] == before, before
print("ok")
"""
    assert _run(code) == ["ok"]


_FIT = """
import jax, pathlib, probvae as pv
import numpyro.infer.elbo as elbo
bk = pv.backends.get("numpyro")
assert bk.program_cache.folder is None
d = pv.data.load("digits")
pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="numpyro"),
       d.train[:64], epochs=1, batch_size=32, progress=False)
assert "set" not in vars(elbo)                      # the scope ended with the fit
folder = bk.program_cache.programs_folder
print(jax.config.jax_compilation_cache_dir, folder and sorted(p.name for p in folder.iterdir()))
"""


def test_the_first_fit_switches_the_cache_on_unless_the_user_chose(tmp_path):
    on = _run(_FIT, PROBVAE_CACHE_DIR=str(tmp_path / "mine"))[-1]
    jax_dir, programs = on.split(" ", 1)
    assert jax_dir == str(tmp_path / "mine" / "jax") and programs.endswith(".npz']")
    off = _run(_FIT, PROBVAE_CACHE_DIR=str(tmp_path / "off"), PROBVAE_COMPILATION_CACHE="0")
    assert off[-1] == "None None" and not (tmp_path / "off").exists()
    users = _run(_FIT, PROBVAE_CACHE_DIR=str(tmp_path / "ours"),
                 JAX_COMPILATION_CACHE_DIR=str(tmp_path / "users"))
    assert users[-1] == f"{tmp_path / 'users'} None"   # theirs kept, no programs of ours
    assert not (tmp_path / "ours").exists()


def _hash_seeds():
    """Two values of PYTHONHASHSEED under which a set of the VAE's site names iterates in
    different orders (as a plain set does in two processes)."""
    orders = {}
    for seed in range(40):
        order = _run("print(list({'x', 'z'}))", PYTHONHASHSEED=str(seed))[-1]
        orders.setdefault(order, str(seed))
        if len(orders) == 2:
            return list(orders.values())
    pytest.skip("no two hash seeds order the set differently")


def test_two_processes_trace_the_same_program(tmp_path):
    """Under any string hashing, the loop traces the same epoch program (so the caches hit and
    the float sums are the same): the kept files are byte for byte equal."""
    digests = []
    for seed in _hash_seeds():
        folder = tmp_path / seed
        _run(_FIT, PROBVAE_CACHE_DIR=str(folder), PYTHONHASHSEED=seed)
        (kept,) = (folder / "programs").glob("*.npz")
        digests.append((kept.name, hashlib.sha256(kept.read_bytes()).hexdigest()))
    assert digests[0] == digests[1]


def test_the_sorted_scope_nests_across_threads_and_is_undone_on_errors():
    import numpyro.infer.elbo as elbo
    inside, ready, leave = [], threading.Event(), threading.Event()

    def other():
        with ProgramCache.sorted_sets():
            ready.set()
            leave.wait(10)
    t = threading.Thread(target=other)
    with pytest.raises(RuntimeError):
        with ProgramCache.sorted_sets():
            t.start()
            ready.wait(10)
            inside.append(list(elbo.set(["b", "a"])))
            raise RuntimeError("an error inside")
    inside.append("set" in vars(elbo))           # the other thread is still inside
    leave.set()
    t.join()
    assert inside == [["a", "b"], True] and "set" not in vars(elbo)


def test_a_key_names_its_settings_and_its_digest_follows_them():
    a = ProgramKey("config", lr=1e-3, rows=64, batch_size=32,
                   data=(("x", (64, 64), "float32"),))
    assert a.digest() == ProgramKey("config", lr=1e-3, rows=64, batch_size=32,
                                    data=(("x", (64, 64), "float32"),)).digest() == str(a)
    assert {a, a} == {a}                                        # hashable: a memo's key
    for change in ({"lr": 1e-2}, {"batch_size": 16}, {"binarize": True}, {"source": "other"},
                   {"libraries": (("jax", "0.0"),)}):
        assert ProgramKey(**{**a.__dict__, **change}).digest() != a.digest(), change
    with pytest.raises(AttributeError):
        a.lr = 1.0                                              # frozen
