"""The loops ``bench/mnist.py speed`` times side by side: the same MLP VAE (784-400-50, batch
256, Adam 1e-3) written the plain way from each library's own VAE example, ``pv.fit`` on each
backend, the network's matmuls alone (the ceiling), the least whole VAE loop in plain JAX and
in plain torch (the network, the draw, the likelihood, the KL term and Adam, no probabilistic
programming library), plus the machine's fp32 matmul peak.

Each loop takes the binarized images ``x`` (N, 784) and a number of epochs, and returns the
seconds of each epoch.

Examples
--------
>>> import numpy as np
>>> flops_per_image() > 3e6            # about 3.5 MFLOP of matmul per image and step
True
>>> len(matmuls_torch(np.zeros((512, 784), np.float32), epochs=2))
2
>>> len(minimal_torch(np.zeros((512, 784), np.float32), epochs=2))
2
>>> len(minimal_jax(np.zeros((512, 784), np.float32), epochs=2))
2
"""
from __future__ import annotations

import time

import numpy as np


def matmul_peak(repeats=10):
    """fp32 GFLOP/s of a 2048x2048 matmul, JAX and torch, measured now."""
    import jax
    import jax.numpy as jnp
    import torch
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    ja = jnp.asarray(a)
    f = jax.jit(lambda x: x @ x)
    f(ja).block_until_ready()
    t = time.perf_counter()
    for _ in range(repeats):
        f(ja).block_until_ready()
    jax_gf = 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e9
    ta = torch.as_tensor(a)
    ta @ ta
    t = time.perf_counter()
    for _ in range(repeats):
        ta @ ta
    torch_gf = 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e9
    return jax_gf, torch_gf


def flops_per_image():
    """Matmul FLOPs per image and step of the 784-400-50 VAE: forward, and backward for both
    the weights and the inputs (the first layer needs no input gradient)."""
    enc = 784 * 400 + 400 * 100
    dec = 50 * 400 + 400 * 784
    macs = enc + dec
    return 2 * (3 * macs - 784 * 400)


def hand_numpyro(x, epochs):
    """The plain way a NumPyro user writes it: parameters as arrays, jitted ``svi.update``."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    import optax
    from numpyro.infer import SVI, Trace_ELBO
    rng = np.random.default_rng(0)
    enc, dec = (list(map(jnp.asarray, ws)) for ws in _vae_weights(rng))
    enc0 = {"w1": (enc[0], enc[1]), "w2": (enc[2], enc[3])}
    dec0 = {"w1": (dec[0], dec[1]), "w2": (dec[2], dec[3])}

    def model(batch):
        p = numpyro.param("dec", dec0)
        with numpyro.plate("data", batch.shape[0]):
            z = numpyro.sample("z", dist.Normal(0, 1).expand([50]).to_event(1))
            h = jax.nn.relu(z @ p["w1"][0] + p["w1"][1])
            numpyro.sample("x", dist.Bernoulli(logits=h @ p["w2"][0] + p["w2"][1]).to_event(1),
                           obs=batch)

    def guide(batch):
        p = numpyro.param("enc", enc0)
        with numpyro.plate("data", batch.shape[0]):
            h = jax.nn.relu(batch @ p["w1"][0] + p["w1"][1])
            out = h @ p["w2"][0] + p["w2"][1]
            numpyro.sample("z", dist.Normal(out[:, :50], jax.nn.softplus(out[:, 50:]) + 1e-4)
                           .to_event(1))

    svi = SVI(model, guide, optax.adam(1e-3), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0), jnp.asarray(x[:256]))
    update = jax.jit(svi.update)
    times = []
    for e in range(epochs):
        t = time.perf_counter()
        perm = rng.permutation(len(x))
        for i in range(len(x) // 256):
            state, loss = update(state, jnp.asarray(x[perm[i * 256:(i + 1) * 256]]))
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - t)
    return times


def hand_pyro(x, epochs):
    """The plain way from Pyro's VAE example: torch modules, a DataLoader, SVI.step."""
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from torch import nn
    torch.manual_seed(0)
    pyro.clear_param_store()
    enc = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 100))
    dec = nn.Sequential(nn.Linear(50, 400), nn.ReLU(), nn.Linear(400, 784))

    def model(batch):
        pyro.module("dec", dec)
        with pyro.plate("data", batch.shape[0]):
            z = pyro.sample("z", dist.Normal(0, 1).expand([50]).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=dec(z)).to_event(1), obs=batch)

    def guide(batch):
        pyro.module("enc", enc)
        with pyro.plate("data", batch.shape[0]):
            out = enc(batch)
            pyro.sample("z", dist.Normal(out[:, :50], nn.functional.softplus(out[:, 50:]) + 1e-4)
                        .to_event(1))

    loader = torch.utils.data.DataLoader(torch.as_tensor(x), batch_size=256, shuffle=True,
                                         drop_last=True)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    times = []
    for e in range(epochs):
        t = time.perf_counter()
        for batch in loader:
            svi.step(batch)
        times.append(time.perf_counter() - t)
    return times


