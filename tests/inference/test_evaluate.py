"""evaluate / log_weights: shapes, bounds, per-dimension KL, seeds and chunking."""
import sys

import numpy as np
import pytest

import probvae as pv
from probvae.inference import log_weights

scoring_module = sys.modules["probvae.inference.scoring"]


def test_log_weight_shapes_and_identity(backend, fitted):
    res, data = fitted(backend)
    lw = log_weights(res, data.test.x[:10], num_samples=7, seed=0)
    assert set(lw) == {"log_w", "log_lik", "log_prior", "log_q", "kl_dim"}
    for key in ("log_w", "log_lik", "log_prior", "log_q"):
        assert lw[key].shape == (10, 7) and np.all(np.isfinite(lw[key])), key
    assert lw["kl_dim"].shape == (10, res.model.latent_dim)
    np.testing.assert_allclose(lw["log_w"], lw["log_lik"] + lw["log_prior"] - lw["log_q"])
    # different draws per column, the same data per row
    assert np.all(np.std(lw["log_q"], axis=1) > 0)


def test_many_samples_are_chunked_into_the_right_shape(backend, fitted):
    """More than 100 draws run in particle chunks; the result keeps exactly num_samples."""
    res, data = fitted(backend)
    lw = log_weights(res, data.test, num_samples=250, seed=0)
    assert lw["log_w"].shape == (16, 250) and np.all(np.isfinite(lw["log_w"]))
    # every chunk draws fresh samples: no column repeats another
    assert len(np.unique(lw["log_q"][0])) == 250
    # the KL per dim comes from the first chunk's 100 draws only (its cost is K draws each
    # under a K-component mixture prior): the same numbers as scoring 100 draws
    first = log_weights(res, data.test, num_samples=100, seed=0)
    np.testing.assert_allclose(lw["kl_dim"], first["kl_dim"], rtol=1e-6)
    np.testing.assert_allclose(lw["log_q"][:, :100], first["log_q"], rtol=1e-6)


def test_rows_are_chunked_and_padded_without_changing_the_scores(backend, fitted, monkeypatch):
    res, data = fitted(backend)
    full = log_weights(res, data.test, num_samples=100, seed=0)
    monkeypatch.setattr(scoring_module, "_MAX_ROWS", 700)     # 7 rows per chunk: 7 + 7 + 2
    chunked = log_weights(res, data.test, num_samples=100, seed=0)
    for key in ("log_w", "log_lik", "log_prior", "log_q"):
        assert chunked[key].shape == (16, 100) and np.all(np.isfinite(chunked[key]))
        # same examples, other draws: means agree up to Monte Carlo noise
        np.testing.assert_allclose(chunked[key].mean(1), full[key].mean(1), rtol=0.05, atol=1.0)
        assert chunked[key].mean() == pytest.approx(full[key].mean(), abs=0.15)
    assert chunked["kl_dim"].shape == (16, res.model.latent_dim)


def test_evaluate_is_seeded(backend, fitted):
    res, data = fitted(backend)
    a = pv.evaluate(res, data.test, num_samples=5, seed=0)
    b = pv.evaluate(res, data.test, num_samples=5, seed=0)
    c = pv.evaluate(res, data.test, num_samples=5, seed=1)
    assert a["elbo"] == b["elbo"] and a["log_likelihood"] == b["log_likelihood"]
    assert a["elbo"] != c["elbo"]


def test_evaluate_accepts_a_large_seed(backend, fitted):
    res, data = fitted(backend)
    scores = pv.evaluate(res, data.test, num_samples=3, seed=123456)
    assert np.isfinite(scores["elbo"])


def test_iwae_bound_tightens_with_more_samples(backend, fitted):
    res, data = fitted(backend)
    one = pv.evaluate(res, data.test, num_samples=1, seed=0)
    many = pv.evaluate(res, data.test, num_samples=200, seed=0)
    assert one["log_likelihood"] == pytest.approx(one["elbo"])     # K=1 is the ELBO
    assert many["log_likelihood"] >= many["elbo"]                 # Jensen, per draw set
    assert many["log_likelihood"] > one["log_likelihood"] + 0.1   # a clear margin
    assert many["log_likelihood"] > many["elbo"] + 0.1
    assert many["num_samples"] == 200 and many["num_examples"] == 16


