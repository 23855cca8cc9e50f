"""Posterior families of the VAE (diagonal, full_rank, iaf) on both backends."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import probvae as pv
from probvae.networks import Head, Input, MADESpec, MLPSpec, jax_nets, torch_nets
from probvae.posteriors import IAF, FullRank

TINY_IAF = IAF(steps=2, hidden=(8,), context=4)
FAMILIES = {"full_rank": "full_rank", "iaf": TINY_IAF}


def _vae(backend, posterior, **kw):
    kw.setdefault("latent_dim", 3)
    kw.setdefault("hidden", (16,))
    return pv.models.VAE(input_dim=64, backend=backend, posterior=posterior, **kw)


def _fit(backend, posterior, data, epochs=2, **kw):
    fit_kw = {k: kw.pop(k) for k in ("objective", "num_particles") if k in kw}
    return pv.fit(_vae(backend, posterior, **kw), data.train, epochs=epochs, lr=3e-3,
                  progress=False, seed=0, **fit_kw)


def _copy_linear(tnet_layers, jnet_layers):
    return [eqx.tree_at(lambda l: (l.weight, l.bias), e,
                        (jnp.asarray(m.weight.detach().numpy()),
                         jnp.asarray(m.bias.detach().numpy())))
            for m, e in zip(tnet_layers, jnet_layers)]


# ---- the networks: equal weights, equal outputs ---------------------------------------------

@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_made_same_outputs_on_both_backends_and_autoregressive(order):
    spec = MADESpec(4, 3, (10, 9), order, "tanh")
    tnet = torch_nets.build(spec, 0)
    jnet = jax_nets.build(spec, 1)
    jnet = eqx.tree_at(lambda n: n.layers, jnet, _copy_linear(tnet.layers, jnet.layers))
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 5, 4)).astype(np.float32)
    c = rng.normal(size=(5, 3)).astype(np.float32)         # context broadcast over particles
    with torch.no_grad():
        t_out = [o.numpy() for o in tnet(torch.as_tensor(z), torch.as_tensor(c))]
    j_out = [np.asarray(o) for o in jnet(jnp.asarray(z), jnp.asarray(c))]
    for a, b in zip(t_out, j_out):
        assert a.shape == b.shape == (2, 5, 4)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # output i depends only on the dims before it in the order (and on the context)
    jac = np.asarray(jax.jacobian(lambda v: jnp.concatenate(jnet(v, c[0])))(z[0, 0]))
    deg = spec.degrees
    for i in range(4):
        for j in range(4):
            if deg[j] >= deg[i]:
                assert jac[i, j] == 0 and jac[4 + i, j] == 0


def test_tril_head_same_on_both_backends_and_a_cholesky_factor():
    spec = MLPSpec((Input("x", 5),), (7,), (Head("loc", 3), Head("scale_tril", 3, "tril")))
    tnet = torch_nets.build(spec, 0)
    jnet = jax_nets.build(spec, 1)
    jnet = eqx.tree_at(lambda n: n.layers, jnet,
                       _copy_linear([m for m in tnet.net if isinstance(m, torch.nn.Linear)],
                                    jnet.layers))
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    with torch.no_grad():
        t_loc, t_tril = (o.numpy() for o in tnet(torch.as_tensor(x)))
    j_loc, j_tril = (np.asarray(o) for o in jnet(jnp.asarray(x)))
    assert t_tril.shape == j_tril.shape == (4, 3, 3)
    np.testing.assert_allclose(t_tril, j_tril, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t_loc, j_loc, rtol=1e-5, atol=1e-6)
    assert np.all(np.triu(t_tril, 1) == 0)
    assert np.all(np.diagonal(t_tril, axis1=-2, axis2=-1) > 0)
    assert spec.out_size == 3 + 6


def test_tril_fill_is_row_by_row_with_a_positive_diagonal_on_both_backends():
    """The fill of a ``tril`` head, with extra leading dims: entry k of row-by-row order at
    (rows[k], cols[k]), softplus + floor on the diagonal, TRIL_OFF_DIAGONAL times the rest,
    zeros above; and its gradient reaches every entry (value and gradient as NumPy's)."""
    from probvae.networks import POSITIVE_FLOOR, TRIL_OFF_DIAGONAL, tril_positions
    size = 4
    rows, cols, diag = tril_positions(size)
    e = np.random.default_rng(0).normal(size=(2, 3, len(rows))).astype(np.float32)
    want = np.zeros((2, 3, size, size), np.float32)
    want[..., rows, cols] = np.where(diag, np.log1p(np.exp(e)) + POSITIVE_FLOOR,
                                     TRIL_OFF_DIAGONAL * e)
    weight = np.random.default_rng(1).normal(size=want.shape).astype(np.float32)
    grad_want = np.where(diag, 1 / (1 + np.exp(-e)), TRIL_OFF_DIAGONAL) * weight[..., rows, cols]
    got = np.asarray(jax_nets._tril(jnp.asarray(e), size))
    grad = np.asarray(jax.grad(lambda v: jnp.sum(jax_nets._tril(v, size) * weight))(
        jnp.asarray(e)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, grad_want, rtol=1e-5, atol=1e-6)
    t = torch.as_tensor(e).requires_grad_()
    out = torch_nets._tril(t, size)
    (out * torch.as_tensor(weight)).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), grad_want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_a_fresh_full_rank_factor_starts_near_diagonal(backend):
    """The off-diagonal outputs enter times TRIL_OFF_DIAGONAL: unscaled, a new encoder's
    random correlations gave latent dim i a variance of about i (and MNIST training never
    recovered from it), so a fresh factor's rows must not grow with the latent size."""
    model = _vae(backend, "full_rank", latent_dim=40).build(0)
    fn, _ = _guide_log_q(model, np.zeros((5, 40), np.float32))
    while not hasattr(fn, "scale_tril"):
        fn = fn.base_dist
    tril = np.asarray(model.bk.to_numpy(fn.scale_tril), np.float64)
    diag = np.diagonal(tril, axis1=-2, axis2=-1) ** 2
    off = (np.tril(tril, -1) ** 2).sum(-1)
    assert np.all(off < 0.1 * diag), off.max(-1)


def _guide_log_q(model, z):
    """log q(z|x) of the guide's site for given z, from a fresh trace of the built model."""
    bk = model.bk
    x = bk.asarray(np.full((5, 64), 0.5, np.float32))
    tr = bk.get_trace(bk.seed(model.guide, 0), x=x)
    fn = tr["z"]["fn"]
    return fn, np.asarray(bk.to_numpy(fn.log_prob(bk.asarray(z))))


def test_iaf_log_q_same_from_same_weights_on_both_backends():
    """The torch VAE's encoder and MADE weights copied into the JAX VAE: the same log q."""
    tv = _vae("pyro", TINY_IAF, latent_dim=3).build(0)
    jv = _vae("numpyro", TINY_IAF, latent_dim=3).build(1)
    enc = tv.nets["encoder"]
    jv.nets["encoder"] = eqx.tree_at(
        lambda n: n.layers, jv.nets["encoder"],
        _copy_linear([m for m in enc.net if isinstance(m, torch.nn.Linear)],
                     jv.nets["encoder"].layers))
    jv.nets["posterior"]["steps"] = [
        eqx.tree_at(lambda n: n.layers, j, _copy_linear(t.layers, j.layers))
        for t, j in zip(tv.nets["posterior"]["steps"], jv.nets["posterior"]["steps"])]
    z = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    _, lq_torch = _guide_log_q(tv, z)
    _, lq_jax = _guide_log_q(jv, z)
    assert lq_torch.shape == lq_jax.shape == (5,)
    np.testing.assert_allclose(lq_torch, lq_jax, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_iaf_log_q_is_base_minus_log_det_numerical_jacobian(backend):
    """Sampled z = f(z0): log q(z) = log N(z0; loc, scale) - log|det df/dz0|, with the
    Jacobian of the flow taken numerically."""
    model = _vae(backend, TINY_IAF, latent_dim=2).build(0)
    bk = model.bk
    x = bk.asarray(np.full((1, 64), 0.5, np.float32))
    tr = bk.get_trace(bk.seed(model.guide, 3), x=x)
    fn = tr["z"]["fn"]
    while not hasattr(fn, "transforms"):
        fn = fn.base_dist
    base = fn.base_dist
    flow = fn.transforms

    def forward(z0):
        v = bk.asarray(z0[None].astype(np.float32))
        for t in flow:
            v = t(v)
        return np.asarray(bk.to_numpy(v))[0].astype(np.float64)

    z0 = np.array([0.3, -0.7])
    eps = 1e-3
    jac = np.stack([(forward(z0 + eps * e) - forward(z0 - eps * e)) / (2 * eps)
                    for e in np.eye(2)], axis=1)
    z = forward(z0)
    want = (float(np.asarray(bk.to_numpy(base.log_prob(bk.asarray(z0[None].astype(np.float32)))))[0])
            - np.log(abs(np.linalg.det(jac))))
    got = float(np.asarray(bk.to_numpy(tr["z"]["fn"].log_prob(
        bk.asarray(z[None].astype(np.float32))))).reshape(-1)[0])
    assert got == pytest.approx(want, abs=2e-3)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_full_rank_log_q_is_the_multivariate_normal_by_hand(backend):
    model = _vae(backend, "full_rank").build(0)
    z = np.random.default_rng(2).normal(size=(5, 3))
    fn, lq = _guide_log_q(model, z.astype(np.float32))
    while not hasattr(fn, "scale_tril"):
        fn = fn.base_dist
    loc = np.asarray(model.bk.to_numpy(fn.loc), np.float64)
    tril = np.asarray(model.bk.to_numpy(fn.scale_tril), np.float64)
    assert np.all(np.triu(tril, 1) == 0)
    for i in range(5):
        cov = tril[i] @ tril[i].T
        d = z[i] - loc[i]
        want = -0.5 * (d @ np.linalg.solve(cov, d) + np.log(np.linalg.det(cov))
                       + 3 * np.log(2 * np.pi))
        assert lq[i] == pytest.approx(want, abs=1e-4)


def test_full_rank_numpyro_scores_its_draws_without_a_solve_same_value_and_gradient():
    """NumPyro's full-rank q keeps each draw's noise (the guide's trace carries it) and scores
    the draw from it: the same log q and the same gradient in loc and the factor as
    MultivariateNormal's solve."""
    from numpyro.distributions import MultivariateNormal
    model = _vae("numpyro", "full_rank").build(0)
    bk = model.bk
    x = bk.asarray(np.full((5, 64), 0.5, np.float32))
    site = bk.get_trace(bk.seed(model.guide, 0), x=x)["z"]
    assert site["intermediates"] and site["intermediates"][0].shape == (5, 3)
    assert type(site["fn"]).__name__ == "CholeskyNormal"
    rng = np.random.default_rng(0)
    loc = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    tril = jnp.asarray(np.tril(rng.normal(size=(5, 3, 3)), -1) + 3 * np.eye(3), jnp.float32)
    eps = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)

    def by_noise(loc, tril):
        q = type(site["fn"])(loc, tril)
        z = loc + jnp.einsum("bij,bj->bi", tril, eps)
        return q.log_prob(z, [eps]).sum()

    def by_solve(loc, tril):
        z = loc + jnp.einsum("bij,bj->bi", tril, eps)
        return MultivariateNormal(loc, scale_tril=tril).log_prob(z).sum()

    (v1, g1), (v2, g2) = (jax.value_and_grad(f, argnums=(0, 1))(loc, tril)
                          for f in (by_noise, by_solve))
    assert float(v1) == pytest.approx(float(v2), rel=1e-5)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(np.tril(a), np.tril(b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_full_rank_kl_to_the_prior_is_closed_form(backend):
    """mean_field's KL(q || p) for the full-rank guide against the model's normal prior site:
    the registered closed form (no Monte Carlo fallback), equal to the Gaussian KL by hand."""
    model = _vae(backend, "full_rank").build(0)
    bk = model.bk
    x = bk.asarray(np.full((5, 64), 0.5, np.float32))
    guide = bk.get_trace(bk.seed(model.guide, 0), x=x)
    prior = bk.get_trace(bk.replay(bk.seed(model.model, 0), guide), x=x)
    q, p = guide["z"]["fn"], prior["z"]["fn"]
    if backend == "pyro":
        from torch.distributions import kl_divergence
    else:
        from numpyro.distributions import kl_divergence
    kl = np.asarray(bk.to_numpy(kl_divergence(q, p)), np.float64)
    while not hasattr(q, "scale_tril"):
        q = q.base_dist
    loc = np.asarray(bk.to_numpy(q.loc), np.float64)
    tril = np.asarray(bk.to_numpy(q.scale_tril), np.float64)
    assert kl.shape == (5,)
    for i in range(5):
        cov = tril[i] @ tril[i].T
        want = 0.5 * (np.trace(cov) + loc[i] @ loc[i] - 3 - np.log(np.linalg.det(cov)))
        assert kl[i] == pytest.approx(want, rel=1e-4, abs=1e-5)


# ---- training and what comes after ----------------------------------------------------------

@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
@pytest.mark.parametrize("family", ["full_rank", "iaf"])
def test_each_family_trains_and_everything_after_works(backend, family, small, tmp_path):
    res = _fit(backend, FAMILIES[family], small, epochs=6)
    loss = res.history["train_loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]
    scores = pv.evaluate(res, small.test, num_samples=8)
    assert np.isfinite(scores["elbo"]) and np.isfinite(scores["log_likelihood"])
    assert scores["log_likelihood"] >= scores["elbo"] - 1e-6
    codes = pv.encode(res, small.test)
    assert codes.shape == (len(small.test.x), 3) and np.all(np.isfinite(codes))
    idata = pv.diagnostics.latent_posterior(res, small.test.x[:4], num_samples=16)
    assert idata.posterior["z"].shape[-1] == 3
    path = pv.save(res, tmp_path / "run")
    back = pv.load(path)
    assert type(back.model.posterior) is type(res.model.posterior)
    assert back.model.config() == res.model.config()
    again = pv.evaluate(back, small.test, num_samples=8)
    assert again["elbo"] == pytest.approx(scores["elbo"], rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_full_rank_encode_is_loc(backend, small):
    res = _fit(backend, "full_rank", small, epochs=1)
    codes = pv.encode(res, small.test)
    model, bk = res.model, res.model.bk
    loc = bk.with_params(lambda v: bk.module("encoder", model.nets["encoder"])(v)[0],
                         res.param_state)(bk.asarray(small.test.x))
    np.testing.assert_allclose(codes, np.asarray(bk.to_numpy(loc)), rtol=1e-5, atol=1e-6)
    again = pv.encode(res, small.test, seed=5)
    np.testing.assert_allclose(codes, again, rtol=1e-6)     # the mean, not a draw


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
@pytest.mark.parametrize("objective", ["iwae", "dreg"])
@pytest.mark.parametrize("family", ["full_rank", "iaf"])
def test_families_with_importance_weighted_objectives(backend, objective, family, small):
    res = _fit(backend, FAMILIES[family], small, epochs=2, objective=objective,
               num_particles=3)
    assert np.all(np.isfinite(res.history["train_loss"]))


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_full_rank_with_vamp_prior_and_mean_field(backend, small):
    res = _fit(backend, "full_rank", small, epochs=2, prior=pv.priors.VampPrior(components=5))
    assert np.all(np.isfinite(res.history["train_loss"]))
    assert np.isfinite(pv.evaluate(res, small.test, num_samples=4)["elbo"])
    res = _fit(backend, "full_rank", small, epochs=2, objective="mean_field")
    assert np.all(np.isfinite(res.history["train_loss"]))


def test_config_round_trip_and_old_configs_load_as_diagonal():
    vae = _vae("numpyro", IAF(steps=3, hidden=(8, 8), context=2))
    cfg = vae.config()
    assert cfg["posterior"] == {"name": "iaf", "steps": 3, "hidden": (8, 8), "context": 2,
                                "activation": "relu"}
    import json
    back = pv.models.VAE.from_config(json.loads(json.dumps(cfg)))
    assert back.posterior == vae.posterior
    plain = _vae("numpyro", "diagonal").config()
    assert "posterior" not in plain               # a diagonal VAE's config is as before
    assert isinstance(pv.models.VAE.from_config(plain).posterior, pv.posteriors.Diagonal)
    assert pv.models.VAE.from_config({**cfg, "posterior": {"name": "full_rank"}}).posterior \
        == FullRank()


def test_bad_settings_give_clear_errors(small):
    with pytest.raises(ValueError, match="known posteriors: diagonal, full_rank, iaf"):
        _vae("numpyro", "planar")
    with pytest.raises(ValueError, match="steps"):
        IAF(steps=0)
    with pytest.raises(ValueError, match="hidden"):
        IAF(hidden=64)
    with pytest.raises(ValueError, match="activation"):
        IAF(activation="swish")
    with pytest.raises(TypeError, match="takes settings"):
        pv.posteriors.get("iaf", layers=2)
    with pytest.raises(ValueError, match="vamp prior"):
        _vae("numpyro", "iaf", prior="vamp")
    with pytest.raises(ValueError, match="objective='elbo'"):
        _fit("numpyro", TINY_IAF, small, epochs=1, objective="mean_field")
    with pytest.raises(TypeError, match="posterior name"):
        _vae("numpyro", 3)


class _TorchFullRank(torch.nn.Module):
    """A user's encoder for full_rank: x (batch, 64) -> loc (batch, 3), scale_tril (batch, 3, 3)."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(64, 3 + 6)

    def forward(self, x):
        h = self.body(x)
        rows, cols = torch.tril_indices(3, 3)
        tril = h.new_zeros(h.shape[:-1] + (3, 3))
        tril[..., rows, cols] = h[..., 3:]
        diag = torch.nn.functional.softplus(torch.diagonal(tril, dim1=-2, dim2=-1)) + 1e-4
        return h[..., :3], torch.tril(tril, -1) + torch.diag_embed(diag)


class _EqxIAF(eqx.Module):
    """A user's encoder for iaf, one example: x (64,) -> loc (3,), scale (3,), context (4,)."""

    body: eqx.nn.Linear

    def __init__(self):
        self.body = eqx.nn.Linear(64, 10, key=jax.random.PRNGKey(0))

    def __call__(self, x):
        h = self.body(x)
        return {"loc": h[:3], "scale": jax.nn.softplus(h[3:6]) + 1e-4, "context": h[6:]}


@pytest.mark.parametrize("backend,encoder,family", [("pyro", _TorchFullRank, "full_rank"),
                                                    ("numpyro", _EqxIAF, "iaf")])
def test_a_users_encoder_for_each_family(backend, encoder, family, small):
    res = pv.fit(_vae(backend, FAMILIES[family], encoder=encoder()), small.train, epochs=1,
                 progress=False, seed=0)
    assert np.all(np.isfinite(res.history["train_loss"]))


def test_a_users_encoder_with_the_wrong_factor_is_named():
    class Upper(_TorchFullRank):
        def forward(self, x):
            loc, tril = super().forward(x)
            return loc, tril.transpose(-1, -2)
    with pytest.raises(ValueError, match="lower-triangular"):
        _vae("pyro", "full_rank", encoder=Upper())
    with pytest.raises(ValueError, match=r"scale_tril \(batch, 3, 3\)"):
        _vae("pyro", "full_rank", encoder=torch.nn.Linear(64, 6))


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_full_rank_per_dim_kl_and_common_noise(backend, small):
    res = _fit(backend, "full_rank", small, epochs=1)
    scores = pv.evaluate(res, small.test, num_samples=8)
    kl_dim = np.asarray(scores["kl_per_dim"])
    assert kl_dim.shape[-1] == 3 and np.all(np.isfinite(kl_dim))
    from probvae.inference.scoring import log_weights
    w = log_weights(res, small.test.x[:4], num_samples=6, common_noise=True)
    w = w["log_w"] if isinstance(w, dict) else w
    assert np.all(np.isfinite(np.asarray(w)))


@pytest.mark.slow
@pytest.mark.parametrize("prior", ["laplace", "student_t", pv.priors.MixtureOfGaussians(3),
                                   pv.priors.Flow(layers=1, hidden=8)])
@pytest.mark.parametrize("family", ["full_rank", "iaf"])
def test_families_with_every_other_prior(prior, family, small):
    # one backend per case, alternating, to keep the suite short
    backend = ("pyro", "numpyro")[(family == "iaf") ^ isinstance(prior, str)]
    res = _fit(backend, FAMILIES[family], small, epochs=1, prior=prior)
    assert np.all(np.isfinite(res.history["train_loss"]))
    assert np.isfinite(pv.evaluate(res, small.test, num_samples=4)["elbo"])
