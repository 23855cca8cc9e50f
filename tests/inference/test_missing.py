"""Missing values end to end: fit(missing="mask"), scores of observed cells, pv.impute."""
import numpy as np
import pytest

import probvae as pv

RATE = 0.3


def with_gaps(x, rate=RATE, seed=0):
    x = np.array(x, dtype=np.float32, copy=True)
    x[np.random.default_rng(seed).random(x.shape) < rate] = np.nan
    return x


@pytest.fixture(scope="module")
def masked_fit():
    """``masked_fit(backend)``: a small VAE trained on digits with 30% of pixels missing."""
    cache = {}

    def get(backend):
        if backend not in cache:
            data = pv.data.load("digits", seed=0)
            vae = pv.models.VAE(input_dim=64, latent_dim=4, hidden=(32,), backend=backend)
            x = with_gaps(data.train.x[:256])
            cache[backend] = pv.fit(vae, x, missing="mask", epochs=3, batch_size=64,
                                    progress=False), data
        return cache[backend]
    return get


def test_fit_and_evaluate_score_observed_cells(backend, masked_fit):
    res, data = masked_fit(backend)
    assert res.options["missing"] == "mask"
    assert np.all(np.isfinite(res.history["train_loss"]))
    x = with_gaps(data.test.x[:40], seed=1)
    scores = pv.evaluate(res, x, num_samples=10)
    assert scores["num_examples"] == 40 and np.isfinite(scores["log_likelihood"])
    # the same rows with more cells missing have fewer cells to score
    lw_a = pv.inference.log_weights(res, x, num_samples=10, common_noise=True)["log_lik"]
    more = x.copy()
    more[:, :32] = np.nan
    lw_b = pv.inference.log_weights(res, more, num_samples=10, common_noise=True)["log_lik"]
    assert lw_a.shape == lw_b.shape and not np.allclose(lw_a, lw_b)


def test_a_fully_observed_mask_scores_like_no_mask(backend, fitted):
    res, data = fitted(backend)
    x = data.test.x
    plain = pv.inference.log_weights(res, x, num_samples=5, seed=3)["log_w"]
    masked = pv.inference.log_weights(res, x, num_samples=5, seed=3, missing="mask")["log_w"]
    np.testing.assert_allclose(masked, plain, rtol=1e-5, atol=1e-4)


def test_impute_keeps_observed_cells_bit_for_bit(backend, masked_fit):
    res, data = masked_fit(backend)
    x = with_gaps(data.test.x[:30], seed=2).astype(np.float64)    # the user's dtype is kept
    filled = pv.impute(res, x, num_samples=20)
    observed = ~np.isnan(x)
    assert filled.dtype == np.float64 and filled.shape == x.shape
    assert np.array_equal(filled[observed], x[observed])
    assert np.all(np.isfinite(filled)) and filled.min() >= 0 and filled.max() <= 1
    draws = pv.impute(res, x, num_samples=20, multiple=4, seed=1)
    assert draws.shape == (4, 30, 64)
    assert all(np.array_equal(d[observed], x[observed]) for d in draws)
    assert not np.allclose(draws[0][~observed], draws[1][~observed])   # real draws


def test_impute_beats_the_column_mean(masked_fit):
    """A sanity floor, not a benchmark (bench/missing.py has the figures)."""
    data = pv.data.load("digits", seed=0)
    vae = pv.models.VAE(input_dim=64, latent_dim=8, hidden=(64,), backend="numpyro",
                        likelihood=pv.likelihoods.Gaussian(scale=0.2))
    res = pv.fit(vae, with_gaps(data.train.x), missing="mask", epochs=40, batch_size=32,
                 progress=False, objective="iwae", num_particles=4)
    x = with_gaps(data.test.x, seed=5)
    hidden = np.isnan(x)
    filled = pv.impute(res, x, num_samples=50)
    mean = np.where(hidden, np.nanmean(with_gaps(data.train.x), axis=0), x)
    rmse = lambda f: np.sqrt(np.mean((f[hidden] - data.test.x[hidden]) ** 2))  # noqa: E731
    assert rmse(filled) < 0.8 * rmse(mean)


def test_nan_without_missing_mask_names_the_fix(backend, fitted, make_vae):
    res, data = fitted(backend)
    x = with_gaps(data.test.x)
    with pytest.raises(ValueError, match="missing='mask'"):
        pv.fit(make_vae(backend), x, epochs=1, progress=False)
    with pytest.raises(ValueError, match="missing='mask'"):
        pv.evaluate(res, x, num_samples=2)
    with pytest.raises(ValueError, match="missing must be"):
        pv.fit(make_vae(backend), x, epochs=1, progress=False, missing="drop")


def test_semi_supervised_model_with_gaps(backend, digits):
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(16,),
                         backend=backend)
    train = pv.data.from_arrays(with_gaps(digits.train.x[:200]), digits.train.y[:200],
                                allow_missing=True)
    res = pv.fit(ss, train, labels=train.label_subset(n_per_class=2), objective="enum",
                 missing="mask", epochs=1, batch_size=50, progress=False)
    x = with_gaps(digits.test.x[:10])
    assert pv.predict(res, x).shape == (10, 10)
    filled = pv.impute(res, x, num_samples=5)
    assert np.array_equal(filled[~np.isnan(x)], x[~np.isnan(x)]) and not np.isnan(filled).any()


def test_custom_pair_must_take_the_mask(backend, digits):
    x = with_gaps(digits.train.x[:32])

    def model(x):
        pass

    def guide(x):
        pass
    with pytest.raises(ValueError, match="add a mask=None keyword"):
        pv.fit((model, guide), x, backend=backend, missing="mask", epochs=1, progress=False)
