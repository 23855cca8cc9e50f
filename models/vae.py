"""The variational autoencoder: one model/guide pair for both backends."""
from __future__ import annotations

from probvae import likelihoods, priors
from probvae.networks import Input, gaussian_heads
from probvae.priors import PriorContext
from probvae.registry import check_int, to_config

from .base import (Model, architecture, check_hidden, check_user_networks, image_input,
                   network_config, register_model)
from .contract import Site

__all__ = ["VAE"]


@register_model
class VAE(Model):
    """A VAE with a Gaussian encoder q(z|x), any prior p(z) and any likelihood p(x|z).

    Parameters
    ----------
    input_dim : int
        Number of features of x (may be left out when ``image_shape`` is given).
    latent_dim : int
        Size of z.
    hidden : tuple of int
        Hidden widths of an MLP encoder; an MLP decoder uses them reversed.
    activation : str
        Hidden activation (``relu``, ``tanh``, ``elu``, ``gelu``, ``softplus``, ``silu``).
    prior : str, dict or Prior
        A name from :mod:`probvae.priors` (``"normal"``, ``"vamp"``, ...) or an instance.
    likelihood : str, dict or Likelihood
        A name from :mod:`probvae.likelihoods` or an instance.
    backend : {"numpyro", "pyro"}
    image_shape : tuple, optional
        (channels, height, width) or (height, width) of image data, flattened in ``x``;
        needed by conv networks and used by the plots.
    encoder, decoder : "mlp", "conv", dict, architecture or module
        The networks: ``"mlp"`` (dense layers of ``hidden`` widths), ``"conv"`` (stride-2
        convolutions; :class:`~probvae.networks.Conv`), an instance with settings, e.g.
        ``pv.networks.Conv(channels=(32, 64), hidden=(256,))``, or your own torch
        ``nn.Module`` (``backend="pyro"``) or Equinox module (``backend="numpyro"``). Your
        encoder takes ``x`` (``(batch, input_dim)``, images flattened) and returns
        ``(loc, scale)`` of q(z|x), each ``(batch, latent_dim)``, ``scale > 0``; your decoder
        takes ``z`` and returns the likelihood's parameters (one array, or a tuple or dict of
        them: ``docs/networks.md`` has the table); an Equinox module is called on one example
        and vmapped. See :class:`~probvae.networks.UserSpec`.

    Notes
    -----
    Sites: plate ``"data"`` over examples, latent ``"z"`` (event dim 1), observed ``"x"``.
    The KL weight of objective ``"beta"`` (and its warm-up) scales the ``z`` site in model and
    guide alike, applied by the objective from outside the model.
    Batch keys (see :mod:`probvae.batch`): ``x`` and, for data with missing values, ``mask``
    (True where observed; missing cells are left out of p(x|z), and the encoder sees the
    likelihood's ``fill`` value there).

    References
    ----------
    Kingma & Welling (2014), "Auto-Encoding Variational Bayes", ICLR.

    Examples
    --------
    >>> vae = VAE(input_dim=64, latent_dim=8, prior="vamp", likelihood="continuous_bernoulli",
    ...           backend="numpyro")
    >>> vae.prior.name, vae.likelihood.name
    ('vamp', 'continuous_bernoulli')
    >>> VAE(image_shape=(1, 28, 28), encoder="conv", decoder="conv").encoder_spec.channels
    (32, 64)

    Your own network, here a torch decoder of Bernoulli logits:

    >>> import torch
    >>> decoder = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(),
    ...                               torch.nn.Linear(64, 64))
    >>> VAE(input_dim=64, latent_dim=8, likelihood="bernoulli", decoder=decoder,
    ...     backend="pyro").user_networks
    ('decoder',)
    """

    def __init__(self, input_dim: int = None, latent_dim: int = 8, hidden=(256, 256),
                 activation: str = "relu", prior="normal", likelihood="continuous_bernoulli",
                 backend: str = "numpyro", image_shape=None, encoder="mlp", decoder="mlp"):
        super().__init__(backend)
        input_dim, self.image_shape = image_input(input_dim, image_shape)
        check_int("VAE", input_dim=input_dim, latent_dim=latent_dim)
        self.input_dim, self.latent_dim = int(input_dim), int(latent_dim)
        self.hidden, self.activation = check_hidden(hidden, type(self).__name__), activation
        self.prior = priors.get(prior)
        self.likelihood = likelihoods.get(likelihood)
        self.encoder = architecture(encoder, self.hidden, activation, "encoder")
        self.decoder = architecture(decoder, self.hidden, activation, "decoder")
        self.encoder_spec = self.encoder.spec(
            (Input("x", self.input_dim),), gaussian_heads(self.latent_dim), "encoder",
            self.image_shape)
        self.decoder_spec = self.decoder.spec((Input("z", self.latent_dim),),
                                              self.likelihood.heads(self.input_dim), "decoder",
                                              self.image_shape)
        check_user_networks(self)

    @classmethod
    def for_table(cls, table, latent_dim: int = 4, hidden=(128, 128), **kwargs):
        """A VAE for a table's rows: its likelihood is one per column
        (:class:`~probvae.likelihoods.Columns`), and it decodes back to DataFrames.

        Examples
        --------
        >>> import pandas as pd
        >>> from probvae.data import from_frame
        >>> t = from_frame(pd.DataFrame({"a": [0.1, 2.0, 3.0, 4.5], "b": ["x", "y", "z", "x"]}),
        ...                verbose=False)
        >>> VAE.for_table(t, latent_dim=2).input_dim
        4
        """
        if "likelihood" in kwargs:
            raise TypeError("for_table sets the likelihood from the table's columns")
        return cls(input_dim=table.width, latent_dim=latent_dim, hidden=hidden,
                   likelihood=likelihoods.Columns(tuple(table.columns)), **kwargs)

    def latent_sites(self) -> tuple:
        """``z``, a vector of ``latent_dim``."""
        return (Site("z", (self.latent_dim,)),)

    def config(self) -> dict:
        """Constructor arguments as plain JSON-able values."""
        return {"class": "VAE", "input_dim": self.input_dim, "latent_dim": self.latent_dim,
                "hidden": list(self.hidden), "activation": self.activation,
                "prior": to_config(self.prior), "likelihood": to_config(self.likelihood),
                "backend": self.backend, **network_config(self)}

    def _build_nets(self, seed):
        return {"encoder": self.bk.build_network(self.encoder_spec, seed),
                "decoder": self.bk.build_network(self.decoder_spec, seed + 1),
                "prior": self.prior.build(self.bk, self.latent_dim, self.input_dim, seed + 2)}

    def prior_distribution(self):
        """p(z), registering the prior's parameters (call inside the model)."""
        bk = self.bk
        encoder = bk.module("encoder", self.nets["encoder"]) if self.prior.needs_encoder else None
        return self.prior.distribution(bk, PriorContext(self.latent_dim, self.input_dim,
                                                        self.nets["prior"], encoder))

    def model(self, x=None, mask=None, n=None):
        """p(x, z) = p(z) p(x|z); pass ``x=None, n=N`` to generate N examples."""
        self._require_built()
        bk = self.bk
        decoder = bk.module("decoder", self.nets["decoder"])
        prior = self.prior_distribution()
        size = x.shape[0] if x is not None else n
        with bk.plate("data", size):
            z = bk.sample("z", prior)
            return bk.sample("x", self.likelihood.distribution(bk, decoder(z), mask=mask), obs=x)

    def guide(self, x=None, mask=None, n=None):
        """q(z|x) = Normal(loc(x), scale(x)) from the encoder network."""
        self._require_built()
        bk = self.bk
        encoder = bk.module("encoder", self.nets["encoder"])
        with bk.plate("data", x.shape[0]):
            loc, scale = encoder(x)
            return bk.sample("z", bk.dist.Normal(loc, scale).to_event(1))
