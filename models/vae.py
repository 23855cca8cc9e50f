"""The variational autoencoder: one model/guide pair for both backends."""
from __future__ import annotations

import dataclasses

from probvae import likelihoods, posteriors, priors
from probvae.data import Column, Table
from probvae.networks import Input
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
    posterior : str, dict or Posterior
        The family of q(z|x), a name from :mod:`probvae.posteriors` or an instance with
        settings: ``"diagonal"`` (Normal with a diagonal covariance, the default),
        ``"full_rank"`` (MultivariateNormal with an amortized Cholesky factor), ``"iaf"``
        (inverse autoregressive flow steps on the encoder's context), e.g.
        ``pv.posteriors.IAF(steps=4, hidden=(128,))``. It sets what the encoder outputs
        (``docs/posteriors.md``, ``docs/networks.md``).
    condition_dim : int, optional
        Make it the conditional VAE of Sohn et al. (2015): every example comes with a
        condition c, a vector of ``condition_dim`` floats (the batch key ``condition``: class
        labels one-hot coded with :func:`probvae.data.one_hot`, or any known covariates),
        and both the encoder q(z|x, c) and the decoder p(x|z, c) see it; p(z) stays the
        prior. ``pv.fit``, ``evaluate``, ``encode``, ``reconstruct``, ``sample``, ``decode``,
        ``synthesize`` and ``impute`` then take ``condition=`` (see ``docs/conditions.md``).
        Your own encoder then takes ``(x, c)``, your decoder ``(z, c)``. Not with the
        VampPrior, whose pseudo-inputs have no condition.
    condition_columns : tuple of Column, optional
        The table columns the condition is made of (``VAE.for_table(table, condition=[...])``
        sets it): a condition given as a DataFrame is encoded with them (one-hot levels,
        standardised numbers), and ``condition_dim`` is their width.

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
    Sohn, Lee & Yan (2015), "Learning Structured Output Representation using Deep Conditional
    Generative Models", NeurIPS (the conditional VAE).

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

    A class-conditional VAE of digits, sampled for class 3:

    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> cvae = VAE(input_dim=64, latent_dim=4, hidden=(32,), condition_dim=10)
    >>> res = pv.fit(cvae, data.train, condition=pv.data.one_hot(data.train.y, 10), epochs=1,
    ...              progress=False)
    >>> pv.sample(res, n=5, condition=pv.data.one_hot(3, 10)).shape
    (5, 64)
    """

    def __init__(self, input_dim: int = None, latent_dim: int = 8, hidden=(256, 256),
                 activation: str = "relu", prior="normal", likelihood="continuous_bernoulli",
                 backend: str = "numpyro", image_shape=None, encoder="mlp", decoder="mlp",
                 condition_dim: int = None, condition_columns=None, posterior="diagonal"):
        super().__init__(backend)
        input_dim, self.image_shape = image_input(input_dim, image_shape)
        check_int("VAE", input_dim=input_dim, latent_dim=latent_dim)
        self.input_dim, self.latent_dim = int(input_dim), int(latent_dim)
        self.hidden, self.activation = check_hidden(hidden, type(self).__name__), activation
        self.prior = priors.get(prior)
        self.likelihood = likelihoods.get(likelihood)
        self.posterior = posteriors.get(posterior)
        self.posterior.check(self.latent_dim, self.prior)
        self.encoder = architecture(encoder, self.hidden, activation, "encoder")
        self.decoder = architecture(decoder, self.hidden, activation, "decoder")
        self._set_condition(condition_dim, condition_columns)
        given = (Input("condition", self.condition_dim),) if self.condition_dim else ()
        self.encoder_spec = self.encoder.spec(
            (Input("x", self.input_dim), *given), self.posterior.heads(self.latent_dim),
            "encoder", self.image_shape)
        self.decoder_spec = self.decoder.spec((Input("z", self.latent_dim), *given),
                                              self.likelihood.heads(self.input_dim), "decoder",
                                              self.image_shape)
        check_user_networks(self)

    def _set_condition(self, condition_dim, condition_columns):
        """``condition_dim`` and ``condition_table`` checked (a table's columns give the width);
        a conditional model takes the batch key ``condition``."""
        if condition_columns is not None:
            table = Table(tuple(c if isinstance(c, Column) else Column(**c)
                                for c in condition_columns))
            if not table.columns or table.width < 1:
                raise ValueError("condition_columns needs at least one column that is not "
                                 "constant")
            if condition_dim is not None and int(condition_dim) != table.width:
                raise ValueError(f"condition_dim={condition_dim} does not match the width of "
                                 f"condition_columns ({table.width}); give one of them")
            self.condition_table, condition_dim = table, table.width
        if condition_dim is None:
            return
        check_int("VAE", condition_dim=condition_dim)
        self.condition_dim = int(condition_dim)
        self.batch_keys = ("x", "mask", "condition")
        if self.prior.needs_encoder:
            raise ValueError(f"prior {self.prior.name!r} feeds its pseudo-inputs through the "
                             "encoder, which in a conditional VAE also needs a condition they "
                             "do not have; use another prior with condition_dim (normal, "
                             "mixture, flow, ...)")

    @classmethod
    def for_table(cls, table, latent_dim: int = 4, hidden=(128, 128), condition=None,
                  **kwargs):
        """A VAE for a table's rows: its likelihood is one per column
        (:class:`~probvae.likelihoods.Columns`), and it decodes back to DataFrames.

        Parameters
        ----------
        table : Table
            From :func:`probvae.data.from_frame`.
        latent_dim, hidden, **kwargs
            As for :class:`VAE`.
        condition : list of str, optional
            Columns to condition on (a conditional VAE, Sohn et al. 2015): the model learns
            the other columns given these (one-hot for categorical columns, standardised for
            numbers), takes them from the DataFrames it is fitted and scored on, and
            ``pv.synthesize(res, n, condition=df)`` makes rows for given values of them.
            Fit it on DataFrames (``table.frames["train"]``), whose columns it picks itself.

        Examples
        --------
        >>> import pandas as pd
        >>> from probvae.data import from_frame
        >>> t = from_frame(pd.DataFrame({"a": [0.1, 2.0, 3.0, 4.5], "b": ["x", "y", "z", "x"]}),
        ...                verbose=False)
        >>> VAE.for_table(t, latent_dim=2).input_dim
        4
        >>> cvae = VAE.for_table(t, latent_dim=2, condition=["b"])
        >>> cvae.input_dim, cvae.condition_dim
        (1, 3)
        """
        if "likelihood" in kwargs:
            raise TypeError("for_table sets the likelihood from the table's columns")
        columns = tuple(table.columns)
        if condition is not None:
            names = [condition] if isinstance(condition, str) else list(condition)
            unknown = [c for c in names if c not in table.names]
            if unknown or not names:
                raise ValueError(f"condition= names columns of the table; {unknown or names} "
                                 f"are not among {table.names}")
            given = tuple(c for c in columns if c.name in names)
            columns = tuple(c for c in columns if c.name not in names)
            if sum(c.width for c in columns) < 1:
                raise ValueError("condition= leaves no column to model; condition on fewer")
            kwargs["condition_columns"] = given
        return cls(input_dim=sum(c.width for c in columns), latent_dim=latent_dim,
                   hidden=hidden, likelihood=likelihoods.Columns(columns), **kwargs)

    def latent_sites(self) -> tuple:
        """``z``, a vector of ``latent_dim``."""
        return (Site("z", (self.latent_dim,)),)

    def config(self) -> dict:
        """Constructor arguments as plain JSON-able values."""
        return {"class": "VAE", "input_dim": self.input_dim, "latent_dim": self.latent_dim,
                "hidden": list(self.hidden), "activation": self.activation,
                "prior": to_config(self.prior), "likelihood": to_config(self.likelihood),
                "backend": self.backend, **network_config(self), **self._condition_config(),
                **self._posterior_config()}

    def _posterior_config(self) -> dict:
        # the default family is left out, so configs saved before posteriors existed and
        # those of a diagonal VAE now are the same
        if isinstance(self.posterior, posteriors.Diagonal):
            return {}
        return {"posterior": to_config(self.posterior)}

    def parameter_count(self) -> int:
        """Parameters of the networks, the posterior family's own (IAF steps) included."""
        return super().parameter_count() + self.posterior.num_params(self.latent_dim)

    def check_objective(self, objective):
        """Refuse an objective the posterior family cannot train with (``mean_field`` with a
        flow posterior, which has no analytic KL)."""
        self.posterior.check_objective(objective)

    def _condition_config(self) -> dict:
        if self.condition_table is not None:
            return {"condition_columns": [dataclasses.asdict(c)
                                          for c in self.condition_table.columns]}
        return {} if self.condition_dim is None else {"condition_dim": self.condition_dim}

    def _build_nets(self, seed):
        return {"encoder": self.bk.build_network(self.encoder_spec, seed),
                "decoder": self.bk.build_network(self.decoder_spec, seed + 1),
                "prior": self.prior.build(self.bk, self.latent_dim, self.input_dim, seed + 2),
                "posterior": self.posterior.build(self.bk, self.latent_dim, seed + 3)}

    def prior_distribution(self):
        """p(z), registering the prior's parameters (call inside the model)."""
        bk = self.bk
        encoder = bk.module("encoder", self.nets["encoder"]) if self.prior.needs_encoder else None
        family = None if isinstance(self.posterior, posteriors.Diagonal) else self.posterior
        return self.prior.distribution(bk, PriorContext(self.latent_dim, self.input_dim,
                                                        self.nets["prior"], encoder,
                                                        posterior=family))

    def _given(self, condition) -> tuple:
        """The networks' extra inputs: ``(condition,)`` for a conditional VAE."""
        if self.condition_dim is None:
            return ()
        if condition is None:
            raise ValueError(f"{self.describe()} is conditional: pass condition= (one row of "
                             f"{self.condition_dim} values per example)")
        return (condition,)

    def model(self, x=None, mask=None, n=None, condition=None):
        """p(x, z) = p(z) p(x|z) (p(x|z, c) given a condition); pass ``x=None, n=N`` to
        generate N examples."""
        self._require_built()
        bk = self.bk
        decoder = bk.module("decoder", self.nets["decoder"])
        prior = self.prior_distribution()
        size = x.shape[0] if x is not None else n
        given = self._given(condition)
        with bk.plate("data", size):
            z = bk.sample("z", prior)
            return bk.sample("x", self.likelihood.distribution(bk, decoder(z, *given),
                                                               mask=mask), obs=x)

    def guide(self, x=None, mask=None, n=None, condition=None):
        """q(z|x) from the encoder network (q(z|x, c) given a condition): Normal(loc(x),
        scale(x)) for the diagonal posterior, else the ``posterior`` family's distribution."""
        self._require_built()
        bk = self.bk
        encoder = bk.module("encoder", self.nets["encoder"])
        given = self._given(condition)
        with bk.plate("data", x.shape[0]):
            outputs = encoder(x, *given)
            return bk.sample("z", self.posterior.distribution(bk, outputs,
                                                              self.nets["posterior"]))
