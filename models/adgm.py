"""M2 with an auxiliary latent variable: the ADGM and SDGM of Maaløe et al. (2016)."""
from __future__ import annotations

from probvae.networks import MLP, Head, Input, gaussian_heads
from probvae.registry import check_int

from .base import register_model
from .contract import Site
from .ssvae import SSVAE

__all__ = ["ADGM"]


@register_model
class ADGM(SSVAE):
    """Auxiliary deep generative model: M2 (:class:`SSVAE`) with an auxiliary Gaussian latent ``a``.

    The guide is q(a|x) q(y|a, x) q(z|a, y, x): the classifier and the encoder also see a draw
    of ``a``, which makes the approximate posterior (and the classifier) more expressive than
    M2's. The generative model adds ``a`` so that the bound stays a bound:

    * ``skip=False`` (ADGM): p(y) p(z) p(x|y, z) p(a|x, y, z);
    * ``skip=True`` (SDGM, the "skip deep generative model"): p(y) p(z) p(a|y, z) p(x|a, y, z),
      where ``a`` is part of the generative path too.

    Unlabelled batches sum ``y`` out by parallel enumeration (``objective="enum"``, the
    default); labelled batches observe it, and the auxiliary term ``alpha * log q(y|a, x)``
    trains the classifier on them. Everything else (priors, likelihoods, conv networks,
    ``predict``, ``encode``, ``sample(y=...)``) works as for :class:`SSVAE`.

    Parameters
    ----------
    aux_dim : int
        Size of the auxiliary latent ``a``.
    skip : bool
        ``False``: ADGM; ``True``: SDGM.
    input_dim, num_classes, latent_dim, hidden, activation, prior, likelihood
        As for :class:`SSVAE`.
    alpha, backend, image_shape, encoder, decoder
        As for :class:`SSVAE`. The networks that read ``x`` (q(a|x), the classifier, the
        encoder and ADGM's p(a|x, y, z)) use the encoder's architecture; SDGM's p(a|y, z) is an
        MLP of the ``hidden`` widths.

    Notes
    -----
    Sites: as for :class:`SSVAE`, plus ``"a"`` (a latent in model and guide, inside the data
    plate). ``predict(res, x)`` (the classifier) uses q(y|a, x) at the mean of q(a|x), one
    network pass; ``method="model"`` (Bayes' rule) importance-samples ``a`` and ``z`` together.

    References
    ----------
    Maaløe, Sønderby, Sønderby & Winther (2016), "Auxiliary Deep Generative Models", ICML.

    Examples
    --------
    >>> m = ADGM(input_dim=64, num_classes=10, latent_dim=4, aux_dim=4, hidden=(32,))
    >>> m.aux_dim, m.skip, m.config()["class"]
    (4, False, 'ADGM')
    """

    def __init__(self, input_dim: int = None, num_classes: int = 10, latent_dim: int = 32,
                 aux_dim: int = 32, skip: bool = False, hidden=(512,), activation: str = "relu",
                 prior="normal", likelihood="continuous_bernoulli", alpha: float = 50.0,
                 backend: str = "numpyro", image_shape=None, encoder="mlp", decoder="mlp"):
        check_int("ADGM", aux_dim=aux_dim)
        if not isinstance(skip, bool):
            raise ValueError(f"ADGM takes skip=True (SDGM) or skip=False (ADGM), got {skip!r}")
        self.aux_dim, self.skip = int(aux_dim), skip
        super().__init__(input_dim=input_dim, num_classes=num_classes, latent_dim=latent_dim,
                         hidden=hidden, activation=activation, prior=prior,
                         likelihood=likelihood, alpha=alpha, backend=backend,
                         image_shape=image_shape, encoder=encoder, decoder=decoder)

    def _make_specs(self):
        """q(a|x), q(y|a, x), q(z|a, y, x); p(x|y, z[, a]) and p(a|x, y, z) or p(a|y, z)."""
        x_in, y_in = Input("x", self.input_dim), Input("y", self.num_classes, "one_hot")
        a_in, z_in = Input("a", self.aux_dim), Input("z", self.latent_dim)
        shape, enc = self.image_shape, self.encoder
        self.aux_encoder_spec = enc.spec((x_in,), gaussian_heads(self.aux_dim), "encoder", shape)
        self.classifier_spec = enc.spec((x_in, a_in), (Head("logits", self.num_classes),),
                                        "encoder", shape)
        self.encoder_spec = enc.spec((x_in, a_in, y_in), gaussian_heads(self.latent_dim),
                                     "encoder", shape)
        if self.skip:
            self.aux_decoder_spec = MLP(self.hidden, self.activation).spec(
                (z_in, y_in), gaussian_heads(self.aux_dim), "decoder")
            decoder_inputs = (z_in, y_in, a_in)
        else:
            self.aux_decoder_spec = enc.spec((x_in, y_in, z_in), gaussian_heads(self.aux_dim),
                                             "encoder", shape)
            decoder_inputs = (z_in, y_in)
        self.decoder_spec = self.decoder.spec(decoder_inputs, self.likelihood.heads(self.input_dim),
                                              "decoder", shape)

    @property
    def display_name(self) -> str:
        """``"SDGM"`` with the skip connection, else ``"ADGM"`` (progress bars, messages)."""
        return "SDGM" if self.skip else "ADGM"

    principal_latent = "z"

    def latent_sites(self) -> tuple:
        """The auxiliary ``a``, the label ``y`` (discrete) and ``z``, in the guide's order."""
        return (Site("a", (self.aux_dim,)),
                Site("y", (), discrete=True, num_values=self.num_classes),
                Site("z", (self.latent_dim,)))

    def config(self) -> dict:
        """Constructor arguments as plain JSON-able values."""
        return {**super().config(), "class": "ADGM", "aux_dim": self.aux_dim, "skip": self.skip}

    def _build_nets(self, seed):
        nets = super()._build_nets(seed)
        nets["aux_encoder"] = self.bk.build_network(self.aux_encoder_spec, seed + 4)
        nets["aux_decoder"] = self.bk.build_network(self.aux_decoder_spec, seed + 5)
        return nets

    def _aux_posterior(self, x):
        """q(a|x) as a distribution (call inside model or guide)."""
        bk = self.bk
        loc, scale = bk.module("aux_encoder", self.nets["aux_encoder"])(x)
        return bk.dist.Normal(loc, scale).to_event(1)

    def classify(self, x, a=None):
        """q(y|a, x) as a distribution over the classes; without ``a``, at the mean of q(a|x)
        (what ``pv.predict`` uses)."""
        bk = self.bk
        if a is None:
            a = self._aux_posterior(x).mean
        return bk.dist.Categorical(logits=bk.module("classifier", self.nets["classifier"])(x, a)[0])

    def _encoder_inputs(self, u):
        """The encoder's inputs for pseudo-inputs ``u`` (VampPrior): ``u``, the mean of
        q(a|u) and the classifier's class probabilities there."""
        a = self._aux_posterior(u).mean
        return u, a, self.classify(u, a).probs

    def model(self, x=None, y=None, mask=None, n=None):
        """p(x, y, z, a); ``y`` observed when given, else a latent summed out by the objective."""
        self._require_built()
        bk = self.bk
        decoder = bk.module("decoder", self.nets["decoder"])
        aux_decoder = bk.module("aux_decoder", self.nets["aux_decoder"])
        prior = self.prior_distribution()
        size = x.shape[0] if x is not None else n
        y_prior = bk.dist.Categorical(logits=bk.asarray(self.nets["y_logits"]))
        with bk.plate("data", size):
            y_obs = y
            y = bk.sample("y", y_prior, obs=y_obs)
            z = bk.sample("z", prior)
            if self.skip:
                a = bk.sample("a", bk.dist.Normal(*aux_decoder(z, y)).to_event(1))
                out = bk.sample("x", self.likelihood.distribution(bk, decoder(z, y, a), mask=mask),
                                obs=x)
            else:
                out = bk.sample("x", self.likelihood.distribution(bk, decoder(z, y), mask=mask),
                                obs=x)
                a = bk.sample("a", bk.dist.Normal(*aux_decoder(out, y, z)).to_event(1))
            if y_obs is not None and x is not None and self.alpha > 0:
                with bk.scale(self.alpha):
                    bk.sample("y_aux", self.classify(x, a), obs=y_obs)
        return out

    def guide(self, x=None, y=None, mask=None, n=None):
        """q(a|x) q(y|a, x) q(z|a, y, x); ``y`` is enumerated in parallel when not given."""
        self._require_built()
        bk = self.bk
        encoder = bk.module("encoder", self.nets["encoder"])
        with bk.plate("data", x.shape[0]):
            a = bk.sample("a", self._aux_posterior(x))
            if y is None:
                y = bk.sample("y", self.classify(x, a), infer={"enumerate": "parallel"})
            loc, scale = encoder(x, a, y)
            return bk.sample("z", bk.dist.Normal(loc, scale).to_event(1))
