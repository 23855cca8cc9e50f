"""The hierarchical VAE on both backends: training with every objective it takes, the contract's
per-layer consumers (evaluate, encode, sample, latent_posterior), checkpoints, and the same
log density from the same weights on both backends."""
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import probvae as pv

DIMS, HIDDEN, LINK = (6, 3), (16,), (8,)


def finite(*values):
    return all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in values)


def make(backend, **kw):
    kw.setdefault("latent_dims", DIMS)
    kw.setdefault("hidden", HIDDEN)
    kw.setdefault("latent_hidden", LINK)
    return pv.models.HVAE(input_dim=64, backend=backend, **kw)


@pytest.fixture(scope="module")
def train(digits):
    return pv.data.from_arrays(digits.train.x[:256], image_shape=(8, 8))


@pytest.fixture(scope="module")
def fitted(train):
    """``fitted(backend, prior, objective)``: a cached 3-epoch fit (seed 0)."""
    cache = {}

    def get(backend, prior="normal", objective="elbo"):
        key = (backend, prior, objective)
        if key not in cache:
            cache[key] = pv.fit(make(backend, prior=prior), train, objective=objective,
                                epochs=3, batch_size=32, lr=3e-3, validation=None,
                                progress=False, seed=0)
        return cache[key]
    return get


@pytest.mark.parametrize("prior,objective", [          # the other two: -m slow
    ("normal", "elbo"), ("vamp", "iwae"), pytest.param("normal", "iwae", marks=pytest.mark.slow),
    pytest.param("vamp", "elbo", marks=pytest.mark.slow)])
def test_trains_evaluates_encodes_and_samples(backend, prior, objective, fitted, small):
    res = fitted(backend, prior, objective)
    loss = res.history["train_loss"]
    assert finite(loss) and loss[-1] < loss[0]
    scores = pv.evaluate(res, small.test, num_samples=50, seed=0)
    assert finite(scores["elbo"], scores["log_likelihood"], scores["kl"])
    assert scores["log_likelihood"] >= scores["elbo"]        # IWAE(50) >= ELBO on average
    assert scores["elbo"] == pytest.approx(scores["reconstruction"] - scores["kl"], rel=1e-5,
                                           abs=1e-5)
    assert scores["kl_per_dim"].shape == (sum(DIMS),) and finite(scores["kl_per_dim"])
    assert {k: v.shape for k, v in scores["kl_per_site"].items()} == {"z1": (6,), "z2": (3,)}
    assert set(scores["active_per_site"]) == {"z1", "z2"}

    codes = pv.encode(res, small.test)
    assert list(codes) == ["z1", "z2"]
    assert codes["z1"].shape == (16, 6) and codes["z2"].shape == (16, 3) and finite(*codes.values())
    assert pv.encode(res, small.test, site="z2").shape == (16, 3)
    s = pv.sample(res, n=5, seed=1)
    assert s.shape == (5, 64) and finite(s) and s.min() >= 0 and s.max() <= 1
    assert pv.decode(res, codes["z1"][:2]).shape == (2, 64)
    assert pv.reconstruct(res, small.test.x[:3]).shape == (3, 64)


def test_latent_posterior_has_every_layer(backend, fitted, small):
    idata = pv.diagnostics.latent_posterior(fitted(backend, "vamp", "iwae"), small.test.x[:4],
                                            num_samples=20)
    shapes = {k: idata.posterior[k].shape for k in idata.posterior.data_vars}
    assert shapes == {"z1": (1, 20, 4, 6), "z2": (1, 20, 4, 3)}


def test_save_and_load_give_the_same_scores(backend, fitted, small, tmp_path):
    res = fitted(backend, "vamp", "iwae")
    pv.save(res, tmp_path / "run")
    back = pv.load(tmp_path / "run")
    assert isinstance(back.model, pv.models.HVAE) and back.model.config() == res.model.config()
    a = pv.evaluate(res, small.test, num_samples=5, seed=0)
    b = pv.evaluate(back, small.test, num_samples=5, seed=0)
    assert a["elbo"] == b["elbo"] and a["log_likelihood"] == b["log_likelihood"]


def test_three_layers_with_dreg(backend, train, small):
    model = make(backend, latent_dims=(6, 4, 2), latent_hidden=((8,), (4,)), prior="vamp")
    res = pv.fit(model, train, objective="dreg", num_particles=4, epochs=2, batch_size=64,
                 validation=None, progress=False, seed=0)
    assert finite(res.history["train_loss"])
    assert model.contract.latent_names == ("z1", "z2", "z3")
    codes = pv.encode(res, small.test)
    assert [v.shape for v in codes.values()] == [(16, 6), (16, 4), (16, 2)]
    assert pv.sample(res, n=3).shape == (3, 64)
    assert finite(pv.evaluate(res, small.test, num_samples=5)["log_likelihood"])


def test_mean_field_is_refused_with_the_fix(small):
    with pytest.raises(ValueError, match="objective='elbo'"):
        pv.fit(make("numpyro"), small.train, objective="mean_field", epochs=1, progress=False)


def _traces(backend, x, prior="normal"):
    bk = pv.backends.get(backend)
    model = make(backend, prior=prior).build(seed=0)
    xb = bk.asarray(x)
    params = pv.backends.init_params(bk, model, {"x": xb}, 0)
    gtr = bk.get_trace(bk.seed(bk.with_params(model.guide, params), 0), xb)
    mtr = bk.get_trace(bk.replay(bk.seed(bk.with_params(model.model, params), 0), gtr), xb)
    gen = bk.get_trace(bk.seed(bk.with_params(model.model, params), 1), None, n=5)
    return bk, gtr, mtr, gen


