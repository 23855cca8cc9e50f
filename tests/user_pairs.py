"""User pairs that do not resemble the built-in models, shared by the tests of the model
contract and of everything that follows it (evaluate, encode, the diagnostics, save/load)."""
import numpy as np

import probvae as pv


def hierarchy(backend, top="top", mid=2, extra=0):
    """top -> mid -> obs with a Student-t likelihood whose df is learned (constrained > 1), in
    plate "rows"; the model takes ``x=None, n=N`` to generate. ``top`` (the top latent's
    name), ``mid`` (the middle one's size) and ``extra`` (unused encoder outputs) make pairs
    that do not match a saved one."""
    bk = pv.backends.get(backend)
    if backend == "pyro":
        import torch
        torch.manual_seed(0)
        dec, up = torch.nn.Linear(mid, 64), torch.nn.Linear(1, mid)
        enc = torch.nn.Linear(64, 2 + 2 * mid + extra)

        def model(x=None, n=None):
            bk.module("dec", dec)
            bk.module("up", up)
            df = bk.param("df", np.array(3.0, np.float32),
                          constraint=bk.constraints.greater_than(1.0))
            with bk.plate("rows", x.shape[0] if x is not None else n):
                z2 = bk.sample(top, bk.dist.Normal(torch.zeros(1), 1.0).to_event(1))
                z1 = bk.sample("mid", bk.dist.Normal(up(z2), 1.0).to_event(1))
                bk.sample("obs", bk.dist.StudentT(df, dec(z1), 0.5).to_event(1), obs=x)

        def guide(x):
            bk.module("enc", enc)
            soft = torch.nn.functional.softplus
            with bk.plate("rows", x.shape[0]):
                h = enc(x)
                bk.sample(top, bk.dist.Normal(h[..., :1], soft(h[..., 1:2]) + 1e-3).to_event(1))
                bk.sample("mid", bk.dist.Normal(h[..., 2:2 + mid],
                                                soft(h[..., 2 + mid:2 + 2 * mid]) + 1e-3)
                          .to_event(1))
        return model, guide
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model(x=None, n=None):
        w = numpyro.param("w", np.full((mid, 64), 0.01, np.float32))
        df = numpyro.param("df", 3.0, constraint=dist.constraints.greater_than(1.0))
        with numpyro.plate("rows", x.shape[0] if x is not None else n):
            z2 = numpyro.sample(top, dist.Normal(jnp.zeros(1), 1.0).to_event(1))
            z1 = numpyro.sample("mid", dist.Normal(jnp.repeat(z2, mid, -1), 1.0).to_event(1))
            numpyro.sample("obs", dist.StudentT(df, z1 @ w, 0.5).to_event(1), obs=x)

    def guide(x):
        a = numpyro.param("a", np.full((64, 2 + 2 * mid + extra), 0.01, np.float32))
        with numpyro.plate("rows", x.shape[0]):
            h = x @ a
            numpyro.sample(top, dist.Normal(h[..., :1], jax.nn.softplus(h[..., 1:2]) + 1e-3)
                           .to_event(1))
            numpyro.sample("mid", dist.Normal(h[..., 2:2 + mid], jax.nn.softplus(
                h[..., 2 + mid:2 + 2 * mid]) + 1e-3).to_event(1))
    return model, guide


