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

from .data import Column, Table
from .networks import Head
from .registry import Registry, to_config

__all__ = ["Likelihood", "Bernoulli", "ContinuousBernoulli", "Gaussian", "Laplace", "Beta",
           "Poisson", "NegativeBinomial", "Columns", "get", "names", "register", "to_config"]

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


@register("columns")
@dataclass(frozen=True)
class Columns(Likelihood):
    """A table row: one likelihood per column, over that column's slice of ``x``.

    Made from a table's schema (``pv.data.from_frame(df).columns``, or
    ``pv.models.VAE.for_table(table)`` does it): real and positive columns get a Gaussian
    with a learned scale per column (on standardised values; the log scale for positive
    ones), counts a negative binomial, binary columns a Bernoulli and categorical ones a
    categorical over their K one-hot features. A missing cell leaves its whole column out of
    the bound. The columns also turn ``x`` back into a DataFrame (:meth:`decode`).

    Parameters
    ----------
    columns : tuple of Column (or their config dicts)
    min_scale : float
        Floor of the learned scales (in standard deviations of the column).

    Examples
    --------
    >>> import pandas as pd
    >>> from probvae.data import from_frame
    >>> table = from_frame(pd.DataFrame({"v": [0.5, 1.5, 2.5, 4.0], "c": ["a", "b", "c", "a"]}),
    ...                    split=False)
    >>> lik = Columns(table.columns)
    >>> [h.name for h in lik.heads(table.width)]
    ['v:loc', 'c:logits']
    """

    columns: tuple = ()
    min_scale: float = 0.05
    support = "table"

    def __post_init__(self):
        cols = tuple(c if isinstance(c, Column) else Column(**c) for c in self.columns)
        object.__setattr__(self, "columns", cols)
        if not cols:
            raise ValueError("Columns needs at least one column (a table's schema)")
        if not self.min_scale > 0:
            raise ValueError(f"columns needs min_scale > 0, got {self.min_scale}")

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)

    def heads(self, dim):
        if dim != self.width:
            raise ValueError(f"the table's columns take {self.width} features, the model has "
                             f"{dim}")
        heads = []
        for c in self.columns:
            if c.kind in ("real", "positive"):
                heads.append(Head(f"{c.name}:loc", 1))
            elif c.kind == "count":
                heads += [Head(f"{c.name}:total_count", 1, "positive"),
                          Head(f"{c.name}:logits", 1)]
            elif c.kind in ("binary", "categorical"):
                heads.append(Head(f"{c.name}:logits", c.width))
        return tuple(heads)

    def base(self, bk, params, prefix="likelihood"):
        raise TypeError("a table's likelihood is not one distribution per feature; use "
                        "distribution()")

    def distribution(self, bk, params, mask=None, prefix="likelihood"):
        real = [c for c in self.columns if c.kind in ("real", "positive")]
        scale = None
        if real:
            scale = bk.param(f"{prefix}_scale", np.ones(len(real), np.float32),
                             constraint=bk.constraints.greater_than(float(self.min_scale)))
        parts, masks, start, j, r = [], [], 0, 0, 0
        for c in self.columns:
            if c.kind == "constant":
                continue
            if c.kind in ("real", "positive"):
                parts.append((1, "value", bk.dist.Normal(params[j][..., 0], scale[r])))
                j, r = j + 1, r + 1
            elif c.kind == "count":
                parts.append((1, "value", bk.dist.NegativeBinomial(
                    params[j][..., 0], logits=params[j + 1][..., 0])))
                j += 2
            elif c.kind == "binary":
                parts.append((1, "value", bk.dist.Bernoulli(logits=params[j][..., 0])))
                j += 1
            else:
                parts.append((c.width, "category", bk.dist.Categorical(logits=params[j])))
                j += 1
            masks.append(None if mask is None else mask[..., start])
            start += c.width
        return bk.dist.Columns(parts, masks if mask is not None else None)

    def check(self, x, mask=None):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"x must be (rows, {self.width}) encoded table rows, got {x.shape}; "
                             "encode a DataFrame with the table (table.encode(df))")
        if mask is not None:
            x = np.where(mask, x, np.float32(self.fill))
        if not np.isfinite(x).all():
            raise ValueError("the table has missing cells (NaN); pass missing='mask' to leave "
                             "them out of the bound")
        start = 0
        for c in self.columns:
            block = x[:, start:start + c.width]
            if c.kind == "binary" and not np.isin(block, (0.0, 1.0)).all():
                raise ValueError(f"column {c.name!r} is binary: values must be 0 or 1")
            if c.kind == "count" and ((block < 0) | (block != np.round(block))).any():
                raise ValueError(f"column {c.name!r} holds counts: values must be integers >= 0")
            if c.kind == "categorical":
                sums = block.sum(axis=1)
                if not np.isin(block, (0.0, 1.0)).all() or not np.isin(sums, (0.0, 1.0)).all():
                    raise ValueError(f"column {c.name!r} is categorical: its {c.width} features "
                                     "must be one-hot")
            start += c.width
        return x

    def table(self):
        """The schema as a :class:`~probvae.data.Table` (encode and decode DataFrames)."""
        return Table(self.columns)

    def decode(self, x, index=None):
        """Encoded rows (means or draws) back to a DataFrame in the original units."""
        return self.table().decode(x, index=index)

    def encode(self, df):
        """A DataFrame with these columns as encoded rows (NaN where missing)."""
        return self.table().encode(df)
