"""A user's own model as plain Pyro / NumPyro functions, with probvae's priors and likelihoods."""
import numpy as np
import pytest

import probvae as pv
from probvae.priors import PriorContext

LATENT = 2


def pyro_pair():
    """(model, guide) as plain Pyro code with the user's own torch networks."""
    import torch
    from torch import nn

    bk = pv.backends.get("pyro")
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2 * LATENT))
    dec = nn.Sequential(nn.Linear(LATENT, 16), nn.ReLU(), nn.Linear(16, 64))
    prior = pv.priors.get("laplace")
    lik = pv.likelihoods.get("gaussian", scale=0.1)

    def model(x=None, n=None):
        bk.module("decoder", dec)
        with bk.plate("data", x.shape[0] if x is not None else n):
            z = bk.sample("z", prior.distribution(bk, PriorContext(latent_dim=LATENT)))
            return bk.sample("x", lik.distribution(bk, (dec(z),)), obs=x)

    def guide(x=None, n=None):
        bk.module("encoder", enc)
        with bk.plate("data", x.shape[0]):
            h = enc(x)
            scale = nn.functional.softplus(h[..., LATENT:]) + 1e-3
            return bk.sample("z", bk.dist.Normal(h[..., :LATENT], scale).to_event(1))
    return model, guide


def numpyro_pair():
    """(model, guide) as plain NumPyro code with the user's own Equinox networks."""
    import equinox as eqx
    import jax

    bk = pv.backends.get("numpyro")

    class MLP(eqx.Module):
        hidden: eqx.nn.Linear
        out: eqx.nn.Linear

        def __init__(self, n_in, n_out, key):
            k1, k2 = jax.random.split(key)
            self.hidden = eqx.nn.Linear(n_in, 16, key=k1)
            self.out = eqx.nn.Linear(16, n_out, key=k2)

        def __call__(self, x):
            flat = x.reshape(-1, x.shape[-1])
            y = jax.vmap(lambda r: self.out(jax.nn.relu(self.hidden(r))))(flat)
            return y.reshape(x.shape[:-1] + (y.shape[-1],))

    enc = MLP(64, 2 * LATENT, jax.random.PRNGKey(0))
    dec = MLP(LATENT, 64, jax.random.PRNGKey(1))
    prior = pv.priors.get("laplace")
    lik = pv.likelihoods.get("gaussian", scale=0.1)

    def model(x=None, n=None):
        decoder = bk.module("decoder", dec)
        with bk.plate("data", x.shape[0] if x is not None else n):
            z = bk.sample("z", prior.distribution(bk, PriorContext(latent_dim=LATENT)))
            return bk.sample("x", lik.distribution(bk, (decoder(z),)), obs=x)

    def guide(x=None, n=None):
        encoder = bk.module("encoder", enc)
        with bk.plate("data", x.shape[0]):
            h = encoder(x)
            scale = jax.nn.softplus(h[..., LATENT:]) + 1e-3
            return bk.sample("z", bk.dist.Normal(h[..., :LATENT], scale).to_event(1))
    return model, guide


PAIRS = {"pyro": pyro_pair, "numpyro": numpyro_pair}


