"""A user's own generative model, written as plain Pyro or NumPyro functions, trained by pv.fit.

The model is an ordinary VAE-like pair with a Laplace prior and a Gaussian likelihood with fixed
scale, both taken from probvae's registries and used inside the user's code. The same
`pv.fit((model, guide), data, backend=..., objective=...)` call trains it on either backend, and
`pv.evaluate` / `pv.encode` work on it whatever its sites are called: probvae reads its latent
and observed sites and its plate from one trace of the pair (`res.model.contract`).

    python examples/custom_model.py                 # both backends, 20 epochs each
    python examples/custom_model.py --backend pyro --epochs 5
"""
from __future__ import annotations

import argparse

import probvae as pv

LATENT = 4
prior = pv.priors.get("laplace")
likelihood = pv.likelihoods.get("gaussian", scale=0.1)


def pyro_pair(input_dim):
    """model/guide as plain Pyro functions with torch networks."""
    import pyro
    import pyro.distributions as dist
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(input_dim, 128), nn.ReLU())
            self.loc, self.log_scale = nn.Linear(128, LATENT), nn.Linear(128, LATENT)

        def forward(self, x):
            h = self.body(x)
            return self.loc(h), torch.exp(self.log_scale(h).clamp(-8, 4))

    torch.manual_seed(0)
    encoder = Encoder()
    decoder = nn.Sequential(nn.Linear(LATENT, 128), nn.ReLU(), nn.Linear(128, input_dim),
                            nn.Sigmoid())
    bk = pv.backends.get("pyro")

    def model(x=None, n=None):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0] if x is not None else n):
            z = pyro.sample("z", prior.distribution(bk, LATENT))
            pyro.sample("x", likelihood.distribution(bk, (decoder(z),)), obs=x)

    def guide(x=None, n=None):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = encoder(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return model, guide


def numpyro_pair(input_dim):
    """model/guide as plain NumPyro functions with Equinox networks."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.contrib.module import eqx_module

    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    encoder = eqx.nn.MLP(input_dim, 2 * LATENT, 128, depth=1, key=k1)
    decoder = eqx.nn.MLP(LATENT, input_dim, 128, depth=1, final_activation=jax.nn.sigmoid,
                         key=k2)
    bk = pv.backends.get("numpyro")

    def apply(net, x):           # Equinox layers take one example: map over the leading dims
        flat = x.reshape(-1, x.shape[-1])
        return jax.vmap(net)(flat).reshape(x.shape[:-1] + (-1,))

    def model(x=None, n=None):
        dec = eqx_module("decoder", decoder)
        with numpyro.plate("data", x.shape[0] if x is not None else n):
            z = numpyro.sample("z", prior.distribution(bk, LATENT))
            numpyro.sample("x", likelihood.distribution(bk, (apply(dec, z),)), obs=x)

    def guide(x=None, n=None):
        enc = eqx_module("encoder", encoder)
        with numpyro.plate("data", x.shape[0]):
            h = apply(enc, x)
            loc, scale = h[..., :LATENT], jnp.exp(jnp.clip(h[..., LATENT:], -8, 4))
            numpyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return model, guide


PAIRS = {"pyro": pyro_pair, "numpyro": numpyro_pair}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=["both", *PAIRS], default="both")
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    data = pv.data.load("digits", seed=0)
    for backend in PAIRS if args.backend == "both" else [args.backend]:
        model, guide = PAIRS[backend](data.train.x.shape[1])
        res = pv.fit((model, guide), data.train, backend=backend, objective="elbo",
                     epochs=args.epochs, batch_size=64, lr=1e-3, validation=data.valid)
        scores = pv.evaluate(res, data.test, num_samples=200)
        z = pv.encode(res, data.test.x)
        print(f"{backend:>8}: test ELBO {scores['elbo']:.2f}, IWAE log-likelihood "
              f"{scores['log_likelihood']:.2f} nats/example, KL per dim "
              f"{[round(float(v), 2) for v in scores['kl_per_dim']]}, codes {z.shape}")


if __name__ == "__main__":
    main()