def matmuls_jax(x, epochs):
    """The ceiling at this network's shapes: only its matmuls (forward, and backward for the
    weights and the hidden inputs) with a ReLU and a plain SGD update, one compiled epoch as
    ``pv.fit`` runs it. No sampling, likelihood or Adam: any VAE loop does at least this."""
    import jax
    import jax.numpy as jnp
    rng = np.random.default_rng(0)
    shapes = [(784, 400), (400, 100), (50, 400), (400, 784)]
    ws = [jnp.asarray(rng.standard_normal(s).astype(np.float32) * 0.01) for s in shapes]
    nb = len(x) // 256
    data = jnp.asarray(x[: nb * 256].reshape(nb, 256, 784))

    def loss(ws, xb):
        h = jax.nn.relu(xb @ ws[0]) @ ws[1]
        out = jax.nn.relu(h[:, :50] @ ws[2]) @ ws[3]
        return jnp.mean(out * out) + jnp.mean(h * h)

    @jax.jit
    def epoch(ws, data):
        def step(ws, xb):
            g = jax.grad(loss)(ws, xb)
            return [w - 1e-3 * gw for w, gw in zip(ws, g)], None
        return jax.lax.scan(step, ws, data)[0]

    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        ws = jax.block_until_ready(epoch(ws, data))
        times.append(time.perf_counter() - t)
    return times


def _vae_loss_terms(xb, enc, dec, eps, xp, relu, softplus, log):
    """One batch's negative ELBO (summed over the batch) of the 784-400-50 VAE, written once
    for either array library: the encoder, a reparameterized draw, the decoder, the Bernoulli
    log-likelihood from logits and the single-sample KL term (log q(z) - log p(z)), as
    ``Trace_ELBO`` estimates it."""
    h = relu(xb @ enc[0] + enc[1])
    out = h @ enc[2] + enc[3]
    loc, scale = out[:, :50], softplus(out[:, 50:]) + 1e-4
    z = loc + scale * eps
    logits = relu(z @ dec[0] + dec[1]) @ dec[2] + dec[3]
    log_lik = (xb * logits - softplus(logits)).sum()
    log_q = (-0.5 * eps * eps - log(scale)).sum()          # constants cancel against log p
    log_p = (-0.5 * z * z).sum()
    return log_q - log_p - log_lik


def _vae_weights(rng):
    """Encoder and decoder weights and biases (uniform, scaled by 1/sqrt(fan-in)), as NumPy
    arrays: ``([w1, b1, w2, b2] of the encoder, the same of the decoder)``."""
    def dense(i, o):
        return [(rng.uniform(-1, 1, (i, o)) / np.sqrt(i)).astype(np.float32),
                np.zeros(o, np.float32)]
    return dense(784, 400) + dense(400, 100), dense(50, 400) + dense(400, 784)


def minimal_jax(x, epochs):
    """The least any VAE loop must do here, in plain JAX and optax: the network with its
    biases, a reparameterized draw, the Bernoulli log-likelihood, the KL term and Adam, one
    compiled epoch of shuffled batches (as ``pv.fit`` runs it). No NumPyro: what is left
    between this and ``pv.fit`` is the probabilistic program's own cost."""
    import jax
    import jax.numpy as jnp
    import optax
    enc, dec = _vae_weights(np.random.default_rng(0))
    params = jax.tree_util.tree_map(jnp.asarray, (enc, dec))
    opt = optax.adam(1e-3)
    data = jnp.asarray(x)
    nb = len(x) // 256

    def loss(params, xb, eps):
        return _vae_loss_terms(xb, *params, eps, jnp, jax.nn.relu, jax.nn.softplus, jnp.log)

    @jax.jit
    def epoch(params, opt_state, key):
        key_perm, key_eps = jax.random.split(key)
        idx = jax.random.permutation(key_perm, len(x))[: nb * 256].reshape(nb, 256)

        def step(carry, inputs):
            params, opt_state = carry
            i, k = inputs
            value, grads = jax.value_and_grad(loss)(params, data[i],
                                                    jax.random.normal(k, (256, 50)))
            updates, opt_state = opt.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, opt_state), losses = jax.lax.scan(
            step, (params, opt_state), (idx, jax.random.split(key_eps, nb)))
        return params, opt_state, losses.mean()

    opt_state = opt.init(params)
    times = []
    for e in range(epochs):
        t = time.perf_counter()
        params, opt_state, _ = jax.block_until_ready(
            epoch(params, opt_state, jax.random.PRNGKey(e)))
        times.append(time.perf_counter() - t)
    return times


