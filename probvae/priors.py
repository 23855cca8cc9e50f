"""Priors p(z) over the latent vector, by name or instance.

Each prior is a small frozen dataclass with one method, ``distribution(bk, ctx)``, that builds
its distribution from ``bk.dist`` (so it runs on either backend). Learned parameters are
registered with ``bk.param``/``bk.module`` and trained by SVI like any other parameter.

=============  ===========================================================================
name           prior
=============  ===========================================================================
``normal``     standard Normal N(0, I)
``laplace``    standard Laplace, independent dims
``student_t``  Student-t with ``df`` degrees of freedom, independent dims
``mixture``    learned mixture of ``components`` diagonal Gaussians
``vamp``       VampPrior: the encoder applied to ``components`` learned pseudo-inputs
``flow``       learned normalizing flow (affine autoregressive layers) on N(0, I)
=============  ===========================================================================

Examples
--------
>>> from probvae import priors
>>> priors.get("student_t", df=4.0)
StudentT(df=4.0)
>>> priors.names()
('normal', 'laplace', 'student_t', 'mixture', 'vamp', 'flow')
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .registry import Registry, check_int, to_config

__all__ = ["Prior", "PriorContext", "Normal", "Laplace", "StudentT", "MixtureOfGaussians",
           "VampPrior", "Flow", "as_context", "factorised_log_prob", "unwrap", "get", "names",
           "register", "to_config"]

_REGISTRY = Registry("prior")
register = _REGISTRY.register
get = _REGISTRY.get
names = _REGISTRY.names


@dataclass
class PriorContext:
    """What a prior may use when it builds its distribution inside a model.

    Parameters
    ----------
    latent_dim, input_dim : int
    nets : dict
        Whatever the prior's ``build`` returned (networks, NumPy initial values).
    encoder : callable, optional
        The model's registered encoder (``x -> (loc, scale)``), for priors with
        ``needs_encoder`` (the VampPrior).
    prefix : str
        Names the prior's learned parameters (``f"{prefix}_loc"``, ...), so two priors in one
        model never share them.
    posterior : Posterior, optional
        The model's posterior family (:mod:`probvae.posteriors`) when its encoder gives more
        than a diagonal Gaussian's ``(loc, scale)``: the VampPrior mixes that family.
    """

    latent_dim: int
    input_dim: int = 0
    nets: Optional[dict] = None
    encoder: Optional[Callable] = None
    prefix: str = "prior"
    posterior: Optional[object] = None


def as_context(ctx) -> PriorContext:
    """Accept a :class:`PriorContext` or just the latent size (for a user's own model).

    Examples
    --------
    >>> as_context(4).latent_dim
    4
    """
    if isinstance(ctx, PriorContext):
        return ctx
    if isinstance(ctx, int):
        return PriorContext(latent_dim=ctx)
    raise TypeError(f"expected a PriorContext or an int latent_dim, got {type(ctx)}")


def unwrap(bk, fn):
    """``fn`` without the expand/mask wrappers that plates and masks put around it.

    Examples
    --------
    >>> from probvae.backends import get
    >>> bk = get("numpyro")
    >>> type(unwrap(bk, bk.dist.Normal(0.0, 1.0).expand([3]).mask(True))).__name__
    'Normal'
    """
    while isinstance(fn, (bk.dist.ExpandedDistribution, bk.dist.MaskedDistribution)):
        fn = fn.base_dist
    return fn


def factorised_log_prob(bk, fn, value):
    """Per-dimension log density of a factorised distribution over the last dim (an
    ``Independent`` of one-dimensional components, as ``.to_event(1)`` makes), else ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> from probvae.backends import get
    >>> bk = get("numpyro")
    >>> d = bk.dist.Normal(0.0, 1.0).expand([2]).to_event(1)
    >>> [round(float(v), 3) for v in factorised_log_prob(bk, d, bk.asarray([0.0, 1.0]))]
    [-0.919, -1.419]
    """
    fn = unwrap(bk, fn)
    if isinstance(fn, bk.dist.Independent) and fn.reinterpreted_batch_ndims == 1:
        return unwrap(bk, fn.base_dist).log_prob(value)
    return None


class Prior(abc.ABC):
    """Base class: override ``distribution``; override ``build`` to create networks once.

    In a user's own model, ``prior.distribution(bk, latent_dim)`` is enough for priors without
    learned networks; for ``vamp`` and ``flow`` call ``nets = prior.build(...)`` once outside the
    model and pass ``PriorContext(latent_dim, input_dim, nets, encoder)``.

    ``marginal_log_prob`` gives the per-dimension log densities that per-dim KL figures use;
    the default covers every factorised prior, and a prior whose dims are not independent
    overrides it (the mixtures) or returns ``None`` (flows: no closed form).
    """

    name = "prior"
    #: the model must pass its encoder in the context (VampPrior)
    needs_encoder = False

    def build(self, bk, latent_dim: int, input_dim: int, seed: int) -> dict:
        """Create what must exist once per fitted model (networks, initial values)."""
        return {}

    @abc.abstractmethod
    def distribution(self, bk, ctx: PriorContext):
        """p(z) built from ``bk.dist`` (registering any learned parameters)."""

    def marginal_log_prob(self, bk, fn, value):
        """log p(z_d) per latent dim for ``fn = self.distribution(...)``, shape ``(..., D)``;
        ``None`` when the marginals have no closed form."""
        return factorised_log_prob(bk, fn, value)


def _standard(bk, family, latent_dim, **kwargs):
    return family(loc=0.0, scale=1.0, **kwargs).expand([latent_dim]).to_event(1)


@register("normal")
@dataclass(frozen=True)
class Normal(Prior):
    """Standard Normal prior N(0, I).

    Examples
    --------
    >>> from probvae.backends import get
    >>> Normal().distribution(get("numpyro"), PriorContext(latent_dim=3)).event_shape
    (3,)
    """

    def distribution(self, bk, ctx):
        return _standard(bk, bk.dist.Normal, as_context(ctx).latent_dim)


@register("laplace")
@dataclass(frozen=True)
class Laplace(Prior):
    """Standard Laplace prior (independent dims, unit scale): sparser codes than a Normal.

    Examples
    --------
    >>> from probvae.backends import get
    >>> Laplace().distribution(get("numpyro"), PriorContext(latent_dim=3)).event_shape
    (3,)
    """

    def distribution(self, bk, ctx):
        return _standard(bk, bk.dist.Laplace, as_context(ctx).latent_dim)


@register("student_t")
@dataclass(frozen=True)
class StudentT(Prior):
    """Student-t prior with ``df`` degrees of freedom (heavy tails), independent dims.

    Examples
    --------
    >>> from probvae.backends import get
    >>> StudentT(df=3.0).distribution(get("numpyro"), PriorContext(latent_dim=2)).event_shape
    (2,)
    """

    df: float = 5.0

    def __post_init__(self):
        if not self.df > 0:
            raise ValueError(f"student_t needs df > 0, got {self.df}")

    def distribution(self, bk, ctx):
        latent_dim = as_context(ctx).latent_dim
        return bk.dist.StudentT(float(self.df), 0.0, 1.0).expand([latent_dim]).to_event(1)


def _mixture(bk, logits, loc, scale):
    # MixtureSameFamily whose log-density is two matmuls (a (batch, K, D) array otherwise)
    return bk.dist.DiagonalNormalMixture(logits, loc, scale)


class _GaussianMixture(Prior):
    """Priors that are mixtures of diagonal Gaussians: each dim's marginal is a 1-D mixture."""

    def marginal_log_prob(self, bk, fn, value):
        fn = unwrap(bk, fn)
        comp = unwrap(bk, unwrap(bk, fn.component_distribution).base_dist)
        lp = comp.log_prob(value[..., None, :])                     # (..., K, D)
        lp = lp + bk.log_softmax(bk.mixture_logits(fn))[..., None]
        return bk.logsumexp(lp, axis=-2)


@register("mixture")
@dataclass(frozen=True)
class MixtureOfGaussians(_GaussianMixture):
    """Learned mixture of ``components`` diagonal Gaussians (weights, means and scales learned).

    Examples
    --------
    >>> MixtureOfGaussians(components=10).components
    10
    """

    components: int = 10

    def __post_init__(self):
        check_int("mixture", components=self.components)

    def build(self, bk, latent_dim, input_dim, seed):
        rng = np.random.default_rng(seed)
        return {"loc": rng.normal(size=(self.components, latent_dim)).astype(np.float32)}

    def distribution(self, bk, ctx):
        ctx = as_context(ctx)
        k, d = self.components, ctx.latent_dim
        nets = ctx.nets or self.build(bk, d, ctx.input_dim, 0)
        logits = bk.param(f"{ctx.prefix}_logits", np.zeros(k, np.float32))
        loc = bk.param(f"{ctx.prefix}_loc", nets["loc"])
        scale = bk.param(f"{ctx.prefix}_scale", np.ones((k, d), np.float32),
                         constraint=bk.constraints.positive)
        return _mixture(bk, logits, loc, scale)


@register("vamp")
@dataclass(frozen=True)
class VampPrior(_GaussianMixture):
    """VampPrior: an equal-weight mixture of the encoder's posteriors at learned pseudo-inputs.

    References
    ----------
    Tomczak & Welling (2018), "VAE with a VampPrior", AISTATS.

    Examples
    --------
    >>> VampPrior(components=50).components
    50
    """

    components: int = 50
    needs_encoder = True

    def __post_init__(self):
        check_int("vamp", components=self.components)

    def build(self, bk, latent_dim, input_dim, seed):
        if not input_dim:
            raise ValueError("the vamp prior needs the model's input_dim and encoder")
        rng = np.random.default_rng(seed)
        u = rng.uniform(0.3, 0.7, size=(self.components, input_dim)).astype(np.float32)
        return {"pseudo_inputs": u}

    def distribution(self, bk, ctx):
        if ctx.encoder is None:
            raise ValueError("the vamp prior needs the model to pass its encoder in the context")
        u = bk.param(f"{ctx.prefix}_pseudo_inputs", ctx.nets["pseudo_inputs"])
        if ctx.posterior is not None:       # the encoder gives another family's outputs
            return ctx.posterior.mixture(bk, bk.asarray(np.zeros(self.components, np.float32)),
                                         ctx.encoder(u))
        loc, scale = ctx.encoder(u)
        return _mixture(bk, bk.asarray(np.zeros(self.components, np.float32)), loc, scale)


@register("flow")
@dataclass(frozen=True)
class Flow(Prior):
    """A learned normalizing-flow prior: ``layers`` affine autoregressive transforms of N(0, I).

    Built from the backend's own flows (Pyro's ``AffineAutoregressive``, NumPyro's
    ``InverseAutoregressiveTransform``), with a dimension flip between layers.

    References
    ----------
    Kingma et al. (2016), "Improved Variational Inference with Inverse Autoregressive Flow".

    Examples
    --------
    >>> Flow(layers=2, hidden=32).layers
    2
    """

    layers: int = 2
    hidden: int = 64

    def __post_init__(self):
        check_int("flow", layers=self.layers, hidden=self.hidden)

    def build(self, bk, latent_dim, input_dim, seed):
        if latent_dim < 2:
            raise ValueError("the flow prior needs latent_dim >= 2 (autoregressive layers)")
        return {"flow": bk.build_flow(latent_dim, self.hidden, self.layers, seed)}

    def distribution(self, bk, ctx):
        base = _standard(bk, bk.dist.Normal, ctx.latent_dim)
        layers = bk.flow_transforms(f"{ctx.prefix}_flow", ctx.nets["flow"])
        return bk.dist.TransformedDistribution(base, layers)
