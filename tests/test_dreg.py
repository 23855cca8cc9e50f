"""DReG (objective="dreg"): the doubly reparameterized IWAE gradient on both backends.

(a) the model's (decoder's) gradient is IWAE's for the same draws; (b) the guide's gradient is
DReG's (a hand-written DReG from the same draws) and has IWAE's expectation with a smaller
spread; (c) it trains the built-in VAE (every prior) and a user's pair; (d) a latent that is not
reparameterized is refused with an error that says so.
"""
import math
import warnings

import numpy as np
import pytest

import probvae as pv
from probvae.inference import objectives

from user_pairs import hierarchy

X_TOY = np.array([0.5, -1.0, 2.0, 0.3, 1.2], np.float32)
K = 8
INIT = {"w": 0.7, "a": 0.3, "b": 0.1, "s": -0.5}
ENCODER = ("a", "b", "s")


# ------------------------------------------------------------------ a toy linear-Gaussian pair
def numpyro_toy():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model(x):
        w = numpyro.param("w", INIT["w"])
        with numpyro.plate("data", x.shape[0]):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0))
            numpyro.sample("x", dist.Normal(w * z, 1.0), obs=x)

    def guide(x):
        a, b, s = (numpyro.param(k, INIT[k]) for k in ENCODER)
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("z", dist.Normal(a * x + b, jnp.exp(s)))
    return model, guide


def pyro_toy():
    import pyro
    import pyro.distributions as dist
    import torch

    def model(x):
        w = pyro.param("w", torch.tensor(INIT["w"]))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(w * z, 1.0), obs=x)

    def guide(x):
        a, b, s = (pyro.param(k, torch.tensor(INIT[k])) for k in ENCODER)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(a * x + b, torch.exp(s)))
    return model, guide


