"""Priors: the registry, settings validation, densities on both backends, learned parameters."""
import dataclasses

import numpy as np
import pytest
import scipy.stats as st

import probvae as pv
from probvae.priors import PriorContext

NAMES = ("normal", "laplace", "student_t", "mixture", "vamp", "flow")


# ------------------------------------------------------------------ registry
def test_names():
    assert pv.priors.names() == NAMES


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        pv.priors.get("gamma")
    msg = str(err.value)
    assert "'gamma'" in msg and all(name in msg for name in NAMES)


def test_settings_by_keyword_and_by_dict():
    assert pv.priors.get("student_t", df=3.0) == pv.priors.StudentT(df=3.0)
    assert pv.priors.get("mixture", components=4).components == 4
    assert pv.priors.get("vamp", components=7).components == 7
    assert pv.priors.get("flow", layers=1, hidden=8) == pv.priors.Flow(layers=1, hidden=8)
    assert pv.priors.get({"name": "student_t", "df": 2.5}).df == 2.5
    assert pv.priors.get({"name": "mixture"}, components=3).components == 3
    # defaults are what the docs say
    assert pv.priors.get("student_t").df == 5.0
    assert pv.priors.get("mixture").components == 10
    assert pv.priors.get("vamp").components == 50


def test_config_round_trip():
    for prior in (pv.priors.StudentT(df=3.0), pv.priors.Flow(layers=3, hidden=5),
                  pv.priors.MixtureOfGaussians(components=2), pv.priors.Normal()):
        cfg = pv.priors.to_config(prior)
        assert pv.priors.get(cfg) == prior


def test_instances_pass_through():
    inst = pv.priors.StudentT(df=2.0)
    assert pv.priors.get(inst) is inst

    @dataclasses.dataclass(frozen=True)
    class Wide(pv.priors.Prior):              # a user's own prior, not registered
        def distribution(self, bk, ctx):
            return bk.dist.Normal(0.0, 3.0).expand([ctx.latent_dim]).to_event(1)

    mine = Wide()
    assert pv.priors.get(mine) is mine
    assert pv.models.VAE(input_dim=4, latent_dim=2, prior=mine).prior is mine


def test_unknown_setting_names_the_valid_ones():
    with pytest.raises(TypeError, match=r"student_t.*\['df'\]"):
        pv.priors.get("student_t", nu=3.0)
    with pytest.raises(TypeError, match="only go with a prior name"):
        pv.priors.get(pv.priors.StudentT(), df=3.0)
    with pytest.raises(TypeError, match="prior name"):
        pv.priors.get(3)


@pytest.mark.parametrize("name,settings,match", [
    ("student_t", {"df": 0}, "df > 0"),
    ("student_t", {"df": -2.0}, "df > 0"),
    ("student_t", {"df": float("nan")}, "df > 0"),
    ("mixture", {"components": 0}, "components to be an integer >= 1"),
    ("vamp", {"components": 0}, "components to be an integer >= 1"),
    ("flow", {"layers": 0}, "layers to be an integer >= 1"),
    ("flow", {"hidden": 0}, "hidden to be an integer >= 1"),
])
def test_bad_settings_raise(name, settings, match):
    with pytest.raises(ValueError, match=match):
        pv.priors.get(name, **settings)


def test_a_class_instead_of_an_instance_is_refused_early():
    with pytest.raises(TypeError):
        pv.priors.get(pv.priors.StudentT)


def test_non_integer_components_are_refused():
    with pytest.raises((ValueError, TypeError)):
        pv.priors.get("mixture", components=2.5)


def test_vamp_needs_input_dim():
    with pytest.raises(ValueError, match="input_dim"):
        pv.priors.VampPrior(components=2).build(pv.backends.get("numpyro"), 2, 0, 0)


def test_flow_needs_latent_dim_two():
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        pv.priors.Flow().build(pv.backends.get("numpyro"), 1, 4, 0)