def test_custom_pair_trains_evaluates_and_encodes(backend, small):
    res = pv.fit(PAIRS[backend](), small.train, backend=backend, objective="elbo", epochs=2,
                 batch_size=32, progress=False)
    assert isinstance(res.model, pv.models.CustomModel) and res.backend == backend
    loss = res.history["train_loss"]
    assert len(loss) == 2 and np.all(np.isfinite(loss))
    scores = pv.evaluate(res, small.test, num_samples=10)
    for key in ("elbo", "log_likelihood", "reconstruction", "kl"):
        assert np.isfinite(scores[key]), key
    assert scores["log_likelihood"] >= scores["elbo"]
    assert scores["num_examples"] == 16
    # the Laplace prior and the Normal guide factorise, so KL per dim is there
    assert scores["kl_per_dim"].shape == (LATENT,) and np.all(np.isfinite(scores["kl_per_dim"]))
    assert scores["kl_per_dim"].sum() == pytest.approx(scores["kl"], rel=1e-3, abs=1e-3)
    z = pv.encode(res, small.test)
    assert z.shape == (16, LATENT) and np.all(np.isfinite(z))
    assert pv.sample(res, n=3, seed=0).shape == (3, 64)
    assert pv.reconstruct(res, small.test).shape == (16, 64)
    assert any(k.startswith("encoder.") for k in res.params)
    assert any(k.startswith("decoder.") for k in res.params)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_refitting_the_same_pair_leaves_the_first_result_alone(backend, small):
    pair = PAIRS[backend]()
    first = pv.fit(pair, small.train, backend=backend, epochs=1, batch_size=32, progress=False)
    sample_before = pv.sample(first, n=4, seed=0)
    second = pv.fit(pair, small.train, backend=backend, epochs=1, batch_size=32, progress=False)
    # the same seed on the same backend gives the same numbers ...
    assert second.history["train_loss"] == first.history["train_loss"]
    # ... and the first result still holds its own parameters
    np.testing.assert_array_equal(pv.sample(first, n=4, seed=0), sample_before)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_a_kl_weight_and_its_warm_up_reach_a_users_pair(backend, small):
    """The objective scales the pair's continuous latents by a handler: the pair takes no
    kl_weight keyword and needs none."""
    from probvae.inference.objectives import kl_weighted
    res = pv.fit(PAIRS[backend](), small.train, backend=backend, objective="beta", beta=0.5,
                 warmup=2, epochs=3, batch_size=32, progress=False)
    assert res.history["kl_weight"] == [0.25, 0.5, 0.5]
    bk, names = res.bk, res.model.contract.continuous_names
    assert names == ("z",)
    x = bk.asarray(small.test.x[:4])
    gtr = bk.get_trace(bk.seed(bk.with_params(kl_weighted(bk, res.model.guide, names),
                                              res.param_state), 0), x, kl_weight=0.25)
    mtr = bk.get_trace(bk.replay(bk.seed(bk.with_params(
        kl_weighted(bk, res.model.model, names), res.param_state), 0), gtr), x, kl_weight=0.25)
    assert float(gtr["z"]["scale"]) == 0.25 and float(mtr["z"]["scale"]) == 0.25
    assert mtr["x"]["scale"] in (None, 1.0)
    zero = pv.fit(PAIRS[backend](), small.train, backend=backend, objective="beta", beta=0.01,
                  epochs=1, batch_size=32, progress=False)
    one = pv.fit(PAIRS[backend](), small.train, backend=backend, objective="beta", beta=1.0,
                 epochs=1, batch_size=32, progress=False)
    assert zero.history["train_loss"] != one.history["train_loss"]


def test_sites_outside_the_data_plate_are_refused_by_evaluate(small):
    import torch

    bk = pv.backends.get("pyro")

    def model(x):
        loc = bk.sample("global_loc", bk.dist.Normal(torch.zeros(64), 1.0).to_event(1))
        with bk.plate("data", x.shape[0]):
            bk.sample("x", bk.dist.Normal(loc, 1.0).to_event(1), obs=x)

    def guide(x):
        m = bk.param("m", np.zeros(64, np.float32))
        bk.sample("global_loc", bk.dist.Normal(m, 0.1).to_event(1))

    res = pv.fit((model, guide), small.train, backend="pyro", epochs=1, batch_size=32,
                 progress=False)
    assert np.all(np.isfinite(res.history["train_loss"]))
    with pytest.raises(ValueError, match="'global_loc' is outside plate 'data'"):
        pv.evaluate(res, small.test, num_samples=3)


def test_sample_needs_a_model_that_takes_n(small):
    import torch

    bk = pv.backends.get("pyro")
    lin = torch.nn.Linear(64, 64)

    def model(x):                              # no x=None, n=... signature
        bk.module("lin", lin)
        with bk.plate("data", x.shape[0]):
            bk.sample("x", bk.dist.Normal(lin(x), 1.0).to_event(1), obs=x)

    def guide(x):
        pass

    res = pv.fit((model, guide), small.train, backend="pyro", epochs=1, batch_size=32,
                 progress=False)
    with pytest.raises(TypeError, match=r"model\(x=None, n=N\)"):
        pv.sample(res, n=2)


def test_a_pair_that_takes_y_gets_a_splits_labels_and_dict_validation(small, digits):
    """A Split's labels reach a user's pair that takes ``y`` (in training and in scoring), and
    validation data may be a batch dict like the training data."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    seen = []

    def model(x, y=None):
        seen.append(y is not None)
        w = numpyro.param("w", np.zeros((2, 64), np.float32))
        with numpyro.plate("data", x.shape[0]):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(2), 1.0).to_event(1))
            numpyro.sample("x", dist.Normal(z @ w, 1.0).to_event(1), obs=x)

    def guide(x, y=None):
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("z", dist.Normal(jnp.zeros(2), 1.0).to_event(1))
    train = pv.data.from_arrays(digits.train.x[:64], digits.train.y[:64])
    res = pv.fit((model, guide), train, backend="numpyro", epochs=1, batch_size=32,
                 progress=False, validation={"x": digits.valid.x[:32], "y": digits.valid.y[:32]})
    assert seen and all(seen)
    assert np.isfinite(res.history["valid_loss"][0])
    seen.clear()
    pv.evaluate(res, pv.data.from_arrays(digits.test.x[:8], digits.test.y[:8]), num_samples=2)
    assert seen and all(seen)
