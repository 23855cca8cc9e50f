"""``import probvae`` stays light: the scikit-learn estimators load on first use, and each
backend's path imports only its own library (a torch user never waits for JAX, nor the reverse)."""
import subprocess
import sys

import probvae as pv


def test_import_does_not_load_sklearn():
    code = ("import sys, probvae as pv; assert 'sklearn' not in sys.modules, 'sklearn loaded'; "
            "pv.anomaly; assert 'sklearn' in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_lazy_modules_behave_as_attributes():
    from probvae import features
    assert pv.features is features
    assert callable(pv.impute) and hasattr(pv.impute, "VAEImputer")
    assert hasattr(pv.anomaly, "VAEAnomalyDetector")
    assert {"anomaly", "features", "impute", "fit"} <= set(dir(pv))
    try:
        pv.no_such_module
    except AttributeError as e:
        assert "no_such_module" in str(e)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")


#: what each backend's path must never import: the other library's stack
_OTHER = {"pyro": ("jax", "numpyro", "equinox", "optax"), "numpyro": ("torch", "pyro")}


def _whole_path(backend):
    """A fresh process that goes through a model's whole life on ``backend`` (fit with
    validation, evaluate, sample, encode, save, load) and prints what it imported of the other."""
    return f"""
import os, sys, tempfile, probvae as pv
d = pv.data.load("digits")
vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend={backend!r})
r = pv.fit(vae, d.train[:100], epochs=1, progress=False, validation=d.valid[:50])
pv.evaluate(r, d.test[:50], num_samples=4); pv.sample(r, n=3); pv.encode(r, d.test.x[:5])
with tempfile.TemporaryDirectory() as t:
    pv.save(r, os.path.join(t, "r")); pv.load(os.path.join(t, "r"))
print([m for m in {_OTHER[backend]!r} if m in sys.modules])
"""


def test_import_probvae_loads_neither_library():
    code = ("import sys, probvae; print([m for m in ('jax', 'torch', 'numpyro', 'pyro') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_pyro_path_imports_no_jax_and_numpyro_path_no_torch():
    for backend in ("pyro", "numpyro"):
        out = subprocess.run([sys.executable, "-c", _whole_path(backend)], capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == "[]", (backend, out.stdout)
