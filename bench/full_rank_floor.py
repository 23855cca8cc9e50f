"""What a full-rank Gaussian q costs over a diagonal one in plain JAX, outside probvae.

The MNIST families' VAE (784-300-300 encoder, latent 40, 300-300-784 decoder, Bernoulli,
batch 100) written by hand as one ``lax.scan`` of Adam steps (optax), one thread: the diagonal
q, the diagonal q with the full-rank encoder's head width (40 + 820 outputs: the matrix
products alone), and the full-rank q three ways (its factor filled by a scatter and applied
to the noise, log q from the noise; the same with log q by a triangular solve; the factor
never filled: a segment sum over its packed entries); then the diagonal VAE as a NumPyro
model/guide pair stepped by NumPyro's own SVI, with the diagonal and the full-rank head
widths; then probvae's own VAE (diagonal and full-rank q) stepped by the same plain SVI, its
model code without ``pv.fit``'s loop. It prints ms a step and the ratio to the diagonal step:
the floor for probvae's ``posterior="full_rank"`` on this machine (``bench/posteriors.py
--mnist ...`` measures probvae's own step, loop included).

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        taskset -c 0 .venv/bin/python bench/full_rank_floor.py
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import probvae as pv


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latent", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=300)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    B, D, H = args.batch, args.latent, args.hidden
    rows, cols = np.tril_indices(D)
    diag = rows == cols
    rng = np.random.default_rng(0)
    x = jnp.asarray((rng.random((B, 784)) > 0.5).astype(np.float32))

    def lin(i, o):
        return (jnp.asarray(rng.normal(size=(i, o)) / np.sqrt(i), jnp.float32),
                jnp.zeros(o, jnp.float32))

    def mlp(layers, h):
        for i, (w, b) in enumerate(layers):
            h = h @ w + b
            h = jax.nn.relu(h) if i < len(layers) - 1 else h
        return h

    def neg_elbo(p, z, log_q):
        logits = mlp(p["d"], z)
        log_p = (x * logits - jax.nn.softplus(logits)).sum(-1) - 0.5 * (z ** 2).sum(-1)
        return -(log_p - log_q).mean()

    def diagonal(p, key):
        o = mlp(p["e"], x)
        loc, scale = o[:, :D], jax.nn.softplus(o[:, D:2 * D]) + 1e-4
        eps = jax.random.normal(key, (B, D))
        return neg_elbo(p, loc + scale * eps, (-0.5 * eps ** 2 - jnp.log(scale)).sum(-1))

    def full_rank(mode):
        def loss(p, key):
            o = mlp(p["e"], x)
            loc, e = o[:, :D], o[:, D:]
            e = jnp.where(diag, jax.nn.softplus(e) + 1e-4, 0.01 * e)
            eps = jax.random.normal(key, (B, D))
            if mode == "packed":
                z = loc + jax.ops.segment_sum((e * eps[:, cols]).T, rows, D,
                                              indices_are_sorted=True).T
            else:
                tril = jnp.zeros((B, D, D)).at[:, rows, cols].set(e)
                z = loc + jnp.einsum("bij,bj->bi", tril, eps)
            if mode == "solve":
                eps = jax.scipy.linalg.solve_triangular(tril, (z - loc)[..., None],
                                                        lower=True)[..., 0]
            return neg_elbo(p, z, (-0.5 * eps ** 2).sum(-1) - jnp.log(e[:, diag]).sum(-1))
        return loss

    def best_ms(run, *inputs):
        """ms a step of ``run`` (a jitted scan of ``args.steps`` steps): best of 3 after a
        first, compiling call."""
        jax.block_until_ready(run(*inputs))
        best = np.inf
        for _ in range(3):
            t = time.perf_counter()
            jax.block_until_ready(run(*inputs))
            best = min(best, time.perf_counter() - t)
        return 1e3 * best / args.steps

    def svi_ms(model, guide):
        """ms a step of NumPyro's SVI (Trace_ELBO, optax's Adam) on the pair, in a scan."""
        from numpyro.infer import SVI, Trace_ELBO
        svi = SVI(model, guide, optax.adam(1e-4), Trace_ELBO())
        return best_ms(jax.jit(lambda state: jax.lax.scan(
            lambda s, _: svi.update(s, x), state, None, length=args.steps)[0]),
            svi.init(jax.random.PRNGKey(0), x))

    def ms_per_step(loss, head):
        p = {"e": [lin(784, H), lin(H, H), lin(H, head)], "d": [lin(D, H), lin(H, H), lin(H, 784)]}

        opt = optax.adam(1e-4)

        def step(carry, key):
            p, state = carry
            updates, state = opt.update(jax.grad(loss)(p, key), state, p)
            return (optax.apply_updates(p, updates), state), None

        keys = jax.random.split(jax.random.PRNGKey(0), args.steps)
        return best_ms(jax.jit(lambda p, keys: jax.lax.scan(step, (p, opt.init(p)), keys)[0]),
                       p, keys)

    def svi_ms_per_step(head):
        """The diagonal VAE as a NumPyro model/guide pair (its encoder ``head`` outputs wide,
        the first 2 D used), stepped by NumPyro's SVI (Trace_ELBO, optax's Adam) in a scan."""
        import numpyro
        import numpyro.distributions as nd
        p0 = {"e": [lin(784, H), lin(H, H), lin(H, head)], "d": [lin(D, H), lin(H, H), lin(H, 784)]}

        def model(x):
            dec = numpyro.param("d", p0["d"])
            with numpyro.plate("data", x.shape[0]):
                z = numpyro.sample("z", nd.Normal(0, 1).expand([D]).to_event(1))
                numpyro.sample("x", nd.Bernoulli(logits=mlp(dec, z)).to_event(1), obs=x)

        def guide(x):
            enc = numpyro.param("e", p0["e"])
            with numpyro.plate("data", x.shape[0]):
                o = mlp(enc, x)
                numpyro.sample("z", nd.Normal(o[:, :D], jax.nn.softplus(o[:, D:2 * D]) + 1e-4)
                               .to_event(1))

        return svi_ms(model, guide)

    def probvae_ms_per_step(posterior):
        """probvae's own ``VAE`` model and guide (``posterior`` q), built as ``pv.fit`` builds
        them, stepped by NumPyro's plain SVI in a scan: probvae's model code without its loop."""
        vae = pv.models.VAE(input_dim=784, latent_dim=D, hidden=(H, H), likelihood="bernoulli",
                            backend="numpyro", posterior=posterior).build(0)
        return svi_ms(vae.model, vae.guide)

    n = D + D * (D + 1) // 2
    base = ms_per_step(diagonal, 2 * D)
    print(f"latent {D}, hidden {H}, batch {B}: best of 3 runs of {args.steps} steps")
    print(f"{'diagonal':42s} {base:6.2f} ms/step  1.00x")
    for name, loss, head in [("diagonal, full-rank head width", diagonal, n),
                             ("full rank, noise (probvae's way)", full_rank("dense"), n),
                             ("full rank, triangular solve", full_rank("solve"), n),
                             ("full rank, packed, no factor", full_rank("packed"), n)]:
        ms = ms_per_step(loss, head)
        print(f"{name:42s} {ms:6.2f} ms/step  {ms / base:4.2f}x", flush=True)
    svi_base = svi_ms_per_step(2 * D)
    svi_wide = svi_ms_per_step(n)
    print(f"{'NumPyro SVI, diagonal':42s} {svi_base:6.2f} ms/step  1.00x")
    print(f"{'NumPyro SVI, full-rank head width':42s} {svi_wide:6.2f} ms/step  "
          f"{svi_wide / svi_base:4.2f}x", flush=True)
    pv_base = probvae_ms_per_step("diagonal")
    pv_full = probvae_ms_per_step("full_rank")
    print(f"{'probvae VAE under NumPyro SVI, diagonal':42s} {pv_base:6.2f} ms/step  1.00x")
    print(f"{'probvae VAE under NumPyro SVI, full rank':42s} {pv_full:6.2f} ms/step  "
          f"{pv_full / pv_base:4.2f}x", flush=True)


if __name__ == "__main__":
    main()