def _describe(bk, trace):
    return {name: (tuple(site["value"].shape), tuple(site["fn"].event_shape),
                   tuple(f.name for f in site["cond_indep_stack"]), bool(site["is_observed"]))
            for name, site in bk.sample_sites(trace).items()}


@pytest.mark.parametrize("prior", ["normal", "vamp"])
def test_sites_match_across_backends_and_run_top_down(prior, small):
    seen = {}
    for backend in ("pyro", "numpyro"):
        bk, gtr, mtr, gen = _traces(backend, small.test.x[:8], prior)
        g, m, s = (_describe(bk, t) for t in (gtr, mtr, gen))
        assert list(g) == ["z1", "z2"] and list(m) == ["z2", "z1", "x"] == list(s)
        seen[backend] = (g, m, s)
    assert seen["pyro"] == seen["numpyro"]
    g, m, s = seen["numpyro"]
    assert g["z1"] == ((8, 6), (6,), ("data",), False) and g["z2"] == ((8, 3), (3,), ("data",),
                                                                        False)
    assert s["x"] == ((5, 64), (64,), ("data",), False)


def _copy_weights(tnet, jnet):
    """The Equinox MLP with the torch MLP's weights (same layout)."""
    import torch
    linear = [m for m in tnet.net if isinstance(m, torch.nn.Linear)]
    layers = [eqx.tree_at(lambda l: (l.weight, l.bias), e,
                          (jnp.asarray(m.weight.detach().numpy()),
                           jnp.asarray(m.bias.detach().numpy())))
              for m, e in zip(linear, jnet.layers)]
    return eqx.tree_at(lambda n: n.layers, jnet, layers)


def test_same_weights_same_log_joint_on_both_backends(small):
    x = small.test.x[:4]
    rng = np.random.default_rng(0)
    z = {"z1": rng.normal(size=(4, 6)).astype(np.float32),
         "z2": rng.normal(size=(4, 3)).astype(np.float32)}
    tm, jm = make("pyro").build(seed=0), make("numpyro").build(seed=0)
    jm.nets = {k: (_copy_weights(tm.nets[k], v) if k != "prior" else v)
               for k, v in jm.nets.items()}
    out = {}
    for model in (tm, jm):
        bk = model.bk
        xb = bk.asarray(x)
        params = pv.backends.init_params(bk, model, {"x": xb}, 0)
        values = {k: bk.asarray(v) for k, v in z.items()}
        fn = bk.condition(bk.with_params(model.model, params), values)
        tr = bk.get_trace(bk.seed(fn, 0), xb)
        out[model.backend] = {n: bk.to_numpy(s["fn"].log_prob(s["value"]))
                              for n, s in bk.sample_sites(tr).items()}
        codes = bk.get_trace(bk.seed(bk.with_params(model.guide, params), 0), xb)
        out[model.backend]["q_loc"] = bk.to_numpy(codes["z1"]["fn"].base_dist.loc)
    for name in ("z2", "z1", "x", "q_loc"):
        np.testing.assert_allclose(out["pyro"][name], out["numpyro"][name], rtol=1e-4,
                                   atol=1e-4)


def test_config_round_trip_and_argument_errors():
    model = make("pyro", latent_dims=(8, 4, 2), latent_hidden=((16,), (8,)), activation="tanh",
                 prior={"name": "mixture", "components": 3})
    cfg = model.config()
    assert cfg.pop("likelihood")["name"] == "continuous_bernoulli"
    assert cfg == {"class": "HVAE", "input_dim": 64, "latent_dims": [8, 4, 2], "hidden": [16],
                   "latent_hidden": [[16], [8]], "activation": "tanh",
                   "prior": {"name": "mixture", "components": 3}, "backend": "pyro"}
    cfg = model.config()
    again = pv.models.Model.from_config(cfg)
    assert isinstance(again, pv.models.HVAE) and again.config() == cfg
    assert again.decoder_z1_spec.hidden == (16,) and again.encoder_z3_spec.inputs[0].size == 4
    assert make("numpyro").parameter_count() == sum(
        spec.num_params for name, spec in vars(make("numpyro")).items() if name.endswith("_spec"))
    with pytest.raises(ValueError, match="at least two"):
        pv.models.HVAE(input_dim=64, latent_dims=(8,))
    with pytest.raises(ValueError, match="latent_dims"):
        pv.models.HVAE(input_dim=64, latent_dims=(8, 0))
    with pytest.raises(ValueError, match="one per link"):
        pv.models.HVAE(input_dim=64, latent_dims=(8, 4), latent_hidden=((8,), (4,)))
    with pytest.raises(ValueError, match="known priors"):
        pv.models.HVAE(input_dim=64, prior="gamma")


def test_declared_contract_matches_a_trace(backend, small):
    from probvae.models.contract import read_contract
    model = make(backend, latent_dims=(4, 3, 2)).build(0)
    batch = pv.batch.to_backend(model.bk, {"x": small.train.x[:4]})
    read = read_contract(model.bk, model.model, model.guide, batch,
                         batch_keys=model.contract.batch_keys)
    assert read.latents == model.contract.latents
    assert read.observed_names == ("x",) and read.data_plate == "data"
