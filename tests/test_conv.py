"""Convolutional encoders and decoders: the same network on both backends, in every model."""
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import probvae as pv
from probvae.networks import ConvSpec, Head, Input, jax_nets, torch_nets

SHAPE = (1, 8, 8)
TINY = pv.networks.Conv(channels=(2, 4), hidden=(8,))


def torch_to_jax(tnet, jnet):
    """The JAX network with the torch network's weights (same layout, transposed convs
    stored (out, in) and flipped, as Equinox computes them)."""
    convs = []
    for m, e in zip([m for m in tnet.convs if isinstance(m, (torch.nn.Conv2d,
                                                             torch.nn.ConvTranspose2d))],
                    jnet.convs):
        w = m.weight.detach().numpy()
        if isinstance(m, torch.nn.ConvTranspose2d):
            w = w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
        convs.append(eqx.tree_at(lambda c: (c.weight, c.bias), e,
                                 (jnp.asarray(w.copy()),
                                  jnp.asarray(m.bias.detach().numpy()[:, None, None]))))
    dense = [eqx.tree_at(lambda l: (l.weight, l.bias), e,
                         (jnp.asarray(m.weight.detach().numpy()),
                          jnp.asarray(m.bias.detach().numpy())))
             for m, e in zip([m for m in tnet.dense if isinstance(m, torch.nn.Linear)],
                             jnet.dense)]
    return eqx.tree_at(lambda n: (n.convs, n.dense), jnet, (convs, dense))


@pytest.mark.parametrize("role", ["encoder", "decoder"])
@pytest.mark.parametrize("kernel", [3, 4])
def test_same_architecture_same_outputs_on_both_backends(role, kernel):
    y_in = Input("y", 3, "one_hot")
    if role == "encoder":
        spec = ConvSpec((Input("x", 64), y_in), (Head("loc", 2), Head("scale", 2, "positive")),
                        SHAPE, channels=(3, 5), kernel=kernel, hidden=(7,), role=role)
        first = np.random.default_rng(0).uniform(size=(4, 64)).astype(np.float32)
    else:
        spec = ConvSpec((Input("z", 2), y_in),
                        (Head("c1", 64, "positive"), Head("c0", 64, "positive")),
                        SHAPE, channels=(3, 5), kernel=kernel, hidden=(7,), role=role)
        first = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    y = np.broadcast_to(np.arange(3)[:, None], (3, 4)).copy()   # enumerated labels, 4 rows
    tnet = torch_nets.build(spec, 0)
    jnet = torch_to_jax(tnet, jax_nets.build(spec, 1))
    with torch.no_grad():
        t_out = [o.numpy() for o in tnet(torch.as_tensor(first), torch.as_tensor(y))]
    j_out = [np.asarray(o) for o in jnet(jnp.asarray(first), jnp.asarray(y))]
    for a, b, head in zip(t_out, j_out, spec.heads):
        assert a.shape == b.shape == (3, 4, head.size)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", [2, 3, 4, 5])
