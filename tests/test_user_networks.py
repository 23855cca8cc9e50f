"""A user's own torch / Equinox module as the encoder or decoder of a built-in model
(docs/networks.md): trains on its backend, with every prior and objective, saves and loads,
and fails clearly when it does not fit."""
import re
from pathlib import Path

import numpy as np
import pytest

import probvae as pv
from probvae import likelihoods, networks

LATENT = 4
DOCS = Path(__file__).resolve().parents[1] / "docs" / "networks.md"


@pytest.fixture(scope="module")
def digits():
    return pv.data.load("digits", seed=0)


# ---- tiny user networks, one pair per library ----------------------------------------------

def torch_encoder(latent=LATENT, as_dict=False):
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
            self.loc, self.scale = nn.Linear(32, latent), nn.Linear(32, latent)

        def forward(self, x):
            h = self.body(x)
            loc, scale = self.loc(h), nn.functional.softplus(self.scale(h)) + 1e-4
            return {"loc": loc, "scale": scale} if as_dict else (loc, scale)
    return Encoder()


def torch_decoder(out=64, latent=LATENT):
    import torch
    from torch import nn
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(latent, 32), nn.ReLU(), nn.Linear(32, out))


def eqx_encoder(latent=LATENT):
    import equinox as eqx
    import jax

    class Encoder(eqx.Module):
        body: eqx.nn.MLP

        def __init__(self, key):
            self.body = eqx.nn.MLP(64, 2 * latent, 32, 1, key=key)

        def __call__(self, x):                      # one example: x has shape (64,)
            h = self.body(x)
            return {"loc": h[:latent], "scale": jax.nn.softplus(h[latent:]) + 1e-4}
    return Encoder(jax.random.PRNGKey(0))


def eqx_decoder(out=64, latent=LATENT):
    import equinox as eqx
    import jax
    return eqx.nn.MLP(latent, out, 32, 1, key=jax.random.PRNGKey(1))


ENCODERS = {"pyro": torch_encoder, "numpyro": eqx_encoder}
DECODERS = {"pyro": torch_decoder, "numpyro": eqx_decoder}


def vae(backend, encoder=True, decoder=True, **kwargs):
    return pv.models.VAE(input_dim=64, latent_dim=LATENT, hidden=(16,), backend=backend,
                         encoder=ENCODERS[backend]() if encoder else "mlp",
                         decoder=DECODERS[backend]() if decoder else "mlp", **kwargs)


def fit(model, digits, epochs=3, **kwargs):
    return pv.fit(model, digits.train[:400], epochs=epochs, batch_size=64, seed=0,
                  validation=None, progress=False, **kwargs)


# ---- training ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_user_encoder_and_decoder_train_and_lower_the_loss(backend, digits):
    model = vae(backend)
    assert model.user_networks == ("encoder", "decoder")
    res = fit(model, digits)
    loss = res.history["train_loss"]
    assert loss[-1] < loss[0], loss
    scores = pv.evaluate(res, digits.test[:40], num_samples=8)
    assert np.isfinite(scores["elbo"]) and np.isfinite(scores["log_likelihood"])
    assert pv.encode(res, digits.test.x[:5]).shape == (5, LATENT)
    assert pv.sample(res, n=3).shape == (3, 64)
    assert pv.reconstruct(res, digits.test.x[:5]).shape == (5, 64)


