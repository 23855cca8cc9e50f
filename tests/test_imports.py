"""``import probvae`` stays light: the scikit-learn estimators load on first use."""
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