def test_strided_layers_by_taps_are_eqx_convolutions(kernel):
    """The JAX conv networks run their stride-2 layers as matrix products over the kernel's
    taps (XLA's CPU convolutions are slow inside the training loop's scan): the same outputs
    and gradients as eqx's Conv2d and ConvTranspose2d with the same weights."""
    import jax
    from probvae.networks.jax_nets import _downsample_x2, _upsample_x2
    pad = (kernel - 1) // 2
    up = eqx.nn.ConvTranspose2d(5, 3, kernel, stride=2, padding=pad,
                                output_padding=2 - kernel + 2 * pad, key=jax.random.PRNGKey(0))
    down = eqx.nn.Conv2d(5, 3, kernel, stride=2, padding=pad, key=jax.random.PRNGKey(2))
    for conv, ours, x, shape in [
            (up, _upsample_x2, jax.random.normal(jax.random.PRNGKey(1), (5, 7, 4)), (3, 14, 8)),
            (down, _downsample_x2, jax.random.normal(jax.random.PRNGKey(3), (5, 14, 8)),
             (3, 7, 4))]:
        def last(c, v):                               # ours run channels-last
            return jnp.transpose(ours(c, jnp.transpose(v, (1, 2, 0)), pad), (2, 0, 1))

        want, got = conv(x), last(conv, x)
        assert got.shape == want.shape == shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        g_want = jax.grad(lambda c, v: jnp.sum(jnp.sin(c(v))), argnums=(0, 1))(conv, x)
        g_got = jax.grad(lambda c, v: jnp.sum(jnp.sin(last(c, v))), argnums=(0, 1))(conv, x)
        np.testing.assert_allclose(g_got[0].weight, g_want[0].weight, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(g_got[1], g_want[1], rtol=1e-4, atol=1e-4)


def test_conv_spec_errors():
    with pytest.raises(ValueError, match="divisible by 8"):
        ConvSpec((Input("x", 36),), (Head("loc", 2),), (1, 6, 6), channels=(2, 2, 2))
    with pytest.raises(ValueError, match="first input is the image"):
        ConvSpec((Input("x", 10),), (Head("loc", 2),), SHAPE)
    with pytest.raises(ValueError, match="needs the model's image_shape"):
        pv.models.VAE(input_dim=64, encoder="conv")
    with pytest.raises(ValueError, match="does not match image_shape"):
        pv.models.VAE(input_dim=60, image_shape=(8, 8))


def test_parameter_count_matches_the_built_networks(backend):
    vae = pv.models.VAE(image_shape=SHAPE, encoder=TINY, decoder=TINY, latent_dim=2,
                        likelihood="beta", backend=backend).build(0)
    if backend == "pyro":
        built = sum(p.numel() for net in (vae.nets["encoder"], vae.nets["decoder"])
                    for p in net.parameters())
    else:
        import jax
        built = sum(int(np.prod(x.shape)) for net in (vae.nets["encoder"], vae.nets["decoder"])
                    for x in jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_array)))
    assert built == vae.parameter_count()


def _fit(model, data, **kw):
    kw.setdefault("epochs", 1)
    return pv.fit(model, data, batch_size=32, progress=False, **kw)


@pytest.mark.parametrize("prior,likelihood,objective", [
    ("vamp", "bernoulli", "iwae"), ("normal", "beta", "elbo")])
def test_conv_vae_trains_evaluates_and_reloads(backend, small_data, prior, likelihood, objective,
                                               tmp_path):
    kind = "binary" if likelihood == "bernoulli" else "unit"
    data = small_data[kind]
    vae = pv.models.VAE(image_shape=SHAPE, encoder=TINY, decoder=TINY, latent_dim=2,
                        prior=prior, likelihood=likelihood, backend=backend)
    res = _fit(vae, data.train, objective=objective)
    scores = pv.evaluate(res, data.test, num_samples=4)
    assert np.isfinite(scores["log_likelihood"])
    assert pv.sample(res, n=3).shape == (3, 64)
    loaded = pv.load(pv.save(res, tmp_path / "run"))
    np.testing.assert_allclose(pv.reconstruct(loaded, data.test.x[:4]),
                               pv.reconstruct(res, data.test.x[:4]), rtol=1e-5, atol=1e-6)


def test_conv_ssvae_decoder_takes_the_label(backend, digits):
    ss = pv.models.SSVAE(image_shape=SHAPE, encoder=TINY, decoder=TINY, latent_dim=2,
                         backend=backend)
    res = _fit(ss, digits.train, labels=digits.train.label_subset(2), objective="enum")
    assert pv.predict(res, digits.test.x[:6]).shape == (6, 10)
    a, b = pv.sample(res, n=2, y=1, seed=0), pv.sample(res, n=2, y=7, seed=0)
    assert a.shape == (2, 64) and not np.allclose(a, b)        # same z, other class


@pytest.mark.slow
@pytest.mark.parametrize("prior", pv.priors.names())
@pytest.mark.parametrize("likelihood", [n for n in pv.likelihoods.names() if n != "columns"])
def test_conv_with_every_prior_and_likelihood(backend, data_for, prior, likelihood):
    data = data_for(likelihood)
    vae = pv.models.VAE(image_shape=SHAPE, encoder=TINY, decoder=TINY, latent_dim=2,
                        prior=prior, likelihood=likelihood, backend=backend)
    assert np.isfinite(pv.evaluate(_fit(vae, data.train), data.test, num_samples=2)["elbo"])


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["elbo", "mean_field", "iwae", "renyi", "beta"])
def test_conv_with_every_objective(backend, small, objective):
    vae = pv.models.VAE(image_shape=SHAPE, encoder=TINY, decoder=TINY, latent_dim=2,
                        backend=backend)
    assert np.isfinite(_fit(vae, small.train, objective=objective).history["train_loss"][-1])
