"""Likelihoods: registry, settings, support checks, densities on both backends, learned scale."""
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st

import probvae as pv

NAMES = ("bernoulli", "continuous_bernoulli", "gaussian", "laplace", "beta", "poisson",
         "negative_binomial")


# ------------------------------------------------------------------ registry
def test_names():
    assert pv.likelihoods.names() == NAMES + ("columns",)       # columns: tests/test_tables.py


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        pv.likelihoods.get("gamma")
    msg = str(err.value)
    assert "'gamma'" in msg and all(name in msg for name in NAMES)


def test_settings_by_keyword_dict_and_instance():
    g = pv.likelihoods.get("gaussian", scale=0.1)
    assert g.scale == 0.1 and g.min_scale == 0.01
    assert pv.likelihoods.get("gaussian").scale is None            # learned by default
    assert pv.likelihoods.get("laplace", scale=None, min_scale=0.05).min_scale == 0.05
    assert pv.likelihoods.get("beta", eps=1e-2).eps == 1e-2
    assert pv.likelihoods.get({"name": "gaussian", "scale": 0.3}) == pv.likelihoods.Gaussian(0.3)
    inst = pv.likelihoods.Laplace(scale=0.2)
    assert pv.likelihoods.get(inst) is inst
    assert pv.likelihoods.get(pv.likelihoods.to_config(inst)) == inst
    with pytest.raises(TypeError, match=r"\['scale', 'min_scale'\]"):
        pv.likelihoods.get("gaussian", sigma=0.1)
    with pytest.raises(TypeError, match="only go with a likelihood name"):
        pv.likelihoods.get(inst, scale=0.1)


@pytest.mark.parametrize("name,settings,match", [
    ("gaussian", {"scale": 0.0}, "scale > 0"),
    ("gaussian", {"scale": -1.0}, "scale > 0"),
    ("laplace", {"scale": 0.0}, "scale > 0"),
    ("gaussian", {"min_scale": 0.0}, "min_scale > 0"),
    ("laplace", {"min_scale": -0.1}, "min_scale > 0"),
    ("beta", {"eps": 0.0}, "eps"),
    ("beta", {"eps": 0.5}, "eps"),
])
def test_bad_settings_raise(name, settings, match):
    with pytest.raises(ValueError, match=match):
        pv.likelihoods.get(name, **settings)


def test_heads():
    heads = {name: [(h.name, h.size, h.transform) for h in pv.likelihoods.get(name).heads(5)]
             for name in NAMES}
    assert heads["bernoulli"] == [("logits", 5, "identity")]
    assert heads["continuous_bernoulli"] == [("logits", 5, "bounded")]
    assert pv.likelihoods.get("continuous_bernoulli", max_logit=7.0).heads(5)[0].bound == 7.0
    assert heads["gaussian"] == heads["laplace"] == [("loc", 5, "identity")]
    assert heads["beta"] == [("concentration1", 5, "positive"), ("concentration0", 5, "positive")]
    assert heads["poisson"] == [("rate", 5, "positive")]
    assert heads["negative_binomial"] == [("total_count", 5, "positive"), ("logits", 5, "identity")]


# ------------------------------------------------------------------ support checks
def test_bernoulli_rejects_continuous_data_and_says_binarize():
    x = np.array([[0.0, 0.25, 1.0]])
    with pytest.raises(ValueError, match="binarize"):
        pv.likelihoods.get("bernoulli").check(x)
    out = pv.likelihoods.get("bernoulli").check(np.array([[0, 1, 1]]))
    assert out.dtype == np.float32 and out.tolist() == [[0.0, 1.0, 1.0]]


def test_fit_checks_the_support_before_training(small, make_vae):
    with pytest.raises(ValueError, match="binarize"):
        pv.fit(make_vae("pyro", likelihood="bernoulli"), small.train, epochs=1, progress=False)
    with pytest.raises(ValueError, match="binarize"):
        pv.fit(make_vae("numpyro", likelihood="bernoulli"), small.train, epochs=1, progress=False)
    with pytest.raises(ValueError, match="non-negative integer"):
        pv.fit(make_vae("pyro", likelihood="poisson"), small.train, epochs=1, progress=False)


