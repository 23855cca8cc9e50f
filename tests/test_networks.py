"""Torch and JAX MLPs built from one MLPSpec: shapes, broadcasting, heads, validation, parity."""
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from probvae.networks import ACTIVATIONS, POSITIVE_FLOOR, Head, Input, MLPSpec, jax_nets, torch_nets

SPEC = MLPSpec(inputs=(Input("z", 3), Input("y", 4, "one_hot")), hidden=(8, 6),
               heads=(Head("loc", 5), Head("scale", 5, "positive"), Head("p", 2, "sigmoid"),
                      Head("rate", 1, "softplus")),
               activation="tanh")


def run(kind, spec, *inputs, seed=0):
    if kind == "torch":
        net = torch_nets.build(spec, seed)
        with torch.no_grad():
            out = net(*(torch.as_tensor(np.asarray(a)) for a in inputs))
        return [o.numpy() for o in out]
    net = jax_nets.build(spec, seed)
    return [np.asarray(o) for o in net(*(jnp.asarray(a) for a in inputs))]


@pytest.fixture(params=["torch", "jax"])
def kind(request):
    return request.param


def test_spec_sizes():
    assert SPEC.in_size == 3 + 4 and SPEC.out_size == 5 + 5 + 2 + 1


def test_plain_batch_shapes(kind):
    z = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    y = np.arange(10) % 4
    out = run(kind, SPEC, z, y)
    assert [o.shape for o in out] == [(10, 5), (10, 5), (10, 2), (10, 1)]


def test_enumerated_labels_broadcast_against_examples(kind):
    """y enumerated as (K, 1) against z of shape (N, d): outputs are (K, N, head)."""
    z = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    y = np.arange(4).reshape(4, 1)
    out = run(kind, SPEC, z, y)
    assert [o.shape for o in out] == [(4, 6, 5), (4, 6, 5), (4, 6, 2), (4, 6, 1)]
    # row k is the network applied to (z_n, onehot(k)) for every n
    for k in range(4):
        direct = run(kind, SPEC, z, np.full(6, k))
        for o, d in zip(out, direct):
            np.testing.assert_allclose(o[k], d, rtol=1e-5, atol=1e-6)


def test_extra_leading_particle_dims(kind):
    z = np.random.default_rng(2).normal(size=(2, 7, 6, 3)).astype(np.float32)  # particles...
    y = np.arange(6) % 4
    out = run(kind, SPEC, z, y)
    assert out[0].shape == (2, 7, 6, 5)
    one = run(kind, SPEC, z[1, 3], y)
    np.testing.assert_allclose(out[0][1, 3], one[0], rtol=1e-5, atol=1e-6)


def test_a_single_unbatched_example(kind):
    out = run(kind, SPEC, np.zeros(3, np.float32), np.array(2))
    assert [o.shape for o in out] == [(5,), (5,), (2,), (1,)]


def test_head_transforms_respect_their_ranges(kind):
    z = np.concatenate([np.full((1, 3), -1e4), np.full((1, 3), 1e4),
                        np.random.default_rng(3).normal(size=(20, 3)) * 50]).astype(np.float32)
    y = np.arange(22) % 4
    spec = MLPSpec(SPEC.inputs, (8,), SPEC.heads, "relu")
    loc, scale, p, rate = run(kind, spec, z, y)
    assert np.all(scale > 0) and np.all(scale >= POSITIVE_FLOOR * 0.999)
    assert np.all(p >= 0) and np.all(p <= 1)
    assert np.all(rate >= 0)
    assert np.all(np.isfinite(loc)) and np.all(np.isfinite(scale))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_torch_and_jax_agree_given_the_same_weights(activation):
    spec = MLPSpec(SPEC.inputs, (8, 6), SPEC.heads, activation)
    tnet = torch_nets.build(spec, 0)
    jnet = jax_nets.build(spec, 0)
    linears = [m for m in tnet.net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == len(jnet.layers) == 3
    for i, lin in enumerate(linears):
        jnet = eqx.tree_at(lambda n, i=i: (n.layers[i].weight, n.layers[i].bias), jnet,
                           (jnp.asarray(lin.weight.detach().numpy()),
                            jnp.asarray(lin.bias.detach().numpy())))
    z = 3 * np.random.default_rng(4).normal(size=(3, 5, 3)).astype(np.float32)
    y = np.array([[0], [1], [3]])
    with torch.no_grad():
        t_out = tnet(torch.as_tensor(z), torch.as_tensor(y))
    j_out = jnet(jnp.asarray(z), jnp.asarray(y))
    for t, j in zip(t_out, j_out):
        np.testing.assert_allclose(t.numpy(), np.asarray(j), rtol=1e-5, atol=1e-5)


def test_linear_map_without_hidden_layers(kind):
    spec = MLPSpec((Input("x", 4),), (), (Head("loc", 2),))
    out = run(kind, spec, np.ones((3, 4), np.float32))
    assert out[0].shape == (3, 2)


def test_seeds(kind):
    x = np.random.default_rng(5).normal(size=(4, 3)).astype(np.float32)
    y = np.arange(4)
    a, b, c = run(kind, SPEC, x, y, seed=0), run(kind, SPEC, x, y, seed=0), run(kind, SPEC, x, y, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], c[0])


def test_torch_build_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    torch_nets.build(SPEC, seed=42)
    assert torch.equal(torch.rand(2), expected)


def test_wrong_number_of_inputs(kind):
    with pytest.raises(ValueError, match="expects 2 inputs"):
        run(kind, SPEC, np.zeros((2, 3), np.float32))


def test_bad_names_raise():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        MLPSpec((Input("x", 2),), (4,), (Head("loc", 1),), "swish")
    with pytest.raises(ValueError, match="unknown head transform 'exp'"):
        Head("scale", 2, "exp")
    with pytest.raises(ValueError, match="kind"):
        Input("y", 3, "categorical")
    with pytest.raises(ValueError, match="size >= 1"):
        Input("x", 0)
    with pytest.raises(ValueError, match="hidden"):
        MLPSpec((Input("x", 2),), (4, 0), (Head("loc", 1),))


@pytest.mark.parametrize("builder", ["torch", "jax"])
def test_bounded_head_stays_inside_its_bound(builder):
    spec = MLPSpec((Input("z", 3),), (8,), (Head("logits", 4, "bounded", bound=2.0),))
    big = 1e3 * np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    if builder == "torch":
        out = torch_nets.build(spec, 0)(torch.as_tensor(big))[0].detach().numpy()
    else:
        out = np.asarray(jax_nets.build(spec, 0)(jnp.asarray(big))[0])
    assert np.abs(out).max() <= 2.0 and np.abs(out).max() > 1.5


def test_bounded_head_needs_a_bound():
    with pytest.raises(ValueError, match="bound > 0"):
        Head("logits", 4, "bounded")
