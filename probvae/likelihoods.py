"""Likelihoods p(x|z) by name or instance.

A likelihood says which output heads the decoder needs (``heads``), builds the observation
distribution from ``bk.dist`` (``distribution``), and checks data against its support once,
before training (``check``), so bad data fails with a clear message instead of a NaN loss.

=========================  ====================  ======================================
name                       data                  decoder heads
=========================  ====================  ======================================
``bernoulli``              binary {0, 1}         logits
``continuous_bernoulli``   [0, 1]                logits
``gaussian``               real                  loc (scale fixed or learned per dim)
``laplace``                real                  loc (scale fixed or learned per dim)
``beta``                   [0, 1] (clipped)      two concentrations
``poisson``                counts 0, 1, 2, ...   rate
``negative_binomial``      counts 0, 1, 2, ...   total_count, logits
=========================  ====================  ======================================

Examples
--------
>>> from probvae import likelihoods
>>> likelihoods.get("gaussian", scale=0.1)
Gaussian(scale=0.1, min_scale=0.01)
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .networks import Head
from .registry import Registry, to_config

__all__ = ["Likelihood", "Bernoulli", "ContinuousBernoulli", "Gaussian", "Laplace", "Beta",
           "Poisson", "NegativeBinomial", "get", "names", "register", "to_config"]

_REGISTRY = Registry("likelihood")
register = _REGISTRY.register
get = _REGISTRY.get
names = _REGISTRY.names


def _examples(x, bad):
    vals = np.unique(x[bad])[:3]
    return ", ".join(f"{v:g}" for v in vals)


class Likelihood(abc.ABC):
    """Base class: a subclass sets ``heads`` and ``base``; masks and event dims live here.

    ``base(bk, params, prefix)`` builds one distribution per feature (batch shape ``(..., D)``);
    :meth:`distribution` applies the mask of observed cells and makes the feature dim the
    event, so every likelihood scores data with missing values without code of its own: a
    masked cell adds exactly nothing to the log density (nor to its gradient). ``check``
    guards the support once, before training, and gives missing cells the value :attr:`fill`
    (what the encoder sees there: a value in the support, documented per likelihood).
    """

    name = "likelihood"
    support = "real"
    #: the value a missing cell is given before it reaches the encoder (inside the support)
    fill = 0.0

    def heads(self, dim: int) -> tuple:
        return (Head("loc", dim),)

    @abc.abstractmethod
    def base(self, bk, params, prefix: str = "likelihood"):
        """One distribution per feature from the decoder's outputs ``params`` (one array per
        head); learned parameters are registered as ``f"{prefix}_..."``."""

    def distribution(self, bk, params, mask=None, prefix: str = "likelihood"):
        """p(x|z) with features as the event dim; cells where ``mask`` is False are left out.

        Parameters
        ----------
        bk : backend namespace
        params : tuple of arrays
            The decoder's outputs, one per head.
        mask : bool array (..., D), optional
            True where x is observed.
        prefix : str
            Names this instance's learned parameters, so two likelihoods in one model (on
            different sites) never share them.

        Examples
        --------
        >>> import numpy as np
        >>> from probvae.backends import get
        >>> bk = get("numpyro")
        >>> d = Gaussian(scale=1.0).distribution(bk, (bk.asarray(np.zeros((2, 3))),),
        ...                                       mask=bk.asarray_bool([[1, 1, 0], [1, 0, 0]]))
        >>> [round(float(v), 3) for v in d.log_prob(bk.asarray(np.zeros((2, 3))))]
        [-1.838, -0.919]
        """
        d = self.base(bk, params, prefix)
        if mask is not None:
            d = d.mask(mask)
        return d.to_event(1)

    def check(self, x: np.ndarray, mask=None) -> np.ndarray:
        """Validate ``x`` against the support; return the array to train on (float32).

        With ``mask`` (True where observed), only observed cells are checked and missing
        cells get :attr:`fill`; without it any NaN is an error that names the fix.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"x must be 2-D (examples, features), got shape {x.shape}")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != x.shape:
                raise ValueError(f"mask has shape {mask.shape} but x has {x.shape}")
            x = np.where(mask, x, np.float32(self.fill))
        n_bad = int((~np.isfinite(x)).sum())
        if n_bad:
            raise ValueError(
                f"x has {n_bad} NaN/inf values; to leave missing cells out of the bound pass "
                f"missing='mask' (pv.fit(..., missing='mask')), or impute or drop those rows "
                f"first")
        return self._check_support(x)

    def _check_support(self, x):
        return x


class _UnitInterval(Likelihood):
    support = "[0, 1]"

    def _check_support(self, x):
        bad = (x < 0) | (x > 1)
        if bad.any():
            raise ValueError(
                f"likelihood {self.name!r} needs values in [0, 1], but x has {int(bad.sum())} "
                f"outside (e.g. {_examples(x, bad)}); rescale the data to [0, 1] "
                f"(e.g. x / x.max()) or use likelihood='gaussian'")
        return x


@register("bernoulli")
@dataclass(frozen=True)
class Bernoulli(Likelihood):
    """Bernoulli pixels, for binary data: decoder gives logits.

    Examples
    --------
    >>> Bernoulli().check(np.array([[0.0, 1.0]])).dtype
    dtype('float32')
    """

    support = "{0, 1}"

    def heads(self, dim):
        return (Head("logits", dim),)

    def base(self, bk, params, prefix="likelihood"):
        return bk.dist.Bernoulli(logits=params[0])

    def _check_support(self, x):
        bad = (x != 0) & (x != 1)
        if bad.any():
            raise ValueError(
                f"likelihood 'bernoulli' needs binary data (0 or 1), but x has {int(bad.sum())} "
                f"other values (e.g. {_examples(x, bad)}); binarize first (split.binarize(), or "
                f"split.binarize(stochastic=True) for a model fitted with binarize='dynamic'), "
                f"train with fit(..., binarize='dynamic'), or use "
                f"likelihood='continuous_bernoulli' for values in [0, 1]")
        return x


