"""The hierarchical VAE: several stochastic layers, one model/guide pair for both backends."""
from __future__ import annotations

import numbers

from probvae import likelihoods, priors
from probvae.networks import MLP, Input, gaussian_heads
from probvae.priors import PriorContext
from probvae.registry import check_int, to_config

from .base import (Model, architecture, check_hidden, check_user_networks, image_input,
                   network_config, register_model)
from .contract import Site

__all__ = ["HVAE"]


def _latent_dims(latent_dims) -> tuple:
    """``latent_dims`` as a tuple of at least two sizes, bottom (next to x) first."""
    if isinstance(latent_dims, (numbers.Number, str)) or len(tuple(latent_dims)) < 2:
        raise ValueError("HVAE takes latent_dims, the sizes of its stochastic layers from the "
                         "one next to x to the top, at least two: e.g. latent_dims=(32, 16); "
                         f"got {latent_dims!r} (for one layer use pv.models.VAE)")
    dims = tuple(latent_dims)
    check_int("HVAE", **{f"latent_dims[{i}]": d for i, d in enumerate(dims)})
    return tuple(int(d) for d in dims)


def _latent_hidden(latent_hidden, links: int) -> tuple:
    """One tuple of hidden widths per link between adjacent latent layers: ``latent_hidden``
    is one tuple of widths for every link, or a sequence of ``links`` such tuples."""
    items = tuple(latent_hidden) if not isinstance(latent_hidden, (numbers.Number, str)) else ()
    if items and all(not isinstance(w, (numbers.Number, str)) for w in items):
        if len(items) != links:
            raise ValueError(f"latent_hidden takes one tuple of widths for every link between "
                             f"latent layers, or {links} of them (one per link), got "
                             f"{latent_hidden!r}")
        return tuple(check_hidden(w, "HVAE's latent_hidden") for w in items)
    return (check_hidden(latent_hidden, "HVAE's latent_hidden"),) * links


