"""VAEAnomalyDetector: a held-out digit class scores lower, contamination, errors, pickling and
scikit-learn's estimator checks (all of them on Pyro; a subset on NumPyro, all with -m slow)."""
import pickle

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from probvae.applications.anomaly import VAEAnomalyDetector

TINY = dict(latent_dim=2, hidden=(8,), epochs=2, num_samples=8)


@pytest.fixture(scope="module")
def held_out_zero(digits):
    """A detector per backend trained on the digits other than 0 (cached), and the test split."""
    cache = {}

    def get(backend):
        if backend not in cache:
            det = VAEAnomalyDetector(latent_dim=4, hidden=(64,), epochs=8, batch_size=128,
                                     num_samples=20, backend=backend, seed=0)
            cache[backend] = det.fit(digits.train.x[digits.train.y != 0])
        return cache[backend], digits.test
    return get


def test_held_out_class_scores_lower(backend, held_out_zero):
    det, test = held_out_zero(backend)
    scores = det.score_samples(test.x)
    assert scores.dtype == np.float64 and scores.shape == (len(test),)
    assert roc_auc_score(test.y == 0, -scores) > 0.8
    np.testing.assert_allclose(det.decision_function(test.x), scores - det.offset_)
    pred = det.predict(test.x)
    assert set(np.unique(pred)) <= {-1, 1}
    assert (pred[test.y == 0] == -1).mean() > (pred[test.y != 0] == -1).mean()


def test_reconstruction_method_and_out_of_support(digits):
    x = digits.train.x[digits.train.y != 0][:200]
    det = VAEAnomalyDetector(method="reconstruction", **TINY).fit(x)
    bad = x[:3].copy()
    bad[0, 5] = 2.0                          # outside continuous_bernoulli's [0, 1]
    for method in ("reconstruction", "log_likelihood"):
        scores = det.set_params(method=method).score_samples(bad)
        assert scores[0] == -np.inf and np.isfinite(scores[1:]).all()
    assert det.predict(bad)[0] == -1


def test_score_of_a_row_does_not_depend_on_the_batch(backend, digits):
    x = digits.test.x[:12]
    det = VAEAnomalyDetector(backend=backend, **TINY).fit(digits.train.x[:100])
    batch = det.score_samples(x)
    alone = np.concatenate([det.score_samples(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(alone, batch, rtol=1e-5)
    np.testing.assert_allclose(det.score_samples(x[::-1])[::-1], batch, rtol=1e-5)


@pytest.mark.parametrize("contamination", [0.05, 0.2])
def test_contamination_is_the_share_of_training_outliers(digits, contamination):
    x = digits.train.x[:200]
    pred = VAEAnomalyDetector(contamination=contamination, **TINY).fit(x).predict(x)
    assert abs((pred == -1).mean() - contamination) <= 1 / len(x)


def test_auto_contamination_is_tukeys_fence(digits):
    x = digits.train.x[:200]
    det = VAEAnomalyDetector(**TINY).fit(x)
    q1, q3 = np.percentile(det.score_samples(x), [25, 75])
    assert det.offset_ == pytest.approx(q1 - 1.5 * (q3 - q1))


def test_pickle_round_trip(backend, digits):
    x = digits.train.x[:100]
    det = VAEAnomalyDetector(backend=backend, **TINY).fit(x)
    again = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(again.score_samples(x), det.score_samples(x))
    assert again.offset_ == det.offset_ and again.result_.backend == backend


@pytest.mark.parametrize("settings, match", [
    (dict(contamination=0.7), r"contamination must be 'auto' or a float in \(0, 0.5\]"),
    (dict(contamination="most"), "contamination must be"),
    (dict(method="density"), "unknown method 'density'"),
    (dict(num_samples=0), "num_samples must be an integer >= 1"),
])
def test_bad_settings_fail_clearly(digits, settings, match):
    with pytest.raises(ValueError, match=match):
        VAEAnomalyDetector(**{**TINY, **settings}).fit(digits.train.x[:50])


def test_bad_input_fails_clearly(digits):
    x = digits.train.x[:50].copy()
    with pytest.raises(NotFittedError):
        VAEAnomalyDetector(**TINY).score_samples(x)
    det = VAEAnomalyDetector(**TINY).fit(x)
    with pytest.raises(ValueError, match="64 features"):
        det.predict(x[:, :10])
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):      # fitted on complete numbers
        det.score_samples(x)
    table_det = VAEAnomalyDetector(**TINY).fit(x)      # gaps: modelled as a table
    assert table_det.table_ is not None and np.isfinite(table_det.score_samples(x)).all()
    x[1, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        VAEAnomalyDetector(**TINY).fit(x)


def test_gaussian_features_are_standardised_inside(backend):
    """Features on very different scales train alike: scaling a column by 1000 shifts every
    log-density by exactly log(1000) (the model sees the same standardised values)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    x[:, 1] = x[:, 0] + 0.1 * x[:, 1]
    big = x.copy()
    big[:, 0] = 1000.0 * x[:, 0] + 5000.0
    kw = dict(latent_dim=2, hidden=(8,), epochs=3, num_samples=8, backend=backend, seed=0,
              scaling="standardize")
    small_det = VAEAnomalyDetector(**kw).fit(x)
    big_det = VAEAnomalyDetector(**kw).fit(big)
    assert small_det.likelihood_ == "gaussian" and big_det.scale_[0] > 500
    np.testing.assert_allclose(big_det.score_samples(big), small_det.score_samples(x) - np.log(1000.0),
                               rtol=0, atol=2e-3)


def test_yeo_johnson_scores_small_values_of_a_skewed_feature_as_unusual(backend):
    """On log-normal features a row of very small values lies where the density in X's units
    is highest, yet no normal row looks like it; the default scaling scores it well below
    the typical rows."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 1))
    x = np.exp(np.hstack([z, z + 0.3 * rng.normal(size=(400, 1))])).astype(np.float32)
    typical = np.exp(rng.normal(scale=0.3, size=(20, 2))).astype(np.float32)
    tiny = np.full((20, 2), np.exp(-3.0), np.float32)
    kw = dict(latent_dim=2, hidden=(16,), epochs=30, num_samples=16, backend=backend, seed=0)
    det = VAEAnomalyDetector(**kw).fit(x)
    assert det.power_ is not None and det.scale_ is None
    assert np.median(det.score_samples(tiny)) < np.median(det.score_samples(typical)) - 2
    plain = VAEAnomalyDetector(scaling="standardize", **kw).fit(x)
    assert plain.power_ is None and plain.scale_ is not None
    again = pickle.loads(pickle.dumps(det))
    np.testing.assert_allclose(again.score_samples(tiny), det.score_samples(tiny), rtol=1e-6)
    with pytest.raises(ValueError, match="scaling must be one of"):
        VAEAnomalyDetector(scaling="log").fit(x)


def test_laplace_features_are_scaled_too():
    """A Laplace likelihood is real-valued like the Gaussian: its features are scaled as well
    (they were fed raw before, and a column in the thousands drowned the rest)."""
    x = np.random.default_rng(1).normal(loc=5000.0, scale=1000.0, size=(60, 3)).astype(np.float32)
    kw = dict(latent_dim=2, hidden=(8,), epochs=1, num_samples=4, likelihood="laplace")
    assert VAEAnomalyDetector(**kw).fit(x).power_ is not None
    det = VAEAnomalyDetector(scaling="standardize", **kw).fit(x)
    assert det.scale_[0] > 500 and np.isfinite(det.score_samples(x)).all()
