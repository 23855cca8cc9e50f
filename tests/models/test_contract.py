"""The model contract: declared by the built-in models, read from one trace of a user's pair.

The user pairs here do not resemble the built-in models: a two-level hierarchy with latents not
called z and a plate not called "data", a Student-t likelihood with a learned df, a discrete
latent beside a continuous one.
"""
import numpy as np
import pytest

import probvae as pv
from probvae.models import Contract, Site
from user_pairs import hierarchy


def test_built_in_models_declare_their_sites():
    vae = pv.models.VAE(input_dim=64, latent_dim=3)
    assert vae.contract == Contract(latents=(Site("z", (3,)),), observed=(Site("x", (64,)),),
                                    batch_keys=("x", "mask"), data_plate="data")
    m2 = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=4)
    assert m2.contract.latents == (Site("y", (), True, 10), Site("z", (4,)))
    assert m2.contract.continuous_names == ("z",) and m2.contract.training_sites == ("y_aux",)
    adgm = pv.models.ADGM(input_dim=64, num_classes=10, latent_dim=4, aux_dim=2)
    assert adgm.contract.latent_names == ("a", "y", "z")
    assert adgm.contract.continuous_names == ("a", "z")


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_built_in_contracts_match_a_trace_of_the_model(backend, small):
    """What a built-in model declares is what reading its trace finds."""
    from probvae.models.contract import read_contract
    for model in (pv.models.VAE(input_dim=64, latent_dim=3, hidden=(8,), backend=backend),
                  pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(8,),
                                  backend=backend),
                  pv.models.ADGM(input_dim=64, num_classes=10, latent_dim=2, aux_dim=2,
                                 hidden=(8,), backend=backend)):
        built = model.build(0)
        batch = pv.batch.to_backend(built.bk, {"x": small.train.x[:4]})
        read = read_contract(built.bk, built.model, built.guide, batch,
                             batch_keys=model.contract.batch_keys)
        declared = model.contract
        assert [s.name for s in read.latents] == [s.name for s in declared.latents]
        for r, d in zip(read.latents, declared.latents):
            assert (r.event_shape, r.discrete) == (d.event_shape, d.discrete), r.name
        assert "x" in read.observed_names and read.data_plate == declared.data_plate


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_a_users_hierarchy_gets_its_contract_read_from_a_trace(backend, small):
    res = pv.fit(hierarchy(backend), small.train, backend=backend, epochs=1, batch_size=32,
                 progress=False)
    c = res.model.contract
    assert c.latents == (Site("top", (1,)), Site("mid", (2,)))
    assert c.observed == (Site("obs", (64,)),) and c.data_plate == "rows"
    assert c.continuous_names == ("top", "mid")


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_a_discrete_latent_beside_a_continuous_one(backend, small):
    bk = pv.backends.get(backend)
    if backend == "pyro":
        import torch
        lin = torch.nn.Linear(64, 3)
        dec = torch.nn.Linear(2, 64)

        def model(x):
            bk.module("dec", dec)
            with bk.plate("data", x.shape[0]):
                c = bk.sample("cluster", bk.dist.Categorical(logits=torch.zeros(3)))
                z = bk.sample("z", bk.dist.Normal(torch.zeros(2), 1.0).to_event(1))
                bk.sample("x", bk.dist.Normal(dec(z) + c[..., None], 1.0).to_event(1), obs=x)

        def guide(x):
            bk.module("lin", lin)
            with bk.plate("data", x.shape[0]):
                bk.sample("cluster", bk.dist.Categorical(logits=lin(x)))
                bk.sample("z", bk.dist.Normal(torch.zeros(2), 1.0).to_event(1))
    else:
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist

        def model(x):
            with numpyro.plate("data", x.shape[0]):
                c = numpyro.sample("cluster", dist.Categorical(logits=jnp.zeros(3)))
                z = numpyro.sample("z", dist.Normal(jnp.zeros(2), 1.0).to_event(1))
                numpyro.sample("x", dist.Normal(z.sum(-1, keepdims=True) + c[..., None], 1.0)
                               .to_event(1), obs=x)

        def guide(x):
            w = numpyro.param("w", np.zeros((64, 3), np.float32))
            with numpyro.plate("data", x.shape[0]):
                numpyro.sample("cluster", dist.Categorical(logits=x @ w))
                numpyro.sample("z", dist.Normal(jnp.zeros(2), 1.0).to_event(1))
    pair = pv.models.CustomModel(model, guide, backend).with_contract(
        {"x": small.train.x[:8]})
    c = pair.contract
    assert c.latents == (Site("cluster", (), True, 3), Site("z", (2,)))
    assert c.continuous_names == ("z",) and c.latent().name == "z"


def test_a_contract_given_by_hand_wins_and_mistakes_are_named(small):
    given = Contract(latents=(Site("top", (1,)), Site("mid", (2,))),
                     observed=(Site("obs", (64,)),), batch_keys=("x",), data_plate="rows")
    res = pv.fit(hierarchy("numpyro"), small.train, backend="numpyro", epochs=1,
                 batch_size=32, progress=False, contract=given)
    assert res.model.contract is given
    with pytest.raises(ValueError, match="describes a user's"):
        pv.fit(pv.models.VAE(input_dim=64, hidden=(8,)), small.train, epochs=1,
               progress=False, contract=given)
    with pytest.raises(ValueError, match="no latent site 'h'; its latent sites: "
                                         "\\['top', 'mid'\\]"):
        given.latent("h")
    with pytest.raises(ValueError, match="named twice"):
        Contract(latents=(Site("z", (2,)),), observed=(Site("z", (64,)),))

    def no_obs(x):
        import numpyro
        import numpyro.distributions as dist
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("z", dist.Normal(0, 1))
    with pytest.raises(ValueError, match="observes no site"):
        pv.fit((no_obs, no_obs), small.train, backend="numpyro", epochs=1, progress=False)
