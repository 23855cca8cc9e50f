"""The likelihood base class, its registry, and the support checks they share.

Examples
--------
>>> from probvae.likelihoods.base import get
>>> get("bernoulli").support
'{0, 1}'
"""
from __future__ import annotations

import abc

import numpy as np

from ..networks import Head
from ..registry import Registry, to_config

__all__ = ["Likelihood", "get", "names", "register", "to_config"]

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
        >>> from probvae.likelihoods import Gaussian
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
