"""Posterior families q(z|x) of the built-in VAE, by name or instance.

Each family is a small frozen dataclass that says what the encoder outputs (``heads``), what
networks of its own it needs (``build``) and how q(z|x) is built from ``bk.dist`` and the
encoder's outputs (``distribution``), so it runs on either backend. Strings resolve through
the registry (``posterior="full_rank"``); instances carry settings
(``posterior=pv.posteriors.IAF(steps=4, hidden=(128,))``).

=============  ===========================================================================
name           q(z|x)
=============  ===========================================================================
``diagonal``   Normal(loc, diag(scale)): the encoder gives ``loc`` and ``scale``
``full_rank``  MultivariateNormal(loc, scale_tril): the encoder gives ``loc`` and a Cholesky
               factor (lower-triangular, positive diagonal)
``iaf``        inverse autoregressive flow: Normal(loc, scale) pushed through ``steps``
               affine autoregressive steps, each a MADE on z and the encoder's ``context``
=============  ===========================================================================

Examples
--------
>>> from probvae import posteriors
>>> posteriors.get("iaf", steps=3)
IAF(steps=3, hidden=(64,), context=16, activation='relu')
>>> posteriors.names()
('diagonal', 'full_rank', 'iaf')
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

from .networks import ACTIVATIONS, Head, MADESpec, gaussian_heads
from .registry import Registry, check_int, to_config

__all__ = ["Posterior", "Diagonal", "FullRank", "IAF", "get", "names", "register", "to_config"]

_REGISTRY = Registry("posterior")
register = _REGISTRY.register
names = _REGISTRY.names


def get(spec, **settings) -> "Posterior":
    """A posterior family from a name (with settings), a config dict or an instance.

    Examples
    --------
    >>> get({"name": "full_rank"})
    FullRank()
    >>> get("planar")
    Traceback (most recent call last):
    ...
    ValueError: unknown posterior 'planar'; known posteriors: diagonal, full_rank, iaf
    """
    if isinstance(spec, Posterior):
        if settings:
            raise TypeError(f"settings {sorted(settings)} can only go with a posterior name")
        return spec
    if not isinstance(spec, (str, dict, type)):
        raise TypeError(f"expected a posterior name ({', '.join(names())}) or instance, e.g. "
                        f"pv.posteriors.IAF(steps=2), got {spec!r}")
    return _REGISTRY.get(spec, **settings)


class Posterior(abc.ABC):
    """Base class of the posterior families: the encoder's output heads, the family's own
    networks, and q(z|x) from the encoder's outputs.

    A new family subclasses this, is a frozen dataclass (its settings are its fields) and is
    registered with ``@register("name")``.
    """

    name = "posterior"
    #: its KL divergence to the usual priors has a closed form (objective ``mean_field``)
    analytic_kl = True
    #: it has :meth:`mixture` (the VampPrior's components)
    mixes = True

    @abc.abstractmethod
    def heads(self, latent_dim: int) -> tuple:
        """The encoder's output heads (:class:`~probvae.networks.Head`), in order."""

    def build(self, bk, latent_dim: int, seed: int) -> dict:
        """Networks of the family's own, made once per fitted model (none by default)."""
        return {}

    def num_params(self, latent_dim: int) -> int:
        """Weights of the family's own networks (none by default)."""
        return 0

    @abc.abstractmethod
    def distribution(self, bk, outputs: tuple, nets=None, prefix: str = "posterior"):
        """q(z|x) from the encoder's ``outputs`` (one array per head), event dim 1;
        networks of ``nets`` are registered under ``prefix``."""

    def mixture(self, bk, logits, outputs: tuple):
        """The mixture of this family's distributions with ``logits`` over its components
        (``outputs`` with a leading components dim): the VampPrior."""
        raise ValueError(f"the vamp prior is a mixture of the posterior at its pseudo-inputs, "
                         f"which the {self.name!r} posterior has no closed-form density for "
                         "in a mixture: use posterior='diagonal' or 'full_rank' with vamp, or "
                         "another prior (e.g. 'mixture' or 'flow') with this posterior")

    def check(self, latent_dim: int, prior) -> None:
        """Refuse, when the model is made, a latent size or prior this family cannot take."""
        if prior.needs_encoder and not self.mixes:
            self.mixture(None, None, ())      # the error that names the fix

    def check_objective(self, objective) -> None:
        """Refuse an objective this family cannot be trained with (a ValueError naming the
        fix)."""
        if objective.kind == "mean_field" and not self.analytic_kl:
            raise ValueError(f"objective {objective.name!r} uses the analytic KL divergence, "
                             f"which the {self.name!r} posterior has none of: use "
                             "objective='elbo' (or 'iwae', 'dreg')")


@register("diagonal")
@dataclass(frozen=True)
class Diagonal(Posterior):
    """A diagonal Gaussian q(z|x) = Normal(loc(x), diag(scale(x))): the encoder's ``loc`` and
    positive ``scale`` (the usual VAE).

    Examples
    --------
    >>> from probvae.backends import get as backend
    >>> bk = backend("numpyro")
    >>> import numpy as np
    >>> Diagonal().distribution(bk, (np.zeros((5, 2), np.float32),
    ...                              np.ones((5, 2), np.float32))).event_shape
    (2,)
    """

    def heads(self, latent_dim):
        return gaussian_heads(latent_dim)

    def distribution(self, bk, outputs, nets=None, prefix="posterior"):
        loc, scale = outputs
        return bk.dist.Normal(loc, scale).to_event(1)

    def mixture(self, bk, logits, outputs):
        loc, scale = outputs
        return bk.dist.DiagonalNormalMixture(logits, loc, scale)