@pytest.mark.parametrize("name", ["continuous_bernoulli", "beta"])
@pytest.mark.parametrize("bad", [1.5, -0.1])
def test_unit_interval_rejects_values_outside(name, bad):
    with pytest.raises(ValueError, match=r"\[0, 1\]") as err:
        pv.likelihoods.get(name).check(np.array([[0.2, bad]]))
    assert f"{bad:g}" in str(err.value)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_rejected(name, bad):
    with pytest.raises(ValueError, match="NaN"):
        pv.likelihoods.get(name).check(np.array([[0.0, bad]]))


def test_data_must_be_two_dimensional():
    with pytest.raises(ValueError, match="2-D"):
        pv.likelihoods.get("gaussian").check(np.zeros(3))


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
@pytest.mark.parametrize("bad", [-1.0, 0.5, 2.25])
def test_counts_must_be_non_negative_integers(name, bad):
    with pytest.raises(ValueError, match="non-negative integer counts"):
        pv.likelihoods.get(name).check(np.array([[0.0, 3.0, bad]]))
    ok = pv.likelihoods.get(name).check(np.array([[0, 3, 17]]))
    assert ok.dtype == np.float32


def test_beta_clips_zero_and_one():
    out = pv.likelihoods.get("beta", eps=1e-3).check(np.array([[0.0, 1.0, 0.5]]))
    np.testing.assert_allclose(out, [[1e-3, 1 - 1e-3, 0.5]], rtol=1e-6)
    assert out.dtype == np.float32


def test_gaussian_and_laplace_take_any_real_value():
    x = np.array([[-5.0, 200.0, 0.0]])
    for name in ("gaussian", "laplace"):
        np.testing.assert_array_equal(pv.likelihoods.get(name).check(x), x.astype(np.float32))


# ------------------------------------------------------------------ densities on both backends
def _params(seed=0, n=3, d=5):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(n, d)).astype(np.float32)
    raw2 = rng.normal(size=(n, d)).astype(np.float32)
    pos = (np.log1p(np.exp(raw)) + 0.1).astype(np.float32)
    pos2 = (np.log1p(np.exp(raw2)) + 0.1).astype(np.float32)
    u = rng.uniform(0.05, 0.95, size=(n, d)).astype(np.float32)
    return raw, raw2, pos, pos2, u


def _reference(name):
    """(decoder heads, data, float64 log-density per row, mean) from SciPy."""
    raw, raw2, pos, pos2, u = _params()
    f = lambda a: a.astype(np.float64)  # noqa: E731
    if name == "bernoulli":
        x = (u > 0.5).astype(np.float32)
        p = sp.expit(f(raw))
        return (raw,), x, st.bernoulli(p).logpmf(x).sum(-1), p
    if name == "continuous_bernoulli":
        lam = sp.expit(f(raw))
        log_c = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))
        mean = lam / (2 * lam - 1) + 1 / (2 * np.arctanh(1 - 2 * lam))
        return (raw,), u, (u * np.log(lam) + (1 - u) * np.log1p(-lam) + log_c).sum(-1), mean
    if name == "beta":
        return (pos, pos2), u, st.beta(f(pos), f(pos2)).logpdf(u).sum(-1), pos / (pos + pos2)
    if name == "poisson":
        x = np.round(u * 10).astype(np.float32)
        return (pos,), x, st.poisson(f(pos)).logpmf(x).sum(-1), pos
    if name == "negative_binomial":
        x = np.round(u * 10).astype(np.float32)
        # torch/NumPyro: x successes before total_count failures, success probability sigmoid(logits)
        p = sp.expit(f(raw2))
        return ((pos, raw2), x, st.nbinom(f(pos), 1 - p).logpmf(x).sum(-1),
                f(pos) * np.exp(f(raw2)))
    raise KeyError(name)


@pytest.mark.parametrize("name", ["bernoulli", "continuous_bernoulli", "beta", "poisson",
                                  "negative_binomial"])
def test_densities_and_means_agree_with_scipy_on_both_backends(name):
    heads, x, expected, mean = _reference(name)
    for backend in ("pyro", "numpyro"):
        bk = pv.backends.get(backend)
        d = pv.likelihoods.get(name).distribution(bk, tuple(bk.asarray(h) for h in heads))
        assert tuple(d.batch_shape) == (3,) and tuple(d.event_shape) == (5,)
        np.testing.assert_allclose(bk.to_numpy(d.log_prob(bk.asarray(x))), expected,
                                   rtol=1e-4, atol=1e-4, err_msg=backend)
        np.testing.assert_allclose(bk.to_numpy(d.mean), mean, rtol=1e-4, atol=1e-5,
                                   err_msg=backend)


