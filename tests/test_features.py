"""VAEEncoder (and the estimator base it shares with VAEAnomalyDetector): transform, Pipeline,
likelihood="auto", validation split, pickling, errors and scikit-learn's estimator checks."""
import copy
import pickle

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import probvae as pv
from probvae.applications.features import VAEEncoder

TINY = dict(latent_dim=3, hidden=(16,), epochs=2)


def test_transform_is_the_posterior_mean(backend, digits):
    x = digits.train.x[:100]
    enc = VAEEncoder(backend=backend, **TINY).fit(x)
    z = enc.transform(digits.test.x)
    assert z.shape == (len(digits.test), 3) and z.dtype == np.float32
    np.testing.assert_array_equal(z, pv.encode(enc.result_, digits.test.x))
    alone = np.concatenate([enc.transform(digits.test.x[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(alone, z[:5], rtol=1e-5, atol=1e-6)     # a row, not the batch
    assert enc.transform(digits.test.x.astype(np.float64)).dtype == np.float64
    assert enc.likelihood_ == "continuous_bernoulli" and enc.n_features_in_ == 64
    assert list(enc.get_feature_names_out()) == ["vaeencoder0", "vaeencoder1", "vaeencoder2"]


def test_fit_ignores_y(digits):
    x, y = digits.train.x[:100], digits.train.y[:100]
    a = VAEEncoder(**TINY).fit(x).transform(x)
    np.testing.assert_array_equal(VAEEncoder(**TINY).fit(x, y).transform(x), a)


def test_in_a_pipeline_features_carry_the_labels(backend, digits):
    """Encoder trained without labels, frozen, then a classifier on 100 labelled digits."""
    enc = VAEEncoder(latent_dim=8, hidden=(64,), epochs=10, batch_size=32, backend=backend)
    enc.fit(digits.train.x)
    lab = digits.train.label_subset(n_per_class=10, seed=0)
    clf = make_pipeline(FrozenEstimator(enc), LogisticRegression(max_iter=2000))
    clf.fit(digits.train.x[lab], digits.train.y[lab])
    assert clf.score(digits.test.x, digits.test.y) > 0.5          # chance: 0.1
    refit = make_pipeline(VAEEncoder(backend=backend, **TINY), LogisticRegression())
    assert refit.fit(digits.train.x[:100], digits.train.y[:100]).predict(digits.test.x).shape \
        == (len(digits.test),)


def test_auto_likelihood_for_real_data_and_explicit_choices_are_checked():
    x = np.random.default_rng(0).standard_normal((40, 5))
    enc = make_pipeline(StandardScaler(), VAEEncoder(**TINY)).fit(x)
    assert enc[-1].likelihood_ == "gaussian" and enc.transform(x).shape == (40, 3)
    with pytest.raises(ValueError, match="needs binary data"):
        VAEEncoder(likelihood="bernoulli", **TINY).fit(x)


def test_validation_split_keeps_the_best_epoch(digits):
    enc = VAEEncoder(validation_fraction=0.2, patience=1, **{**TINY, "epochs": 4})
    res = enc.fit(digits.train.x[:100]).result_
    assert res.best_epoch is not None and len(res.history["valid_loss"]) >= 1


@pytest.mark.parametrize("settings, match", [
    (dict(validation_fraction=1.0), r"validation_fraction must be a number in \[0, 1\)"),
    (dict(patience=3), "patience .* needs held-out data"),
    (dict(validation_fraction=0.01), "each needs at least one"),
    (dict(prior="flat"), "unknown prior 'flat'"),
    (dict(backend="tensorflow"), "unknown backend"),
])
def test_bad_settings_fail_clearly(digits, settings, match):
    with pytest.raises(ValueError, match=match):
        VAEEncoder(**{**TINY, **settings}).fit(digits.train.x[:20])


def test_bad_input_fails_clearly(digits):
    with pytest.raises(NotFittedError):
        VAEEncoder(**TINY).transform(digits.test.x)
    enc = VAEEncoder(**TINY).fit(digits.train.x[:50])
    with pytest.raises(ValueError, match="64 features"):
        enc.transform(digits.test.x[:, :60])
    with pytest.raises(ValueError, match="2D array"):
        enc.transform(digits.test.x[0])


def test_pickle_and_deepcopy_round_trip(backend, digits):
    x = digits.train.x[:100]
    enc = VAEEncoder(backend=backend, **TINY).fit(x)
    for again in (pickle.loads(pickle.dumps(enc)), copy.deepcopy(enc)):
        np.testing.assert_array_equal(again.transform(x), enc.transform(x))
        assert again.get_params() == enc.get_params()
    assert "result_" in enc.__dict__                    # pickling left the original intact