# ------------------------------------------------------------------ densities
@pytest.mark.parametrize("name,settings,ref", [
    ("normal", {}, st.norm()),
    ("laplace", {}, st.laplace()),
    ("student_t", {"df": 3.0}, st.t(3.0)),
])
def test_fixed_prior_densities_match_scipy_on_both_backends(name, settings, ref):
    z = np.array([[0.0, 0.5, -1.5], [2.0, -0.3, 4.0]], np.float32)
    expected = ref.logpdf(z.astype(np.float64)).sum(-1)
    for backend in ("pyro", "numpyro"):
        bk = pv.backends.get(backend)
        d = pv.priors.get(name, **settings).distribution(bk, PriorContext(latent_dim=3))
        assert tuple(d.event_shape) == (3,) and tuple(d.batch_shape) == ()
        np.testing.assert_allclose(bk.to_numpy(d.log_prob(bk.asarray(z))), expected, rtol=1e-5)
        if backend == "pyro":
            draws = d.sample((4,))
        else:
            import jax
            draws = d.sample(jax.random.PRNGKey(0), (4,))
        assert bk.to_numpy(draws).shape == (4, 3)


# ------------------------------------------------------------------ mixtures by matmuls
def _mixture_case(scale_lo, scale_hi, offset, k=40, d=6, n=30, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(k).astype(np.float32)
    loc = (rng.standard_normal((k, d)) * 3 + offset).astype(np.float32)
    scale = rng.uniform(scale_lo, scale_hi, (k, d)).astype(np.float32)
    near = loc[: n // 2] + scale[: n // 2] * rng.standard_normal((n // 2, d))     # by a component
    far = rng.standard_normal((n - n // 2, d)) * 3 + offset                         # between them
    z = np.concatenate([near, far]).astype(np.float32)
    comp = (-0.5 * (((z[:, None].astype(np.float64) - loc) / scale) ** 2).sum(-1)
            - np.log(scale.astype(np.float64)).sum(-1) - 0.5 * d * np.log(2 * np.pi))
    weights = logits - np.logaddexp.reduce(logits.astype(np.float64))
    return (logits, loc, scale, z), np.logaddexp.reduce(comp + weights, axis=-1)


@pytest.mark.parametrize("scales,offset,atol", [((0.5, 1.5), 0.0, 1e-4),
                                                ((0.01, 0.05), 5.0, 1e-2)])
def test_diagonal_mixture_log_prob_matches_float64_on_both_backends(backend, scales, offset,
                                                                    atol):
    """The matmul log-density equals the direct sum in float64, also with small scales far from
    the origin, where expanding the square loses digits (|log p| reaches 30,000 here)."""
    bk = pv.backends.get(backend)
    args, expected = _mixture_case(*scales, offset)
    m = bk.dist.DiagonalNormalMixture(*(bk.asarray(a) for a in args[:3]))
    got = bk.to_numpy(m.log_prob(bk.asarray(args[3])))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=atol)
    # the same as the library's MixtureSameFamily, expanded in a plate too
    lib = bk.dist.MixtureSameFamily(bk.dist.Categorical(logits=bk.asarray(args[0])),
                                    bk.dist.Normal(bk.asarray(args[1]),
                                                   bk.asarray(args[2])).to_event(1))
    np.testing.assert_allclose(got, bk.to_numpy(lib.log_prob(bk.asarray(args[3]))),
                               rtol=1e-5, atol=atol)
    plated = m.expand([len(expected)])
    assert tuple(plated.batch_shape) == (len(expected),)
    np.testing.assert_allclose(bk.to_numpy(plated.log_prob(bk.asarray(args[3]))), got)


def test_diagonal_mixture_gradients_match_mixture_same_family():
    import jax
    import numpyro.distributions as nd
    import torch

    from probvae.distributions.mixture_jax import DiagonalNormalMixture as Jax
    from probvae.distributions.mixture_torch import DiagonalNormalMixture as Torch
    args, _ = _mixture_case(0.3, 1.0, 0.0)

    def lib_jax(l, m, s, v):
        return nd.MixtureSameFamily(nd.Categorical(logits=l),
                                    nd.Normal(m, s).to_event(1)).log_prob(v).sum()

    ours = jax.grad(lambda *a: Jax(*a[:3]).log_prob(a[3]).sum(), argnums=(0, 1, 2, 3))(*args)
    theirs = jax.grad(lib_jax, argnums=(0, 1, 2, 3))(*args)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    t = [torch.tensor(a, requires_grad=True) for a in args]
    Torch(*t[:3]).log_prob(t[3]).sum().backward()
    for a, b in zip(t, ours):
        np.testing.assert_allclose(a.grad.numpy(), np.asarray(b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,settings", [("mixture", {"components": 3}),
                                           ("vamp", {"components": 4})])
def test_mixture_priors_use_the_matmul_mixture(backend, name, settings):
    bk = pv.backends.get(backend)
    vae = pv.models.VAE(input_dim=5, latent_dim=2, prior=pv.priors.get(name, **settings),
                        backend=backend)
    built = vae.build(0)
    tr = bk.get_trace(bk.seed(bk.with_params(built.model, bk.new_params()), 0),
                      x=bk.asarray(np.full((3, 5), 0.5, np.float32)))
    fn = pv.priors.unwrap(bk, tr["z"]["fn"])
    assert isinstance(fn, bk.dist.DiagonalNormalMixture)
    assert tuple(fn.component_distribution.batch_shape) == (settings["components"],)


# ------------------------------------------------------------------ learned parameters
def _initial_params(res, x):
    """The parameters a fit of ``res``'s model starts from (same seed, fresh networks)."""
    bk = res.bk
    seed = res.options["seed"]
    fresh = res.model.build(seed)
    state = pv.backends.init_params(bk, fresh, {"x": bk.asarray(x[:32])}, seed)
    return state["params"] if bk.name == "pyro" else state


def _trained(res):
    return res.param_state["params"] if res.backend == "pyro" else res.param_state


@pytest.mark.parametrize("prior,names", [
    ("mixture", ("prior_loc", "prior_logits", "prior_scale")),
    ("vamp", ("prior_pseudo_inputs",)),
])
def test_learned_prior_parameters_train(backend, prior, names, fitted):
    res, data = fitted(backend, prior, "continuous_bernoulli")
    before, after = _initial_params(res, data.train.x), _trained(res)
    for name in names:
        b, a = np.asarray(before[name].detach() if backend == "pyro" else before[name]), \
            np.asarray(after[name].detach() if backend == "pyro" else after[name])
        assert a.shape == b.shape
        assert np.all(np.isfinite(a))
        assert not np.allclose(a, b, rtol=0, atol=1e-6), f"{name} did not change in training"
    if prior == "mixture":
        shape = np.shape(after["prior_loc"])
        assert shape == (10, res.model.latent_dim)
        if backend == "numpyro":   # constrained values: the scales stay positive
            assert np.all(np.asarray(after["prior_scale"]) > 0)
            np.testing.assert_allclose(np.asarray(before["prior_loc"]), res.model.nets["prior"]["loc"])
    else:
        assert np.shape(after["prior_pseudo_inputs"]) == (50, 64)


def test_learned_parameters_are_named_per_instance(backend):
    """Two mixture priors and two learned-scale likelihoods in one model never collide."""
    bk = pv.backends.get(backend)
    mix, lik = pv.priors.MixtureOfGaussians(components=3), pv.likelihoods.Gaussian(scale=None)

    def model():
        for name in ("a", "b"):
            mix.distribution(bk, PriorContext(latent_dim=2, prefix=f"{name}_prior"))
            lik.distribution(bk, (bk.asarray(np.zeros((4, 3))),), prefix=f"{name}_lik")

    state = bk.new_params()
    tr = bk.get_trace(bk.seed(bk.with_params(model, state), 0))
    names = sorted(state["params"]) if bk.shared_param_store else sorted(
        k for k, s in tr.items() if s["type"] == "param")
    assert names == ["a_lik_scale", "a_prior_loc", "a_prior_logits", "a_prior_scale",
                     "b_lik_scale", "b_prior_loc", "b_prior_logits", "b_prior_scale"]


def test_vamp_declares_it_needs_the_encoder():
    assert pv.priors.get("vamp").needs_encoder
    assert not any(pv.priors.get(n).needs_encoder for n in ("normal", "mixture", "flow"))
