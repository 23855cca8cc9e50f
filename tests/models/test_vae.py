"""The VAE on both backends: priors x likelihoods, predictions, and the site/plate contract."""
import numpy as np
import pytest
import torch

import probvae as pv
from probvae.inference.objectives import kl_weighted

PRIORS = ("normal", "laplace", "student_t", "mixture", "vamp", "flow")
# every prior with the continuous Bernoulli, every [0, 1] likelihood with the normal prior,
# the VampPrior with two more likelihoods, and the count likelihoods on integer data
CASES = ([(p, "continuous_bernoulli") for p in PRIORS]
         + [("normal", lik) for lik in ("gaussian", "laplace", "beta", "bernoulli")]
         + [("vamp", "bernoulli"), ("vamp", "beta")]
         + [("normal", "poisson"), ("normal", "negative_binomial")])


def finite(*values):
    return all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in values)


@pytest.mark.parametrize("prior,likelihood", CASES, ids=[f"{p}-{lik}" for p, lik in CASES])
def test_fit_evaluate_and_predict(backend, prior, likelihood, fitted):
    res, data = fitted(backend, prior, likelihood)
    h = res.history
    assert len(h["train_loss"]) == 2 and len(h["seconds"]) == 2 and h["valid_loss"] == []
    assert finite(h["train_loss"]) and h["kl_weight"] == [1.0, 1.0]
    assert res.backend == backend and res.objective == "elbo" and res.best_epoch is None

    scores = pv.evaluate(res, data.test, num_samples=5, seed=0)
    assert finite(scores["elbo"], scores["log_likelihood"], scores["reconstruction"], scores["kl"])
    assert scores["num_samples"] == 5 and scores["num_examples"] == len(data.test)
    assert scores["log_likelihood"] >= scores["elbo"] - 1e-6
    assert scores["elbo"] == pytest.approx(scores["reconstruction"] - scores["kl"], rel=1e-5, abs=1e-5)
    kl_dim = scores["kl_per_dim"]
    assert kl_dim.shape == (res.model.latent_dim,)
    if prior == "flow":
        assert np.isnan(kl_dim).all()
    else:
        assert finite(kl_dim)
    assert 0 <= scores["active_units"] <= res.model.latent_dim

    x = data.test.x
    s = pv.sample(res, n=5, seed=1)
    draws = pv.sample(res, n=5, seed=1, mean=False)
    z = pv.encode(res, data.test)
    rec = pv.reconstruct(res, x)
    assert s.shape == draws.shape == (5, 64) and s.dtype == np.float32
    assert z.shape == (len(x), res.model.latent_dim)
    assert rec.shape == x.shape
    assert finite(s, draws, z, rec)
    if likelihood in ("bernoulli", "continuous_bernoulli", "beta"):
        assert s.min() >= 0 and s.max() <= 1 and rec.min() >= 0 and rec.max() <= 1
    if likelihood == "bernoulli":
        assert set(np.unique(draws)) <= {0.0, 1.0}
    if likelihood in ("poisson", "negative_binomial"):
        assert s.min() >= 0 and draws.min() >= 0 and np.all(draws == np.round(draws))


# ------------------------------------------------------------------ site / plate contract
def _trace_pair(backend, prior, x, kl_weight=1.0, likelihood="continuous_bernoulli"):
    """Traces of guide and (replayed) model for a freshly built tiny VAE."""
    bk = pv.backends.get(backend)
    vae = pv.models.VAE(input_dim=64, latent_dim=3, hidden=(16,), prior=prior,
                        likelihood=likelihood, backend=backend).build(seed=0)
    xb = bk.asarray(x)
    params = pv.backends.init_params(bk, vae, {"x": xb}, 0)
    names = vae.contract.continuous_names             # what the objective's KL weight scales
    guide, model = (kl_weighted(bk, fn, names) for fn in (vae.guide, vae.model))
    gtr = bk.get_trace(bk.seed(bk.with_params(guide, params), 0), xb, kl_weight=kl_weight)
    mtr = bk.get_trace(bk.replay(bk.seed(bk.with_params(model, params), 0), gtr), xb,
                       kl_weight=kl_weight)
    gen = bk.get_trace(bk.seed(bk.with_params(vae.model, params), 1), None, n=5)
    return bk, gtr, mtr, gen


def _describe(bk, trace):
    """{site: (value shape, batch shape, event shape, plates, observed)} of the sample sites."""
    out = {}
    for name, site in bk.sample_sites(trace).items():
        fn = site["fn"]
        out[name] = (tuple(site["value"].shape), tuple(fn.batch_shape), tuple(fn.event_shape),
                     tuple(f.name for f in site["cond_indep_stack"]), bool(site["is_observed"]))
    return out


@pytest.mark.parametrize("prior", PRIORS)
def test_sites_and_plates_match_across_backends(prior, small):
    x = small.test.x[:8]
    described = {}
    for backend in ("pyro", "numpyro"):
        bk, gtr, mtr, gen = _trace_pair(backend, prior, x)
        assert "data" in gtr and "data" in mtr           # the plate itself is in the trace
        g, m, s = _describe(bk, gtr), _describe(bk, mtr), _describe(bk, gen)
        assert set(g) == {"z"} and set(m) == {"z", "x"} and set(s) == {"z", "x"}
        described[backend] = (g, m, s)
    assert described["pyro"] == described["numpyro"]
    g, m, s = described["numpyro"]
    assert g["z"] == ((8, 3), (8,), (3,), ("data",), False)
    assert m["x"] == ((8, 64), (8,), (64,), ("data",), True)
    assert s["x"][:4] == ((5, 64), (5,), (64,), ("data",))


