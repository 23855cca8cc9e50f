"""Tests for :class:`probvae.distributions.ContinuousBernoulli` (NumPyro).

The float64 ``torch.distributions.ContinuousBernoulli`` is the reference; our
implementation is evaluated in float32.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer.util import log_density

from probvae.distributions import ContinuousBernoulli

# logits grid in [-20, 20] including 0 and +-1e-4, plus points straddling the
# Taylor-window edges of the implementation (0.25, 0.3, 1.0)
LOGITS = np.array(
    [-20.0, -10.0, -5.0, -2.0, -1.01, -0.99, -0.5, -0.26, -0.24, -0.1, -1e-2,
     -1e-4, 0.0, 1e-4, 1e-2, 0.1, 0.24, 0.26, 0.5, 0.99, 1.01, 2.0, 5.0, 10.0, 20.0],
    dtype=np.float32,
)
# x grid in [0, 1] including the endpoints
XS = np.concatenate([[0.0, 1e-4, 1e-2], np.linspace(0.05, 0.95, 19), [0.99, 1 - 1e-4, 1.0]])
XS = XS.astype(np.float32)

# float32 vs float64-reference tolerances
RTOL = 1e-5
ATOL = 2e-5


def _torch_cb(logits):
    return torch.distributions.ContinuousBernoulli(
        logits=torch.as_tensor(np.asarray(logits, dtype=np.float64)), validate_args=False
    )


def _grid():
    lg, xg = np.meshgrid(LOGITS, XS, indexing="ij")
    return lg, xg


def _assert_close(ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------- vs torch


def test_log_prob_matches_torch():
    lg, xg = _grid()
    ours = ContinuousBernoulli(logits=jnp.asarray(lg)).log_prob(jnp.asarray(xg))
    ref = _torch_cb(lg).log_prob(torch.as_tensor(xg, dtype=torch.float64)).numpy()
    _assert_close(ours, ref)


def test_mean_variance_entropy_match_torch():
    d = ContinuousBernoulli(logits=jnp.asarray(LOGITS))
    t = _torch_cb(LOGITS)
    assert d.mean.shape == d.variance.shape == (len(LOGITS),)
    _assert_close(d.mean, t.mean.numpy())
    _assert_close(d.variance, t.variance.numpy())
    _assert_close(d.entropy(), t.entropy().numpy())


def test_cdf_matches_torch():
    lg, xg = _grid()
    ours = ContinuousBernoulli(logits=jnp.asarray(lg)).cdf(jnp.asarray(xg))
    ref = _torch_cb(lg).cdf(torch.as_tensor(xg, dtype=torch.float64)).numpy()
    _assert_close(ours, ref)


def test_icdf_matches_torch():
    lg, ug = _grid()
    ours = ContinuousBernoulli(logits=jnp.asarray(lg)).icdf(jnp.asarray(ug))
    ref = _torch_cb(lg).icdf(torch.as_tensor(ug, dtype=torch.float64)).numpy()
    _assert_close(ours, ref)


def test_icdf_inverts_cdf():
    lg, xg = _grid()
    d = ContinuousBernoulli(logits=jnp.asarray(lg))
    # for large |l| the cdf saturates in float32 (ill-conditioned inverse)
    ok = np.abs(lg) <= 5.0
    np.testing.assert_allclose(np.asarray(d.icdf(d.cdf(jnp.asarray(xg))))[ok], xg[ok], atol=1e-4)
    # endpoints map to endpoints
    np.testing.assert_allclose(d.cdf(jnp.zeros_like(lg)), 0.0, atol=1e-6)
    np.testing.assert_allclose(d.cdf(jnp.ones_like(lg)), 1.0, atol=1e-6)


def test_probs_parametrisation_matches_logits():
    probs = np.array([0.01, 0.2, 0.4999, 0.5, 0.7, 0.99], dtype=np.float32)
    dp = ContinuousBernoulli(probs=jnp.asarray(probs))
    dl = ContinuousBernoulli(logits=jnp.log(probs) - jnp.log1p(-probs))
    x = jnp.linspace(0.0, 1.0, 7)[:, None]
    np.testing.assert_allclose(dp.log_prob(x), dl.log_prob(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dp.mean, dl.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dl.probs, probs, rtol=1e-5)
    t = torch.distributions.ContinuousBernoulli(
        probs=torch.as_tensor(probs, dtype=torch.float64), validate_args=False
    )
    np.testing.assert_allclose(dp.mean, t.mean.numpy(), rtol=1e-5, atol=2e-5)
    # probs at the boundary are clamped, not nan
    edge = ContinuousBernoulli(probs=jnp.array([0.0, 1.0]))
    assert np.all(np.isfinite(edge.log_prob(jnp.array([0.5, 0.5]))))


# -------------------------------------------------------- normalisation


@pytest.mark.parametrize("logit", [-30.0, -5.0, -0.3, 0.0, 1e-4, 0.8, 3.0, 20.0])
def test_integrates_to_one(logit):
    x = np.linspace(0.0, 1.0, 20001)
    d = ContinuousBernoulli(logits=jnp.float32(logit))
    dens = np.exp(np.asarray(d.log_prob(jnp.asarray(x, dtype=jnp.float32)), np.float64))
    integral = np.sum(0.5 * (dens[1:] + dens[:-1]) * np.diff(x))
    assert abs(integral - 1.0) < 1e-4


# ------------------------------------------------------------ gradients

GRAD_LOGITS = [0.0, 1e-6, -1e-6, 30.0, -30.0, 50.0, -50.0]


def test_gradients_finite():
    key = jax.random.PRNGKey(0)
    xs = jnp.array([0.0, 0.3, 1.0])

    def funcs(l):
        d = ContinuousBernoulli(logits=l)
        return {
            "log_prob": d.log_prob(xs).sum(),
            "sample": d.sample(key, (64,)).sum(),
            "mean": d.mean,
            "variance": d.variance,
            "entropy": d.entropy(),
            "cdf": d.cdf(xs).sum(),
            "icdf": d.icdf(jnp.array([0.0, 0.3, 0.999, 1.0])).sum(),
        }

    logits = jnp.array(GRAD_LOGITS, dtype=jnp.float32)
    values, grads = jax.jit(jax.vmap(lambda l: (funcs(l), jax.jacfwd(funcs)(l))))(logits)
    for name in values:
        assert np.all(np.isfinite(values[name])), (name, values[name])
        assert np.all(np.isfinite(grads[name])), (name, dict(zip(GRAD_LOGITS, grads[name])))


def test_log_prob_gradient_matches_torch():
    lg, xg = _grid()
    lp = lambda l: ContinuousBernoulli(logits=l).log_prob(jnp.asarray(xg)).sum()  # noqa: E731
    ours = jax.grad(lp)(jnp.asarray(lg))
    tl = torch.as_tensor(lg, dtype=torch.float64).requires_grad_(True)
    tdist = torch.distributions.ContinuousBernoulli(logits=tl, validate_args=False)
    tdist.log_prob(torch.as_tensor(xg, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(np.asarray(ours), tl.grad.numpy(), rtol=1e-5, atol=1e-5)
    # at logits = 0 the exact gradient is x - 1/2 (d log C / dl = 0 there)
    at0 = np.asarray(ours)[lg == 0.0]
    np.testing.assert_allclose(at0, XS - 0.5, atol=1e-6)


def test_reparameterised_gradient_of_sample_mean():
    key = jax.random.PRNGKey(1)
    logits = jnp.array([-3.0, -0.5, 0.0, 0.5, 3.0])

    def mc_mean(l):
        return ContinuousBernoulli(logits=l).sample(key, (20000,)).mean(0)

    # each component of mc_mean depends only on the same component of logits
    grad_mc = jax.jit(jax.grad(lambda l: mc_mean(l).sum()))(logits)
    grad_exact = jax.grad(lambda l: ContinuousBernoulli(logits=l).mean.sum())(logits)
    np.testing.assert_allclose(grad_mc, grad_exact, atol=3e-3)


# -------------------------------------------------------------- sampling


def test_sample_moments_and_support():
    logits = jnp.array([-50.0, -20.0, -2.0, -1e-4, 0.0, 0.5, 4.0, 20.0, 50.0])
    d = ContinuousBernoulli(logits=logits)
    x = jax.jit(lambda d, k: d.sample(k, (20000,)))(d, jax.random.PRNGKey(42))
    assert x.shape == (20000, 9)
    assert x.dtype == jnp.float32
    assert bool(jnp.all((x >= 0.0) & (x <= 1.0)))
    se = jnp.sqrt(d.variance / x.shape[0])
    assert bool(jnp.all(jnp.abs(x.mean(0) - d.mean) < 5 * se + 1e-6))
    np.testing.assert_allclose(x.var(0), d.variance, rtol=0.05)


def test_shapes_and_expand():
    d = ContinuousBernoulli(logits=jnp.zeros((2, 3)))
    assert d.batch_shape == (2, 3) and d.event_shape == ()
    assert d.sample(jax.random.PRNGKey(0), (4,)).shape == (4, 2, 3)
    assert d.to_event(1).event_shape == (3,)
    assert d.expand((5, 2, 3)).sample(jax.random.PRNGKey(0)).shape == (5, 2, 3)
    assert ContinuousBernoulli(probs=0.3).batch_shape == ()
    assert d.has_rsample
    assert d.support is dist.constraints.unit_interval


def test_requires_exactly_one_parameter():
    with pytest.raises(ValueError):
        ContinuousBernoulli()
    with pytest.raises(ValueError):
        ContinuousBernoulli(probs=0.3, logits=0.1)


# ------------------------------------------------------ numpyro integration


def test_in_numpyro_model():
    x_obs = jnp.array([[0.0, 0.2, 0.9, 1.0], [0.5, 0.5, 0.1, 0.7]])

    def model(x=None):
        loc = numpyro.sample("loc", dist.Normal(0.0, 1.0).expand([4]).to_event(1))
        with numpyro.plate("data", 2):
            numpyro.sample("x", ContinuousBernoulli(logits=loc).to_event(1), obs=x)

    tr = handlers.trace(handlers.seed(model, 0)).get_trace(x_obs)
    site = tr["x"]
    assert site["is_observed"]
    loc = tr["loc"]["value"]
    expected = ContinuousBernoulli(logits=loc).log_prob(x_obs).sum(-1)
    np.testing.assert_allclose(site["fn"].log_prob(x_obs), expected, rtol=1e-6)

    # joint log density and its gradient are finite, also through jit
    def neg_log_joint(loc):
        lp, _ = log_density(model, (x_obs,), {}, {"loc": loc})
        return -lp

    val, grad = jax.jit(jax.value_and_grad(neg_log_joint))(jnp.zeros(4))
    assert np.isfinite(val) and np.all(np.isfinite(grad))

    # unobserved: sampled in [0, 1]
    tr = handlers.trace(handlers.seed(model, 1)).get_trace()
    xs = tr["x"]["value"]
    assert xs.shape == (2, 4) and bool(jnp.all((xs >= 0) & (xs <= 1)))


def test_jit_with_distribution_argument():
    x = jnp.array([0.1, 0.5, 0.9])
    for d in (
        ContinuousBernoulli(logits=jnp.array([-2.0, 0.0, 3.0])),
        ContinuousBernoulli(probs=jnp.array([0.1, 0.5, 0.95])),
    ):
        lp_jit = jax.jit(lambda d, x: d.log_prob(x))(d, x)
        np.testing.assert_allclose(lp_jit, d.log_prob(x), rtol=1e-6)
        mean_jit = jax.jit(lambda d: d.mean)(d)
        np.testing.assert_allclose(mean_jit, d.mean, rtol=1e-6)
        s = jax.jit(lambda d, k: d.sample(k, (3,)))(d, jax.random.PRNGKey(0))
        assert s.shape == (3, 3)
        leaves, treedef = jax.tree_util.tree_flatten(d)
        d2 = jax.tree_util.tree_unflatten(treedef, leaves)
        np.testing.assert_allclose(d2.log_prob(x), d.log_prob(x))


# ------------------------------------------------------------ validation


def test_validate_args():
    with pytest.raises(ValueError):
        ContinuousBernoulli(probs=jnp.array([0.2, 1.5]), validate_args=True)
    with pytest.raises(ValueError):
        ContinuousBernoulli(logits=jnp.array([jnp.nan]), validate_args=True)
    d = ContinuousBernoulli(logits=jnp.array([0.5, 0.5, 0.5]), validate_args=True)
    with pytest.warns(UserWarning, match="Out-of-support"):
        lp = d.log_prob(jnp.array([-0.1, 0.5, 1.1]))
    assert lp[0] == -jnp.inf and lp[2] == -jnp.inf and np.isfinite(lp[1])
    # in-support values (incl. the endpoints) raise no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(np.isfinite(d.log_prob(jnp.array([0.0, 0.5, 1.0]))))