def minimal_torch(x, epochs):
    """The same least loop in plain torch: the network with its biases, the draw, the
    likelihood, the KL term and torch's fused Adam over all parameters. No Pyro."""
    import torch
    import torch.nn.functional as F
    enc, dec = _vae_weights(np.random.default_rng(0))
    enc = [torch.tensor(w, requires_grad=True) for w in enc]
    dec = [torch.tensor(w, requires_grad=True) for w in dec]
    opt = torch.optim.Adam(enc + dec, lr=1e-3, fused=True)
    data = torch.as_tensor(x)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(len(x) // 256):
            xb = data[perm[i * 256:(i + 1) * 256]]
            eps = torch.randn(256, 50, generator=gen)
            value = _vae_loss_terms(xb, enc, dec, eps, torch, torch.relu, F.softplus, torch.log)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
        times.append(time.perf_counter() - t)
    return times


def matmuls_torch(x, epochs):
    """The same ceiling in torch: the four matmuls forward and backward, SGD, no Pyro."""
    import torch
    torch.manual_seed(0)
    shapes = [(784, 400), (400, 100), (50, 400), (400, 784)]
    ws = [(torch.randn(s) * 0.01).requires_grad_() for s in shapes]
    nb = len(x) // 256
    data = torch.as_tensor(x[: nb * 256]).reshape(nb, 256, 784)
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        for xb in data:
            h = torch.relu(xb @ ws[0]) @ ws[1]
            out = torch.relu(h[:, :50] @ ws[2]) @ ws[3]
            ((out * out).mean() + (h * h).mean()).backward()
            with torch.no_grad():
                for w in ws:
                    w -= 1e-3 * w.grad
                    w.grad = None
        times.append(time.perf_counter() - t)
    return times


def probvae_fit(x, epochs, backend, pyro_as=None):
    """``pv.fit`` of the same VAE. On Pyro, ``pyro_as`` times it as an earlier version ran:
    ``"checks"`` with Pyro's argument checks in every epoch and Pyro's zero-filled gradients
    (before the checks stopped after the first epoch and the gradients were dropped after
    each update); ``"per_tensor"`` that, and Pyro's own Adam (one torch optimizer per tensor,
    torch's fused kernel) inside torch's default-device context on the CPU (before JointAdam
    and the bare CPU placement); ``"unfused"`` all that with torch's unfused Adam (the first
    version)."""
    import contextlib
    import probvae as pv
    if pyro_as is not None:
        import pyro
        from pyro.infer.util import zero_grads
        from probvae.backends.pyro_backend import PyroBackend
        from probvae.inference.pyro_loop import Loop
        saved = PyroBackend.adam, PyroBackend.placement, Loop._checks, Loop._drop_grads
        Loop._checks = lambda self: contextlib.nullcontext()
        Loop._drop_grads = staticmethod(zero_grads)
        if pyro_as != "checks":
            args = {"per_tensor": {"fused": True}, "unfused": {}}[pyro_as]
            PyroBackend.adam = staticmethod(lambda lr: pyro.optim.Adam({"lr": lr, **args}))
            PyroBackend.placement = classmethod(lambda cls, device: cls.torch_device(device))
        try:
            return probvae_fit(x, epochs, backend)
        finally:
            PyroBackend.adam, PyroBackend.placement = (staticmethod(saved[0]),
                                                       classmethod(saved[1].__func__))
            Loop._checks, Loop._drop_grads = saved[2], staticmethod(saved[3])
    vae = pv.models.VAE(input_dim=784, latent_dim=50, hidden=(400,), likelihood="bernoulli",
                        backend=backend)
    res = pv.fit(vae, x, epochs=epochs, batch_size=256, lr=1e-3, progress=False)
    return res.history["seconds"][1:]