def _reference_numpyro(params, z):
    """A hand-written DReG (Tucker et al. 2019, stopped q parameters) for the toy, from its
    draws ``z`` (K, N); returns the gradient of the loss (the negative surrogate)."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.stats import norm

    x = jnp.asarray(X_TOY)
    eps = (z - (params["a"] * x + params["b"])) / jnp.exp(params["s"])

    def surrogate(p):
        loc, scale = p["a"] * x + p["b"], jnp.exp(p["s"])
        zz = loc + scale * eps
        log_p = norm.logpdf(zz) + norm.logpdf(x, p["w"] * zz, 1.0)
        log_q = norm.logpdf(zz, jax.lax.stop_gradient(loc), jax.lax.stop_gradient(scale))
        log_w = log_p - log_q
        w = jax.lax.stop_gradient(jax.nn.softmax(log_w, axis=0))
        return jnp.sum(w ** 2 * log_w), jnp.sum(w * log_p)

    enc = jax.grad(lambda p: -surrogate(p)[0])(params)
    dec = jax.grad(lambda p: -surrogate(p)[1])(params)
    return {k: (dec if k == "w" else enc)[k] for k in params}


def test_numpyro_toy_is_dreg_from_the_same_draws_and_iwae_for_the_model():
    import jax
    from jax import random
    from numpyro.handlers import seed, substitute, trace
    from numpyro.infer import RenyiELBO

    model, guide = numpyro_toy()
    params = {k: np.float32(v) for k, v in INIT.items()}
    x = jax.numpy.asarray(X_TOY)
    bk = pv.backends.get("numpyro")
    dreg, iwae = bk.objective("dreg", num_particles=K), RenyiELBO(alpha=0.0, num_particles=K)
    key = random.PRNGKey(3)
    loss_d, grad_d = jax.jit(jax.value_and_grad(lambda p: dreg.loss(key, p, model, guide, x)))(
        params)
    loss_i, grad_i = jax.jit(jax.value_and_grad(lambda p: iwae.loss(key, p, model, guide, x)))(
        params)
    # the draws the objective made: its keys, one particle at a time
    _, rng = random.split(key)
    z = np.stack([trace(substitute(seed(guide, random.split(k)[1]), data=params))
                  .get_trace(x)["z"]["value"] for k in random.split(rng, K)])
    ref = _reference_numpyro(params, jax.numpy.asarray(z))
    assert float(loss_d) == pytest.approx(float(loss_i), rel=1e-5)     # the IWAE bound
    for k in INIT:
        assert float(grad_d[k]) == pytest.approx(float(ref[k]), rel=1e-4, abs=1e-5), k
    assert float(grad_d["w"]) == pytest.approx(float(grad_i["w"]), rel=1e-5, abs=1e-6)
    assert any(abs(float(grad_d[k]) - float(grad_i[k])) > 1e-4 for k in ENCODER)


def test_pyro_toy_is_dreg_from_the_same_draws_and_iwae_for_the_model():
    import pyro
    import torch
    from pyro import poutine

    model, guide = pyro_toy()
    x = torch.as_tensor(X_TOY)
    bk = pv.backends.get("pyro")
    dreg, iwae = bk.objective("dreg", num_particles=K), bk.objective("renyi", num_particles=K)

    def grads(elbo):
        pyro.clear_param_store()
        pyro.set_rng_seed(3)
        loss = elbo.loss_and_grads(model, guide, x)
        store = pyro.get_param_store()
        return loss, {k: float(store[k].unconstrained().grad) for k in INIT}

    loss_d, grad_d = grads(dreg)
    loss_i, grad_i = grads(iwae)
    pyro.clear_param_store()
    pyro.set_rng_seed(3)
    z = poutine.trace(dreg._vectorized_num_particles(guide)).get_trace(x).nodes["z"]["value"]
    eps = (z.detach() - (INIT["a"] * x + INIT["b"])) / math.exp(INIT["s"])
    p = {k: torch.tensor(v, requires_grad=True) for k, v in INIT.items()}
    loc, scale = p["a"] * x + p["b"], torch.exp(p["s"])
    zz = loc + scale * eps
    normal = torch.distributions.Normal
    log_p = normal(0.0, 1.0).log_prob(zz) + normal(p["w"] * zz, 1.0).log_prob(x)
    log_w = log_p - normal(loc.detach(), scale.detach()).log_prob(zz)
    w = torch.softmax(log_w.detach(), 0)
    enc = torch.autograd.grad(-(w ** 2 * log_w).sum(), [p[k] for k in ENCODER], retain_graph=True)
    (dec,) = torch.autograd.grad(-(w * log_p).sum(), [p["w"]])
    ref = dict(zip(ENCODER, (float(g) for g in enc)), w=float(dec))
    assert loss_d == pytest.approx(loss_i, rel=1e-5)
    for k in INIT:
        assert grad_d[k] == pytest.approx(ref[k], rel=1e-4, abs=1e-5), k
    assert grad_d["w"] == pytest.approx(grad_i["w"], rel=1e-5, abs=1e-6)
    assert any(abs(grad_d[k] - grad_i[k]) > 1e-4 for k in ENCODER)


def _encoder_grads_numpyro(name, seeds, k):
    import jax
    from jax import random
    from numpyro.infer import RenyiELBO

    model, guide = numpyro_toy()
    params = {n: np.float32(v) for n, v in INIT.items()}
    x = jax.numpy.asarray(X_TOY)
    elbo = (pv.backends.get("numpyro").objective("dreg", num_particles=k) if name == "dreg"
            else RenyiELBO(alpha=0.0, num_particles=k))
    grad = jax.grad(lambda p, key: elbo.loss(key, p, model, guide, x))
    out = jax.jit(jax.vmap(grad, (None, 0)))(params, random.split(random.PRNGKey(0), seeds))
    return np.stack([np.asarray(out[n]) for n in ENCODER], 1)


def _encoder_grads_pyro(name, seeds, k):
    import pyro
    import torch

    model, guide = pyro_toy()
    x = torch.as_tensor(X_TOY)
    elbo = pv.backends.get("pyro").objective("dreg" if name == "dreg" else "renyi",
                                             num_particles=k)
    out = []
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    for _ in range(seeds):
        elbo.loss_and_grads(model, guide, x)
        store = pyro.get_param_store()
        out.append([float(store[n].unconstrained().grad) for n in ENCODER])
        for n in INIT:
            store[n].unconstrained().grad = None
    return np.asarray(out)


@pytest.mark.parametrize("backend_name", ["numpyro", "pyro"])
def test_the_encoder_gradient_has_iwaes_mean_and_a_smaller_spread(backend_name):
    draw = _encoder_grads_numpyro if backend_name == "numpyro" else _encoder_grads_pyro
    seeds = 400
    dreg, iwae = draw("dreg", seeds, 16), draw("iwae", seeds, 16)
    se = np.sqrt((dreg.var(0) + iwae.var(0)) / seeds)
    assert np.all(np.abs(dreg.mean(0) - iwae.mean(0)) < 4 * se + 1e-4), (dreg.mean(0),
                                                                         iwae.mean(0), se)
    assert np.all(dreg.std(0) < iwae.std(0)), (dreg.std(0), iwae.std(0))


# ------------------------------------------------------------------ built-in models
def _vae_grads(backend, prior, name, x, seed=0):
    """(loss, {param name: gradient}) of one objective on a fresh tiny VAE, from seed's draws."""
    vae = pv.models.VAE(input_dim=64, latent_dim=3, hidden=(16,), prior=prior,
                        backend=backend).build(0)
    bk = vae.bk
    elbo, _ = objectives.build(name, bk, num_particles=K)
    batch = {"x": bk.asarray(x)}
    params = pv.backends.init_params(bk, vae, batch, seed=0)
    if backend == "numpyro":
        import jax
        loss, grads = jax.jit(jax.value_and_grad(lambda p: elbo.loss(
            jax.random.PRNGKey(seed), p, vae.model, vae.guide, **batch)))(params)
        flat = {f"{site}/{jax.tree_util.keystr(path)}": np.asarray(g)
                for site, tree in grads.items()
                for path, g in jax.tree_util.tree_flatten_with_path(tree)[0]}
        return float(loss), flat
    import pyro
    from probvae.backends.pyro_backend import param_scope
    with param_scope(params):
        pyro.set_rng_seed(seed)
        loss = elbo.loss_and_grads(vae.model, vae.guide, **batch)
        flat = {k: v.grad.numpy().copy() for k, v in pyro.get_param_store().named_parameters()
                if v.grad is not None}
    return float(loss), flat


