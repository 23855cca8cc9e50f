"""scikit-learn's estimator checks for probvae's estimators (anomaly detector, encoder, imputer).

Every check runs on Pyro (seconds); on NumPyro each fit compiles, so a subset runs by default
and the whole set (about 150 s) with ``-m slow``. Float32 networks: a row's output may differ in
the 7th significant digit between a batch of one row and a batch of 20, above
``check_methods_subset_invariance``'s 1e-7 tolerance; test_anomaly/test_features check it to 1e-5.
"""
import pytest
from sklearn.utils import estimator_checks as ec

from probvae.applications.anomaly import VAEAnomalyDetector
from probvae.applications.features import VAEEncoder
from probvae.applications.imputation import VAEImputer

# complex X is refused by the estimators' validation, not cast (with a warning) first
pytestmark = pytest.mark.filterwarnings("error::numpy.exceptions.ComplexWarning")

ALLOWED = {"check_methods_subset_invariance": "float32 rounding differs with the batch size"}
#: (estimator class, tiny settings, checks that run on NumPyro in the default suite)
ESTIMATORS = [
    (VAEAnomalyDetector, dict(latent_dim=2, hidden=(8,), epochs=2, num_samples=8),
     ("check_outliers_train", "check_n_features_in")),
    (VAEEncoder, dict(latent_dim=3, hidden=(16,), epochs=2),
     ("check_transformer_general", "check_n_features_in")),
    (VAEImputer, dict(latent_dim=2, hidden=(8,), epochs=2, num_samples=8),
     ("check_transformer_general", "check_n_features_in")),
]


@ec.parametrize_with_checks([cls(backend="pyro", **tiny) for cls, tiny, _ in ESTIMATORS],
                           expected_failed_checks=lambda _: ALLOWED)
def test_sklearn_checks_pyro(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls, tiny, name", [(cls, tiny, name) for cls, tiny, names in ESTIMATORS
                                             for name in names],
                         ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_sklearn_checks_numpyro_subset(cls, tiny, name):
    getattr(ec, name)(cls.__name__, cls(**tiny))


@pytest.mark.slow
@ec.parametrize_with_checks([cls(**tiny) for cls, tiny, _ in ESTIMATORS],
                           expected_failed_checks=lambda _: ALLOWED)
def test_sklearn_checks_numpyro(estimator, check):
    check(estimator)