@register("continuous_bernoulli")
@dataclass(frozen=True)
class ContinuousBernoulli(_UnitInterval):
    """Continuous Bernoulli: the properly normalised density for data in [0, 1].

    Parameters
    ----------
    max_logit : float
        The decoder's logits are squashed into ``[-max_logit, max_logit]``. The density at
        x = 0 grows without bound as the logit goes to -inf, so pixels that are always 0 (the
        borders of digits) would otherwise collect ever more "likelihood" and dominate the
        score. torch's own implementation clamps at about +-15.9 in float32; 15 keeps both
        backends computing the same exact density.

    References
    ----------
    Loaiza-Ganem & Cunningham (2019), "The continuous Bernoulli: fixing a pervasive error in
    variational autoencoders", NeurIPS.

    Examples
    --------
    >>> ContinuousBernoulli().heads(4)[0].bound
    15.0
    """

    max_logit: float = 15.0

    def __post_init__(self):
        if not self.max_logit > 0:
            raise ValueError(f"continuous_bernoulli needs max_logit > 0, got {self.max_logit}")

    def heads(self, dim):
        return (Head("logits", dim, "bounded", bound=float(self.max_logit)),)

    def base(self, bk, params, prefix="likelihood"):
        return bk.dist.ContinuousBernoulli(logits=params[0])


class _LocScale(Likelihood):
    """Shared by Gaussian and Laplace: ``scale=None`` learns one scale per feature."""

    family = "Normal"

    def __post_init__(self):
        if self.scale is not None and not self.scale > 0:
            raise ValueError(f"{self.name} needs scale > 0 or None (learned), got {self.scale}")
        if not self.min_scale > 0:
            raise ValueError(f"{self.name} needs min_scale > 0, got {self.min_scale}")

    def base(self, bk, params, prefix="likelihood"):
        loc = params[0]
        if self.scale is None:
            scale = bk.param(f"{prefix}_scale", np.ones(loc.shape[-1], np.float32),
                             constraint=bk.constraints.greater_than(float(self.min_scale)))
        else:
            scale = float(self.scale)
        return getattr(bk.dist, self.family)(loc, scale)


@register("gaussian")
@dataclass(frozen=True)
class Gaussian(_LocScale):
    """Gaussian observations around the decoder's mean.

    Parameters
    ----------
    scale : float or None
        Fixed observation scale, or ``None`` to learn one scale per feature.
    min_scale : float
        Floor of a learned scale (constant features would otherwise drive it to zero).

    Examples
    --------
    >>> Gaussian(scale=None).scale is None
    True
    """

    scale: Optional[float] = None
    min_scale: float = 0.01
    family = "Normal"


@register("laplace")
@dataclass(frozen=True)
class Laplace(_LocScale):
    """Laplace observations around the decoder's location (robust to outlying pixels).

    Examples
    --------
    >>> Laplace(scale=0.1).scale
    0.1
    """

    scale: Optional[float] = None
    min_scale: float = 0.01
    family = "Laplace"


@register("beta")
@dataclass(frozen=True)
class Beta(_UnitInterval):
    """Beta observations; values are clipped into ``[eps, 1 - eps]`` since 0 and 1 lie outside.

    Examples
    --------
    >>> round(float(Beta(eps=1e-3).check(np.array([[0.0, 1.0]])).max()), 6)
    0.999
    """

    eps: float = 1e-3
    fill = 0.5

    def __post_init__(self):
        if not 0 < self.eps < 0.5:
            raise ValueError(f"beta needs 0 < eps < 0.5, got {self.eps}")

    def heads(self, dim):
        return (Head("concentration1", dim, "positive"), Head("concentration0", dim, "positive"))

    def base(self, bk, params, prefix="likelihood"):
        return bk.dist.Beta(params[0], params[1])

    def _check_support(self, x):
        return np.clip(super()._check_support(x), self.eps, 1 - self.eps)


class _Counts(Likelihood):
    support = "{0, 1, 2, ...}"

    def _check_support(self, x):
        bad = (x < 0) | (x != np.round(x))
        if bad.any():
            raise ValueError(
                f"likelihood {self.name!r} needs non-negative integer counts, but x has "
                f"{int(bad.sum())} other values (e.g. {_examples(x, bad)}); use raw counts, or "
                f"likelihood='gaussian' for continuous data")
        return x


@register("poisson")
@dataclass(frozen=True)
class Poisson(_Counts):
    """Poisson counts; the decoder gives a positive rate.

    Examples
    --------
    >>> Poisson().heads(3)[0].transform
    'positive'
    """

    def heads(self, dim):
        return (Head("rate", dim, "positive"),)

    def base(self, bk, params, prefix="likelihood"):
        return bk.dist.Poisson(params[0])


@register("negative_binomial")
@dataclass(frozen=True)
class NegativeBinomial(_Counts):
    """Negative binomial (over-dispersed) counts: decoder gives total_count and logits.

    Examples
    --------
    >>> [h.name for h in NegativeBinomial().heads(3)]
    ['total_count', 'logits']
    """

    def heads(self, dim):
        return (Head("total_count", dim, "positive"), Head("logits", dim))

    def base(self, bk, params, prefix="likelihood"):
        return bk.dist.NegativeBinomial(params[0], logits=params[1])