def test_the_module_given_is_not_trained_in_place(digits):
    import torch
    model = vae("pyro")
    before = [p.detach().clone() for p in model.encoder.module.parameters()]
    res = fit(model, digits, epochs=1)
    after = list(model.encoder.module.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    trained = res.bk.params_to_numpy(res.param_state)
    assert any(k.startswith("encoder$$$module.") for k in trained), sorted(trained)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_user_encoder_with_the_built_in_decoder(backend, digits):
    res = fit(vae(backend, decoder=False), digits, epochs=2)
    assert res.model.user_networks == ("encoder",)
    assert np.isfinite(pv.evaluate(res, digits.test[:20], num_samples=4)["elbo"])


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_user_decoder_with_the_built_in_encoder(backend, digits):
    res = fit(vae(backend, encoder=False, prior="mixture"), digits, epochs=2)
    assert res.model.user_networks == ("decoder",)
    assert np.isfinite(pv.evaluate(res, digits.test[:20], num_samples=4)["elbo"])


@pytest.mark.parametrize("backend,prior,objective", [
    ("pyro", "vamp", "iwae"), ("pyro", "mixture", "elbo"), ("pyro", "normal", "iwae"),
    ("numpyro", "vamp", "iwae"), ("numpyro", "mixture", "elbo")])
def test_every_prior_and_objective(backend, prior, objective, digits):
    options = {"num_particles": 4} if objective == "iwae" else {}
    res = fit(vae(backend, prior=prior), digits, epochs=2, objective=objective, **options)
    assert np.isfinite(res.history["train_loss"]).all()
    assert np.isfinite(pv.evaluate(res, digits.test[:20], num_samples=4)["log_likelihood"])


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_a_likelihood_of_two_heads_takes_a_dict_or_a_tuple(backend, digits):
    """Beta's decoder returns both concentrations (> 0)."""
    if backend == "pyro":
        import torch

        class Decoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = torch_decoder(out=128)

            def forward(self, z):
                h = torch.nn.functional.softplus(self.net(z)) + 1e-3
                return {"concentration1": h[:, :64], "concentration0": h[:, 64:]}
    else:
        import equinox as eqx
        import jax

        class Decoder(eqx.Module):
            net: eqx.nn.MLP

            def __init__(self):
                self.net = eqx_decoder(out=128)

            def __call__(self, z):
                h = jax.nn.softplus(self.net(z)) + 1e-3
                return h[:64], h[64:]
    model = pv.models.VAE(input_dim=64, latent_dim=LATENT, likelihood="beta", backend=backend,
                          decoder=Decoder())
    res = fit(model, digits, epochs=2)
    assert np.isfinite(res.history["train_loss"]).all()


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_a_user_decoder_of_m2_takes_z_and_the_one_hot_label(backend, digits):
    if backend == "pyro":
        import torch

        class Decoder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = torch_decoder(latent=LATENT + 10)

            def forward(self, z, y):             # (batch, 4) and (batch, 10) one-hot
                return self.net(torch.cat([z, y], dim=-1))
    else:
        import equinox as eqx
        import jax.numpy as jnp

        class Decoder(eqx.Module):
            net: eqx.nn.MLP

            def __init__(self):
                self.net = eqx_decoder(latent=LATENT + 10)

            def __call__(self, z, y):            # (4,) and (10,) one-hot
                return self.net(jnp.concatenate([z, y]))
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=LATENT, hidden=(16,),
                         backend=backend, decoder=Decoder())
    data = digits.train[:300]
    res = pv.fit(ss, data, labels=data.label_subset(n_per_class=3, seed=0), objective="enum",
                 epochs=1, batch_size=50, progress=False, validation=None)
    assert np.isfinite(res.history["train_loss"][0])
    assert pv.predict(res, digits.test.x[:5]).shape == (5, 10)
    with pytest.raises(ValueError, match="SSVAE's encoder .* decoder"):
        pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=LATENT, backend=backend,
                        encoder=ENCODERS[backend]())


def test_extra_leading_dims_are_kept():
    import jax.numpy as jnp
    import torch
    from probvae.networks import jax_nets, torch_nets
    t = torch_nets.build(vae("pyro").decoder_spec, 0)
    assert t(torch.zeros(5, 3, LATENT))[0].shape == (5, 3, 64)
    j = jax_nets.build(vae("numpyro").decoder_spec, 0)
    assert j(jnp.zeros((5, 3, LATENT)))[0].shape == (5, 3, 64)


# ---- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_a_wrong_shape_names_the_expected_one(backend):
    with pytest.raises(ValueError, match=r"VAE\(input_dim=64, latent_dim=8\): the encoder .*"
                       r"shape .*4.* for 'loc' .*8") as err:
        pv.models.VAE(input_dim=64, latent_dim=8, backend=backend,
                      encoder=ENCODERS[backend](latent=4))
    assert "returns loc" in str(err.value)
    with pytest.raises(ValueError, match=r"the decoder .* shape .*32.* for 'logits'"):
        pv.models.VAE(input_dim=64, latent_dim=LATENT, backend=backend,
                      decoder=DECODERS[backend](out=32))