def mixture(backend, k=3, dim=2):
    """A discrete latent summed out by enumeration beside a continuous one: ``cluster`` (k
    classes, enumerated in the model, not in the guide) and ``z``; obs = decoder(z) plus the
    cluster's own offset. Trained with ``objective="enum"``; the model takes ``x=None, n=N``."""
    bk = pv.backends.get(backend)
    if backend == "pyro":
        import torch
        torch.manual_seed(0)
        dec, enc = torch.nn.Linear(dim, 64), torch.nn.Linear(64, 2 * dim)

        def model(x=None, n=None):
            bk.module("dec", dec)
            offsets = bk.param("offsets", 0.1 * np.arange(k * 64, dtype=np.float32)
                               .reshape(k, 64) / 64)
            with bk.plate("rows", x.shape[0] if x is not None else n):
                c = bk.sample("cluster", bk.dist.Categorical(logits=torch.zeros(k)),
                              infer={"enumerate": "parallel"})
                z = bk.sample("z", bk.dist.Normal(torch.zeros(dim), 1.0).to_event(1))
                bk.sample("obs", bk.dist.Normal(dec(z) + offsets[c], 0.5).to_event(1), obs=x)

        def guide(x=None, n=None):
            bk.module("enc", enc)
            with bk.plate("rows", x.shape[0]):
                h = enc(x)
                bk.sample("z", bk.dist.Normal(h[..., :dim], torch.nn.functional.softplus(
                    h[..., dim:]) + 1e-3).to_event(1))
        return model, guide
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model(x=None, n=None):
        w = numpyro.param("w", np.full((dim, 64), 0.01, np.float32))
        offsets = numpyro.param("offsets", 0.1 * np.arange(k * 64, dtype=np.float32)
                                .reshape(k, 64) / 64)
        with numpyro.plate("rows", x.shape[0] if x is not None else n):
            c = numpyro.sample("cluster", dist.Categorical(logits=jnp.zeros(k)),
                               infer={"enumerate": "parallel"})
            z = numpyro.sample("z", dist.Normal(jnp.zeros(dim), 1.0).to_event(1))
            numpyro.sample("obs", dist.Normal(z @ w + jnp.asarray(offsets)[c], 0.5).to_event(1),
                           obs=x)

    def guide(x=None, n=None):
        a = numpyro.param("a", np.full((64, 2 * dim), 0.01, np.float32))
        with numpyro.plate("rows", x.shape[0]):
            h = x @ a
            numpyro.sample("z", dist.Normal(h[..., :dim], jax.nn.softplus(h[..., dim:]) + 1e-3)
                           .to_event(1))
    return model, guide


def conditioned(backend, dim=2, width=3):
    """A pair that takes a per-example ``condition`` (a batch key, width 3) in both the model
    and the guide, as a conditional VAE does; ``condition`` defaults to zeros when the model
    generates (``x=None, n=N``)."""
    bk = pv.backends.get(backend)
    if backend == "pyro":
        import torch
        torch.manual_seed(0)
        dec, enc = torch.nn.Linear(dim + width, 64), torch.nn.Linear(64 + width, 2 * dim)

        def model(x=None, condition=None, n=None):
            bk.module("dec", dec)
            rows = x.shape[0] if x is not None else n
            cond = torch.zeros(rows, width) if condition is None else condition
            with bk.plate("rows", rows):
                z = bk.sample("z", bk.dist.Normal(torch.zeros(dim), 1.0).to_event(1))
                both = torch.cat([z, cond.expand(z.shape[:-1] + (width,))], -1)
                bk.sample("obs", bk.dist.Normal(dec(both), 0.5).to_event(1), obs=x)

        def guide(x=None, condition=None, n=None):
            bk.module("enc", enc)
            with bk.plate("rows", x.shape[0]):
                h = enc(torch.cat([x, condition], -1))
                bk.sample("z", bk.dist.Normal(h[..., :dim], torch.nn.functional.softplus(
                    h[..., dim:]) + 1e-3).to_event(1))
        return model, guide
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model(x=None, condition=None, n=None):
        w = numpyro.param("w", np.full((dim + width, 64), 0.01, np.float32))
        rows = x.shape[0] if x is not None else n
        cond = jnp.zeros((rows, width)) if condition is None else condition
        with numpyro.plate("rows", rows):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(dim), 1.0).to_event(1))
            both = jnp.concatenate([z, jnp.broadcast_to(cond, z.shape[:-1] + (width,))], -1)
            numpyro.sample("obs", dist.Normal(both @ w, 0.5).to_event(1), obs=x)

    def guide(x=None, condition=None, n=None):
        a = numpyro.param("a", np.full((64 + width, 2 * dim), 0.01, np.float32))
        with numpyro.plate("rows", x.shape[0]):
            h = jnp.concatenate([x, condition], -1) @ a
            numpyro.sample("z", dist.Normal(h[..., :dim], jax.nn.softplus(h[..., dim:]) + 1e-3)
                           .to_event(1))
    return model, guide
