"""Likelihoods of one value per feature: Bernoulli, continuous Bernoulli, Gaussian, Laplace,
Beta, Poisson and negative binomial.

Examples
--------
>>> Gaussian(scale=0.1).scale
0.1
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..networks import Head
from .base import Likelihood, _examples, register

__all__ = ["Bernoulli", "ContinuousBernoulli", "Gaussian", "Laplace", "Beta", "Poisson",
           "NegativeBinomial"]


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