@pytest.mark.parametrize("prior", ["normal", pytest.param("vamp", marks=pytest.mark.slow)])
def test_vae_decoder_gradient_is_iwaes_and_the_encoders_is_not(backend, prior, small):
    x = small.train.x[:16]
    loss_d, dreg = _vae_grads(backend, prior, "dreg", x)
    loss_i, iwae = _vae_grads(backend, prior, "iwae", x)
    assert loss_d == pytest.approx(loss_i, rel=1e-5)
    assert set(dreg) == set(iwae)
    decoder = [k for k in dreg if k.startswith("decoder")]
    encoder = [k for k in dreg if k.startswith("encoder")]
    assert decoder and encoder
    for k in decoder:
        np.testing.assert_allclose(dreg[k], iwae[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert max(np.abs(dreg[k] - iwae[k]).max() for k in encoder) > 1e-4


@pytest.mark.parametrize("prior", ["normal", "vamp"] + [        # the rest: -m slow
    pytest.param(p, marks=pytest.mark.slow) for p in ("laplace", "student_t", "mixture", "flow")])
def test_fit_with_dreg_trains_a_vae(backend, prior, small, make_vae, quick_fit):
    vae = make_vae(backend, prior=prior)
    res = quick_fit(vae, small.train, objective="dreg", num_particles=4, epochs=4, lr=1e-2,
                    seed=0, validation=small.valid)
    h = res.history
    assert res.objective == "dreg" and res.options["num_particles"] == 4
    assert np.all(np.isfinite(h["train_loss"])) and h["train_loss"][-1] < h["train_loss"][0]
    assert np.all(np.isfinite(h["valid_loss"]))
    scores = pv.evaluate(res, small.test, num_samples=8)
    assert np.isfinite(scores["log_likelihood"])


def test_fit_with_dreg_trains_a_users_pair(backend, digits):
    train = digits.train.x[:64]
    res = pv.fit(hierarchy(backend), train, backend=backend, objective="dreg", num_particles=4, epochs=4,
                 batch_size=32, lr=1e-2, seed=0, validation=None, progress=False)
    h = res.history["train_loss"]
    assert np.all(np.isfinite(h)) and h[-1] < h[0]
    assert res.model.contract.latent_names == ("top", "mid")


# ------------------------------------------------------------------ discrete latents
def _discrete_pair(backend):
    bk = pv.backends.get(backend)
    if backend == "pyro":
        import torch
        net = torch.nn.Linear(64, 3)

        def model(x):
            with bk.plate("rows", x.shape[0]):
                c = bk.sample("c", bk.dist.Categorical(logits=torch.zeros(3)))
                bk.sample("x", bk.dist.Normal(c.unsqueeze(-1).float(), 1.0).expand(
                    (x.shape[0], 64)).to_event(1), obs=x)

        def guide(x):
            bk.module("net", net)
            with bk.plate("rows", x.shape[0]):
                bk.sample("c", bk.dist.Categorical(logits=net(x)))
        return model, guide
    import jax.numpy as jnp

    def model(x):
        with bk.plate("rows", x.shape[0]):
            c = bk.sample("c", bk.dist.Categorical(logits=jnp.zeros(3)))
            bk.sample("x", bk.dist.Normal(c[..., None].astype(jnp.float32), 1.0).expand(
                (x.shape[0], 64)).to_event(1), obs=x)

    def guide(x):
        w = bk.param("w", np.zeros((64, 3), np.float32))
        with bk.plate("rows", x.shape[0]):
            bk.sample("c", bk.dist.Categorical(logits=x @ w))
    return model, guide


def test_a_discrete_latent_is_refused_with_the_reason(backend, digits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="needs reparameterized latents.*'c'.*Categorical"):
            pv.fit(_discrete_pair(backend), digits.train.x[:32], backend=backend,
                   objective="dreg", epochs=1,
                   batch_size=16, validation=None, progress=False)


def test_ssvae_is_refused_with_the_reason(backend, small):
    ssvae = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=3, hidden=(16,),
                            backend=backend)
    with pytest.raises(ValueError, match="'dreg' needs reparameterized latents.*enum"):
        pv.fit(ssvae, small.train, objective="dreg", epochs=1, progress=False)


def test_dreg_is_registered_with_its_options():
    obj = objectives.get("dreg")
    assert obj.kind == "dreg" and obj.defaults == {"num_particles": 8}
    assert obj.reparameterized and not obj.enumerates
    assert not objectives.get("iwae").reparameterized