def test_wrong_keys_count_and_support_are_named():
    import torch
    from torch import nn

    class Keys(nn.Module):
        def forward(self, x):
            return {"mean": x[:, :2], "std": x[:, 2:4].exp()}

    class One(nn.Module):
        def forward(self, x):
            return x[:, :2]

    class Negative(nn.Module):
        def forward(self, x):
            return x[:, :2], -torch.ones(x.shape[0], 2)

    class TwoArguments(nn.Module):
        def forward(self, x, y):
            return x, y

    for module, words in ((Keys(), r"keys \['mean', 'std'\].*\['loc', 'scale'\]"),
                          (TwoArguments(), "failed on its inputs: TypeError.* takes x"),
                          (One(), "returned one array; it should return a tuple \\(loc, scale\\)"),
                          (Negative(), "values <= 0 for 'scale'.*softplus")):
        with pytest.raises(ValueError, match=words):
            pv.models.VAE(input_dim=64, latent_dim=2, backend="pyro", encoder=module)


def test_a_module_of_the_other_backend_names_the_fix():
    with pytest.raises(TypeError, match="torch module .* backend='pyro'"):
        pv.models.VAE(input_dim=64, latent_dim=LATENT, backend="numpyro",
                      encoder=torch_encoder())
    with pytest.raises(TypeError, match="equinox module .* backend='numpyro'.* torch"):
        pv.models.VAE(input_dim=64, latent_dim=LATENT, backend="pyro", decoder=eqx_decoder())


def test_a_recorded_user_network_is_not_settings():
    cfg = vae("pyro").config()
    assert cfg["encoder"]["name"] == "user" and cfg["encoder"]["library"] == "torch"
    with pytest.raises(ValueError, match="user's network .* pass the module itself"):
        pv.models.VAE(input_dim=64, latent_dim=LATENT, backend="pyro", encoder=cfg["encoder"])


# ---- save, load, resume --------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_save_load_round_trip(backend, digits, tmp_path):
    model = vae(backend, prior="vamp")
    res = fit(model, digits, epochs=2)
    pv.save(res, tmp_path / "run")
    with pytest.raises(ValueError, match="user's own network .* pv.load\\(path, model="):
        pv.load(tmp_path / "run")
    with pytest.raises(ValueError, match="latent_dim is 4 in the saved run and 3"):
        pv.load(tmp_path / "run", model=pv.models.VAE(
            input_dim=64, latent_dim=3, hidden=(16,), backend=backend, prior="vamp",
            encoder=ENCODERS[backend](latent=3), decoder=DECODERS[backend](latent=3)))
    back = pv.load(tmp_path / "run", model=vae(backend, prior="vamp"))
    a = pv.evaluate(res, digits.test[:30], num_samples=8, seed=3)
    b = pv.evaluate(back, digits.test[:30], num_samples=8, seed=3)
    assert a["elbo"] == pytest.approx(b["elbo"], rel=1e-5)
    assert a["log_likelihood"] == pytest.approx(b["log_likelihood"], rel=1e-5)
    # and it trains on: the loaded result continues from its training state
    more = pv.fit(back, digits.train[:400], epochs=3, progress=False)
    assert len(more.history["train_loss"]) == 3


def test_resume_a_checkpointed_run(digits, tmp_path):
    run = tmp_path / "run"
    fit(vae("pyro"), digits, epochs=1, checkpoint=run)
    res = pv.fit(vae("pyro"), digits.train[:400], epochs=2, batch_size=64, seed=0,
                 validation=None, progress=False, checkpoint=run, resume=True)
    assert len(res.history["train_loss"]) == 2


# ---- the documentation ---------------------------------------------------------------------

def _doc_table():
    """``{likelihood: [(head, constraint), ...]}`` from docs/networks.md's decoder table."""
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(\w+)` \| (.+?) \|", line)
        if m and m.group(1) in likelihoods.names():
            rows[m.group(1)] = [re.fullmatch(r"`([^`]+)` (.+)", part.strip()).groups()
                                for part in m.group(2).split(";")]
    return rows


def test_the_decoder_table_matches_the_likelihoods():
    expected = {}
    for name in likelihoods.names():
        if name == "columns":
            continue
        heads = likelihoods.get(name).heads(3)
        expected[name] = [(h.name, networks.CONSTRAINTS[h.transform]) for h in heads]
    assert _doc_table() == expected


def _python_blocks():
    blocks, code = [], None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if code is None and line.startswith("```python"):
            code = []
        elif code is not None and line.startswith("```"):
            blocks.append("\n".join(code) + "\n")
            code = None
        elif code is not None:
            code.append(line)
    return blocks


@pytest.mark.parametrize("index", range(2))
def test_the_documented_examples_run(index):
    blocks = _python_blocks()
    assert len(blocks) == 2
    exec(compile(blocks[index], f"docs/networks.md block {index}", "exec"), {})