def test_kl_per_dim_matches_the_analytic_kl_for_a_normal_prior(backend, fitted):
    res, data = fitted(backend)
    scores = pv.evaluate(res, data.test, num_samples=100, seed=0)
    kl_dim = scores["kl_per_dim"]
    d = res.model.latent_dim
    assert kl_dim.shape == (d,) and np.all(kl_dim > -0.05)
    # the per-dim KLs of a factorised prior and guide add up to the total KL
    assert kl_dim.sum() == pytest.approx(scores["kl"], rel=1e-4, abs=1e-4)
    # and both agree with the closed form KL(N(m, s) || N(0, 1)) from the guide's outputs
    bk = res.bk
    trace = bk.get_trace(bk.seed(res.bound(res.model.guide), 0), bk.asarray(data.test.x))
    fn = trace["z"]["fn"]
    while not hasattr(fn, "reinterpreted_batch_ndims"):
        fn = fn.base_dist
    loc, scale = bk.to_numpy(fn.base_dist.loc), bk.to_numpy(fn.base_dist.scale)
    exact = (0.5 * (loc ** 2 + scale ** 2 - 1) - np.log(scale)).mean(0)
    np.testing.assert_allclose(kl_dim, exact, atol=0.05)
    assert scores["kl"] == pytest.approx(exact.sum(), abs=0.1)
    np.testing.assert_allclose(pv.encode(res, data.test), loc, rtol=1e-6)


@pytest.mark.parametrize("prior", ["laplace", "mixture"])
def test_kl_per_dim_for_other_priors(prior, fitted):
    res, data = fitted("numpyro", prior)
    scores = pv.evaluate(res, data.test, num_samples=20)
    kl_dim = scores["kl_per_dim"]
    assert kl_dim.shape == (res.model.latent_dim,) and np.all(np.isfinite(kl_dim))
    if prior == "laplace":       # factorised: adds up to the total
        assert kl_dim.sum() == pytest.approx(scores["kl"], rel=1e-4, abs=1e-4)


def test_flow_prior_has_no_per_dim_kl(backend, fitted):
    res, data = fitted(backend, "flow")
    scores = pv.evaluate(res, data.test, num_samples=5)
    assert scores["kl_per_dim"].shape == (res.model.latent_dim,)
    assert np.isnan(scores["kl_per_dim"]).all()
    assert np.isfinite(scores["kl"])
    assert "kl_dim" not in log_weights(res, data.test.x[:4], num_samples=3)


def test_argument_errors(fitted):
    res, data = fitted("pyro")
    with pytest.raises(ValueError, match="num_samples"):
        pv.evaluate(res, data.test, num_samples=0)
    with pytest.raises(ValueError, match="10 features"):
        pv.evaluate(res, data.test.x[:, :10], num_samples=2)
    with pytest.raises(ValueError, match="n .*must be an integer >= 1"):
        pv.sample(res, n=0)


def test_collapsed_latents_are_inactive(small, make_vae, quick_fit):
    """A huge KL weight pushes q(z|x) onto the prior: no active units, KL per dim near 0."""
    res = quick_fit(make_vae("pyro"), small.train, objective="beta", beta=200.0, epochs=30,
                    lr=1e-2)
    scores = pv.evaluate(res, small.test, num_samples=20)
    assert scores["active_units"] == 0
    assert np.all(np.abs(scores["kl_per_dim"]) < 0.05)


def test_each_fit_is_scored_with_its_own_parameters(backend, small):
    """Two fits of the same configuration share compiled scoring functions (NumPyro) but
    never each other's parameters: a short and a long fit score differently, in any order."""
    kw = dict(batch_size=32, lr=3e-3, progress=False, seed=0)

    def make():
        return pv.models.VAE(input_dim=small.train.x.shape[1], latent_dim=2, hidden=(16,),
                             backend=backend)
    short = pv.fit(make(), small.train, epochs=1, **kw)
    long = pv.fit(make(), small.train, epochs=15, **kw)
    a = pv.evaluate(long, small.test, num_samples=8)["elbo"]
    b = pv.evaluate(short, small.test, num_samples=8)["elbo"]
    assert a != b
    assert pv.evaluate(long, small.test, num_samples=8)["elbo"] == a