@register("full_rank")
@dataclass(frozen=True)
class FullRank(Posterior):
    """A full-covariance Gaussian q(z|x) = MultivariateNormal(loc(x), L(x) L(x)^T): the encoder
    gives ``loc`` and the ``latent_dim * (latent_dim + 1) / 2`` entries of a lower-triangular
    Cholesky factor ``L`` (its diagonal through softplus + 1e-4), an amortized Cholesky
    factor. q is ``bk.dist.CholeskyNormal``: a ``MultivariateNormal`` that, on NumPyro, scores
    its own draws from their noise instead of by a triangular solve.

    Examples
    --------
    >>> [(h.name, h.transform) for h in FullRank().heads(3)]
    [('loc', 'identity'), ('scale_tril', 'tril')]
    """

    def heads(self, latent_dim):
        return (Head("loc", latent_dim), Head("scale_tril", latent_dim, "tril"))

    def distribution(self, bk, outputs, nets=None, prefix="posterior"):
        loc, scale_tril = outputs
        return bk.dist.CholeskyNormal(loc, scale_tril)

    def mixture(self, bk, logits, outputs):
        loc, scale_tril = outputs
        return bk.dist.MixtureSameFamily(bk.dist.Categorical(logits=logits),
                                         bk.dist.MultivariateNormal(loc, scale_tril=scale_tril))


@register("iaf")
@dataclass(frozen=True)
class IAF(Posterior):
    """Inverse autoregressive flow q(z|x) (Kingma et al. 2016): ``z0 ~ Normal(loc, scale)``
    from the encoder, then ``steps`` affine autoregressive steps ``z <- mean + exp(log_scale)
    * z``, each ``(mean, log_scale)`` a MADE on ``z`` and the encoder's ``context`` vector,
    the order of ``z``'s dims reversed from one step to the next. log q is exact: the base
    log density minus the steps' log-scales.

    The steps are the backends' own transforms (Pyro's ``AffineAutoregressive``, NumPyro's
    ``InverseAutoregressiveTransform``, log-scale clipped to [-5, 3]); their networks are
    :class:`~probvae.networks.MADESpec` built by each backend with the same masks, so equal
    weights give equal densities on both.

    Parameters
    ----------
    steps : int
        Number of flow steps.
    hidden : tuple of int
        Hidden widths of each step's MADE.
    context : int
        Size of the context vector the encoder outputs beside ``loc`` and ``scale``.
    activation : str
        The MADEs' hidden activation.

    References
    ----------
    Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. & Welling, M. (2016).
    Improved variational inference with inverse autoregressive flow. NeurIPS.

    Examples
    --------
    >>> q = IAF(steps=2, hidden=(32,), context=8)
    >>> [h.name for h in q.heads(4)]
    ['loc', 'scale', 'context']
    """

    steps: int = 2
    hidden: tuple = (64,)
    context: int = 16
    activation: str = "relu"
    analytic_kl = False
    mixes = False

    def __post_init__(self):
        check_int("iaf", steps=self.steps, context=self.context)
        if isinstance(self.hidden, (int, float, str)) or not len(self.hidden):
            raise ValueError(f"iaf needs hidden to be a tuple of layer widths, e.g. hidden=(64,), "
                             f"got {self.hidden!r}")
        check_int("iaf", **{f"hidden[{i}]": w for i, w in enumerate(self.hidden)})
        object.__setattr__(self, "hidden", tuple(int(w) for w in self.hidden))
        object.__setattr__(self, "steps", int(self.steps))
        object.__setattr__(self, "context", int(self.context))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"iaf activation must be one of {ACTIVATIONS}, got "
                             f"{self.activation!r}")

    def heads(self, latent_dim):
        return (*gaussian_heads(latent_dim), Head("context", self.context))

    def step_specs(self, latent_dim: int) -> tuple:
        """Each step's :class:`~probvae.networks.MADESpec` (orders alternate)."""
        return tuple(MADESpec(int(latent_dim), self.context, self.hidden,
                              "forward" if i % 2 == 0 else "reverse", self.activation)
                     for i in range(self.steps))

    def build(self, bk, latent_dim, seed):
        return {"steps": [bk.build_network(spec, seed + i)
                          for i, spec in enumerate(self.step_specs(latent_dim))]}

    def distribution(self, bk, outputs, nets=None, prefix="posterior"):
        loc, scale, context = outputs
        if nets is None:
            raise ValueError("the iaf posterior needs its networks: nets = IAF().build(bk, "
                             "latent_dim, seed), built once outside the guide")
        steps = [bk.autoregressive_step(bk.module(f"{prefix}_step{i}", net), context)
                 for i, net in enumerate(nets["steps"])]
        return bk.dist.TransformedDistribution(bk.dist.Normal(loc, scale).to_event(1), steps)

    def num_params(self, latent_dim: int) -> int:
        """Weights of the steps' networks."""
        return sum(spec.num_params for spec in self.step_specs(latent_dim))