@register_model
class HVAE(Model):
    """A hierarchical VAE with ``L >= 2`` Gaussian stochastic layers ``z1`` (next to x) ... ``zL``.

    The two-layer model of Burda et al. (2016), for any number of layers:

    * generative, top-down: p(zL) p(z{L-1}|zL) ... p(z1|z2) p(x|z1), where p(zL) is any prior
      of :mod:`probvae.priors` (the VampPrior too) and each p(z{l}|z{l+1}) a diagonal Gaussian
      from an MLP;
    * recognition, bottom-up: q(z1|x) q(z2|z1) ... q(zL|z{L-1}), each a diagonal Gaussian.

    Train it with ``objective="elbo"``, ``"iwae"`` (Burda et al.'s two-layer IWAE), ``"dreg"``,
    ``"beta"`` (its KL weight scales every layer) or ``"renyi"``. ``"mean_field"`` is refused:
    its closed-form KL terms assume the guide samples the latents in the model's order, and
    this guide runs the other way.

    Parameters
    ----------
    input_dim : int
        Number of features of x (may be left out when ``image_shape`` is given).
    latent_dims : tuple of int
        Sizes of the stochastic layers, from ``z1`` (next to x) to the top ``zL``. Burda et
        al.'s MNIST model is ``(100, 50)``.
    hidden : tuple of int
        Hidden widths of the networks next to x: the MLP encoder q(z1|x) and, reversed, the
        MLP decoder p(x|z1). Burda et al.: ``(200, 200)``.
    latent_hidden : tuple of int, or one tuple per link
        Hidden widths of the MLPs between adjacent latent layers, q(z{l+1}|z{l}) and (reversed)
        p(z{l}|z{l+1}): one tuple for every link, or ``L - 1`` tuples, the first for the link
        z1-z2. Burda et al.: ``(100, 100)``.
    activation : str
        Hidden activation of every network (Burda et al. use ``"tanh"``).
    prior : str, dict or Prior
        The top layer's prior p(zL), by name or instance. The VampPrior (``"vamp"``) is the
        recognition path's q(zL|u) at learned pseudo-inputs u, through the means of the layers
        below: u -> E q(z1|u) -> ... -> q(zL|E z{L-1}).
    likelihood : str, dict or Likelihood
        p(x|z1), a name from :mod:`probvae.likelihoods` or an instance.
    backend : {"numpyro", "pyro"}
    image_shape : tuple, optional
        As for :class:`~probvae.models.VAE`.
    encoder, decoder : "mlp", "conv", dict, architecture or module
        The networks next to x, q(z1|x) and p(x|z1), as for :class:`~probvae.models.VAE` (your
        own module included: the encoder returns ``(loc, scale)`` of z1). The links between
        latent layers are MLPs of ``latent_hidden``.

    Notes
    -----
    Sites: plate ``"data"`` over examples; latents ``"z1"`` ... ``"zL"`` (event dim 1), which
    the model samples top-down (``zL`` first) and the guide bottom-up (``z1`` first: the
    contract's order); observed ``"x"``. ``pv.encode(res, data)`` gives
    ``{"z1": ..., "zL": ...}``, ``pv.encode(res, data, site="z2")`` one layer; decode and
    traverse move ``z1`` unless told another site; ``pv.sample`` draws top-down.

    Tomczak & Welling's (2018) HVAE infers top-down instead, q(z2|x) q(z1|x, z2) with
    p(z1|z2); it is not built here (this is Burda et al.'s bottom-up variant), and their
    VampPrior on the top layer is available as ``prior="vamp"``.

    References
    ----------
    Burda, Grosse & Salakhutdinov (2016), "Importance Weighted Autoencoders", ICLR.
    Tomczak & Welling (2018), "VAE with a VampPrior", AISTATS.

    Examples
    --------
    >>> hvae = HVAE(input_dim=64, latent_dims=(8, 4), hidden=(64,), latent_hidden=(32,),
    ...             prior="vamp")
    >>> hvae.contract.latent_names, hvae.prior.name
    (('z1', 'z2'), 'vamp')
    >>> HVAE(input_dim=64, latent_dims=(8, 4, 2), latent_hidden=((32,), (16,))).latent_hidden
    ((32,), (16,))
    """

    def __init__(self, input_dim: int = None, latent_dims=(32, 16), hidden=(256, 256),
                 latent_hidden=(128, 128), activation: str = "relu", prior="normal",
                 likelihood="continuous_bernoulli", backend: str = "numpyro", image_shape=None,
                 encoder="mlp", decoder="mlp"):
        super().__init__(backend)
        input_dim, self.image_shape = image_input(input_dim, image_shape)
        check_int("HVAE", input_dim=input_dim)
        self.input_dim = int(input_dim)
        self.latent_dims = _latent_dims(latent_dims)
        self.hidden, self.activation = check_hidden(hidden, "HVAE"), activation
        self.latent_hidden = _latent_hidden(latent_hidden, len(self.latent_dims) - 1)
        self.prior = priors.get(prior)
        self.likelihood = likelihoods.get(likelihood)
        self.encoder = architecture(encoder, self.hidden, activation, "encoder")
        self.decoder = architecture(decoder, self.hidden, activation, "decoder")
        self.encoder_spec = self.encoder.spec(
            (Input("x", self.input_dim),), gaussian_heads(self.latent_dims[0]), "encoder",
            self.image_shape)
        self.decoder_spec = self.decoder.spec((Input("z1", self.latent_dims[0]),),
                                              self.likelihood.heads(self.input_dim), "decoder",
                                              self.image_shape)
        # the links: q(z{l+1}|z{l}) and p(z{l}|z{l+1}), one spec attribute each (so that
        # parameter counts and memory estimates see them)
        for level, widths in enumerate(self.latent_hidden, start=1):
            below, above = self.latent_dims[level - 1], self.latent_dims[level]
            mlp = MLP(hidden=widths, activation=activation)
            setattr(self, f"{self._up(level)}_spec", mlp.spec(
                (Input(f"z{level}", below),), gaussian_heads(above), "encoder"))
            setattr(self, f"{self._down(level)}_spec", mlp.spec(
                (Input(f"z{level + 1}", above),), gaussian_heads(below), "decoder"))
        check_user_networks(self)

    @staticmethod
    def _up(level: int) -> str:
        """The network of q(z{level+1} | z{level})."""
        return f"encoder_z{level + 1}"

    @staticmethod
    def _down(level: int) -> str:
        """The network of p(z{level} | z{level+1})."""
        return f"decoder_z{level}"

    @property
    def names(self) -> tuple:
        """The latent sites' names, ``("z1", ..., "zL")``, bottom (next to x) first."""
        return tuple(f"z{level}" for level in range(1, len(self.latent_dims) + 1))

    def describe(self) -> str:
        """The model's class and sizes, for messages.

        Examples
        --------
        >>> HVAE(input_dim=64, latent_dims=(8, 4)).describe()
        'HVAE(input_dim=64, latent_dims=(8, 4))'
        """
        return f"HVAE(input_dim={self.input_dim}, latent_dims={self.latent_dims})"

    #: the guide samples z1 first, the model zL first: objective 'mean_field''s closed-form
    #: KL terms would not be those of this bound
    guide_follows_model = False

    def latent_sites(self) -> tuple:
        """``z1`` ... ``zL`` in the guide's order (bottom-up), each a vector of its size."""
        return tuple(Site(name, (dim,)) for name, dim in zip(self.names, self.latent_dims))

    def config(self) -> dict:
        """Constructor arguments as plain JSON-able values."""
        return {"class": "HVAE", "input_dim": self.input_dim,
                "latent_dims": list(self.latent_dims), "hidden": list(self.hidden),
                "latent_hidden": [list(w) for w in self.latent_hidden],
                "activation": self.activation, "prior": to_config(self.prior),
                "likelihood": to_config(self.likelihood), "backend": self.backend,
                **network_config(self)}

    def _build_nets(self, seed):
        bk = self.bk
        nets = {"encoder": bk.build_network(self.encoder_spec, seed),
                "decoder": bk.build_network(self.decoder_spec, seed + 1),
                "prior": self.prior.build(bk, self.latent_dims[-1], self.input_dim, seed + 2)}
        for level in range(1, len(self.latent_dims)):
            for offset, name in ((1, self._up(level)), (2, self._down(level))):
                nets[name] = bk.build_network(getattr(self, f"{name}_spec"),
                                              seed + 2 * level + offset)
        return nets

    def _encoders(self) -> list:
        """The registered recognition networks, q(z1|x) first (call inside model or guide)."""
        bk = self.bk
        return [bk.module("encoder", self.nets["encoder"])] + [
            bk.module(self._up(level), self.nets[self._up(level)])
            for level in range(1, len(self.latent_dims))]

    def _top_encoder(self, u):
        """``(loc, scale)`` of q(zL|u) through the means of the layers below (the VampPrior's
        path for pseudo-inputs ``u``)."""
        loc = u
        for net in self._encoders():
            loc, scale = net(loc)
        return loc, scale

    def prior_distribution(self):
        """p(zL), the top layer's prior, registering its parameters (call inside the model)."""
        encoder = self._top_encoder if self.prior.needs_encoder else None
        return self.prior.distribution(self.bk, PriorContext(
            self.latent_dims[-1], self.input_dim, self.nets["prior"], encoder))

    def model(self, x=None, mask=None, n=None):
        """p(x, z1, ..., zL) = p(zL) p(z{L-1}|zL) ... p(z1|z2) p(x|z1), sampled top-down;
        pass ``x=None, n=N`` to generate N examples."""
        self._require_built()
        bk = self.bk
        decoder = bk.module("decoder", self.nets["decoder"])
        links = {level: bk.module(self._down(level), self.nets[self._down(level)])
                 for level in range(1, len(self.latent_dims))}
        prior = self.prior_distribution()
        size = x.shape[0] if x is not None else n
        with bk.plate("data", size):
            z = bk.sample(self.names[-1], prior)
            for level in range(len(self.latent_dims) - 1, 0, -1):
                loc, scale = links[level](z)
                z = bk.sample(f"z{level}", bk.dist.Normal(loc, scale).to_event(1))
            return bk.sample("x", self.likelihood.distribution(bk, decoder(z), mask=mask), obs=x)

    def guide(self, x=None, mask=None, n=None):
        """q(z1|x) q(z2|z1) ... q(zL|z{L-1}), sampled bottom-up."""
        self._require_built()
        bk = self.bk
        encoders = self._encoders()
        with bk.plate("data", x.shape[0]):
            z = x
            for name, net in zip(self.names, encoders):
                loc, scale = net(z)
                z = bk.sample(name, bk.dist.Normal(loc, scale).to_event(1))
            return z