@pytest.mark.parametrize("name,ref", [("gaussian", st.norm), ("laplace", st.laplace)])
def test_fixed_scale_densities_agree_with_scipy(name, ref):
    raw, _, _, _, u = _params()
    expected = ref(raw.astype(np.float64), 0.3).logpdf(u).sum(-1)
    for backend in ("pyro", "numpyro"):
        bk = pv.backends.get(backend)
        d = pv.likelihoods.get(name, scale=0.3).distribution(bk, (bk.asarray(raw),))
        np.testing.assert_allclose(bk.to_numpy(d.log_prob(bk.asarray(u))), expected,
                                   rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ learned scale
def test_gaussian_learned_scale_trains(backend, fitted):
    res, _ = fitted(backend, "normal", "gaussian")
    scale = res.params["likelihood_scale"]        # constrained on both backends
    assert scale.shape == (64,)
    assert np.all(np.isfinite(scale)) and np.all(scale > 0.01)   # above min_scale
    assert not np.allclose(scale, 1.0, atol=1e-6), "the learned scale stayed at its initial 1.0"


def test_fixed_scale_registers_no_parameter(small, make_vae, quick_fit):
    res = quick_fit(make_vae("pyro", likelihood={"name": "gaussian", "scale": 0.1}),
                    small.train, epochs=1)
    assert "likelihood_scale" not in res.params and "likelihood_scale" not in res.param_state["params"]


# ------------------------------------------------------------------ masks (missing values)
def _grad(bk, fn, *arrays):
    """Gradients of the scalar ``fn(*arrays)`` with respect to each array, as NumPy."""
    if bk.name == "numpyro":
        import jax
        return [np.asarray(g) for g in jax.grad(fn, argnums=tuple(range(len(arrays))))(
            *[bk.asarray(a) for a in arrays])]
    import torch
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    fn(*ts).backward()
    return [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("name", NAMES)
def test_a_masked_cell_adds_nothing_to_the_density_or_its_gradient(name):
    """Every registered likelihood leaves masked cells out: the density is that of the observed
    cells, and the gradient with respect to a masked cell's value and decoder output is 0."""
    if name in ("gaussian", "laplace"):
        raw, _, _, _, u = _params()
        heads, x, lik = (raw,), u, pv.likelihoods.get(name, scale=0.3)
    else:
        heads, x, _, _ = _reference(name)
        lik = pv.likelihoods.get(name)
    mask = np.ones(x.shape, bool)
    mask[0, 1] = mask[2, 0] = mask[2, 4] = False
    for backend in ("pyro", "numpyro"):
        bk = pv.backends.get(backend)
        cells = bk.to_numpy(lik.base(bk, tuple(bk.asarray(h) for h in heads))
                            .log_prob(bk.asarray(x)))
        d = lik.distribution(bk, tuple(bk.asarray(h) for h in heads), mask=bk.asarray_bool(mask))
        np.testing.assert_allclose(bk.to_numpy(d.log_prob(bk.asarray(x))),
                                   np.where(mask, cells, 0).sum(-1), rtol=1e-6, atol=1e-6)

        def total(value, *h):
            return lik.distribution(bk, h, mask=bk.asarray_bool(mask)).log_prob(value).sum()
        grads = _grad(bk, total, x, *heads)
        for g in grads:
            assert np.all(g[~mask] == 0.0), f"{backend}: a masked cell has a gradient"
            assert np.any(g[mask] != 0.0), f"{backend}: observed cells lost their gradient"


def test_check_fills_missing_cells_with_a_value_in_the_support():
    x = np.array([[0.0, np.nan], [np.nan, 1.0]])       # 0 and 1 lie in every support
    mask = ~np.isnan(x)
    for name in NAMES:
        lik = pv.likelihoods.get(name)
        out = lik.check(x, mask)
        assert np.all(out[~mask] == np.float32(lik.fill)), name
        assert lik.check(np.where(mask, x, lik.fill)).tolist() == out.tolist(), name
    with pytest.raises(ValueError, match="missing='mask'"):
        pv.likelihoods.get("gaussian").check(x)