def test_kl_weight_scales_only_z_in_model_and_guide(small):
    for backend in ("pyro", "numpyro"):
        bk, gtr, mtr, _ = _trace_pair(backend, "normal", small.test.x[:4], kl_weight=0.25)
        assert float(gtr["z"]["scale"]) == 0.25
        assert float(mtr["z"]["scale"]) == 0.25
        assert mtr["x"]["scale"] in (None, 1.0)


def test_unbuilt_model_refuses_to_run(backend):
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend=backend)
    assert vae.nets is None
    with pytest.raises(RuntimeError, match="build"):
        vae.model(None, n=2)
    built = vae.build(seed=0)
    assert built is not vae and built.nets is not None and vae.nets is None


def test_built_networks_are_backend_native():
    import equinox as eqx
    vp = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="pyro").build(0)
    vn = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="numpyro").build(0)
    assert isinstance(vp.nets["encoder"], torch.nn.Module)
    assert isinstance(vn.nets["encoder"], eqx.Module)
    # same seed, same weights; another seed, other weights
    w0 = vp.nets["encoder"].net[0].weight.detach().numpy()
    again = vp.build(0).nets["encoder"].net[0].weight.detach().numpy()
    other = vp.build(1).nets["encoder"].net[0].weight.detach().numpy()
    assert np.array_equal(w0, again) and not np.array_equal(w0, other)


def test_config_round_trip():
    vae = pv.models.VAE(input_dim=64, latent_dim=4, hidden=(32, 16), activation="tanh",
                        prior=pv.priors.get("student_t", df=3.0),
                        likelihood={"name": "gaussian", "scale": 0.2}, backend="pyro")
    cfg = vae.config()
    assert cfg == {"class": "VAE", "input_dim": 64, "latent_dim": 4, "hidden": [32, 16],
                   "activation": "tanh", "prior": {"name": "student_t", "df": 3.0},
                   "likelihood": {"name": "gaussian", "scale": 0.2, "min_scale": 0.01},
                   "backend": "pyro"}
    again = pv.models.Model.from_config(cfg)
    assert isinstance(again, pv.models.VAE) and again.config() == cfg
    assert again.decoder_spec.hidden == (16, 32)            # decoder mirrors the encoder


def test_vae_argument_errors():
    with pytest.raises(ValueError, match="latent_dim"):
        pv.models.VAE(input_dim=64, latent_dim=0)
    with pytest.raises(ValueError, match="activation"):
        pv.models.VAE(input_dim=64, activation="swish")
    with pytest.raises(ValueError, match="known priors"):
        pv.models.VAE(input_dim=64, prior="gamma")
    with pytest.raises(ValueError, match="backend"):
        pv.models.VAE(input_dim=64, backend="tensorflow")


def test_flow_prior_needs_two_latent_dims(small):
    vae = pv.models.VAE(input_dim=64, latent_dim=1, hidden=(8,), prior="flow", backend="pyro")
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        pv.fit(vae, small.train, epochs=1, progress=False)


# ------------------------------------------------------------------ slow: the rest of the matrix
LIKELIHOODS = ("continuous_bernoulli", "gaussian", "laplace", "beta", "bernoulli", "poisson",
               "negative_binomial")
REST = [(p, lik) for p in PRIORS for lik in LIKELIHOODS if (p, lik) not in CASES]


@pytest.mark.slow
@pytest.mark.parametrize("prior,likelihood", REST, ids=[f"{p}-{lik}" for p, lik in REST])
def test_rest_of_the_prior_likelihood_product(backend, prior, likelihood, fitted):
    res, data = fitted(backend, prior, likelihood)
    assert finite(res.history["train_loss"])
    scores = pv.evaluate(res, data.test, num_samples=5)
    assert finite(scores["elbo"], scores["log_likelihood"], scores["kl"])
    assert pv.sample(res, n=3).shape == (3, 64)
    assert pv.reconstruct(res, data.test).shape == (16, 64)


@pytest.mark.slow
def test_training_improves_the_test_elbo(backend, digits, make_vae):
    train = pv.data.from_arrays(digits.train.x[:512])
    kw = dict(batch_size=64, lr=3e-3, progress=False, seed=0)
    short = pv.fit(make_vae(backend, hidden=(64,)), train, epochs=1, **kw)
    long = pv.fit(make_vae(backend, hidden=(64,)), train, epochs=30, **kw)
    before = pv.evaluate(short, digits.test, num_samples=20)
    after = pv.evaluate(long, digits.test, num_samples=20)
    assert after["elbo"] > before["elbo"] + 5.0
    assert after["log_likelihood"] > before["log_likelihood"] + 5.0
    assert long.history["train_loss"][-1] < long.history["train_loss"][0]
    assert after["active_units"] >= 1
