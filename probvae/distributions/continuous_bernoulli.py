"""Continuous Bernoulli distribution for NumPyro.

NumPyro ships no continuous Bernoulli distribution, the properly normalised
likelihood for data in :math:`[0, 1]` (e.g. grey-scale pixel intensities)
introduced by Loaiza-Ganem & Cunningham (2019).  This module provides
:class:`ContinuousBernoulli`, a reparameterised NumPyro distribution that is
numerically stable in float32 over the whole practical range of logits,
including ``logits == 0`` exactly, where the closed-form expressions are of the
form ``0 / 0``.

Throughout, ``l`` denotes the logits and :math:`\\lambda = \\sigma(l)` the
probs.  With this parameterisation

.. math::

    p(x \\mid l) = C(l)\\, \\exp\\big(x l - \\mathrm{softplus}(l)\\big),
    \\qquad C(l) = \\frac{l}{\\tanh(l / 2)},

and all moments / the CDF have closed forms.  Every quantity that contains a
removable singularity at ``l = 0`` is evaluated with a Taylor polynomial in a
small window around zero and with the closed form outside it; the closed form
is fed a harmless substitute value inside the window ("safe where") so that
neither the values nor ``jax.grad`` ever produce ``nan``.

References
----------
.. [1] G. Loaiza-Ganem and J. P. Cunningham, "The continuous Bernoulli: fixing
   a pervasive error in variational autoencoders", NeurIPS 2019.
   https://arxiv.org/abs/1907.06845
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import random
from jax.scipy.special import expit

from numpyro.distributions import constraints
from numpyro.distributions.distribution import Distribution
from numpyro.distributions.util import clamp_probs, lazy_property, validate_sample
from numpyro.util import is_prng_key

__all__ = ["ContinuousBernoulli"]

_LOG2 = math.log(2.0)

# Half-widths of the windows around ``l = 0`` in which Taylor polynomials are
# used.  Each is chosen so that (a) the truncation error of the polynomial is
# far below float32 resolution at the edge of the window and (b) the
# cancellation error of the closed form (roughly eps / |l|**k) is small there,
# for the values *and* for their gradients.
_LOGNORM_TAYLOR = 0.3  # next term 127 l^8 / 4838400  -> ~2e-9 at the edge
_MEAN_TAYLOR = 1.0  # next term 691 l^11 / 1.3e12       -> ~5e-10
_VAR_TAYLOR = 1.0  # next term 691 l^10 / 1.19e11      -> ~6e-9
_CDF_TAYLOR = 0.25  # next term O(l^6) * O(1e-4)         -> ~2e-8
# Outside [-_ICDF_MID, _ICDF_MID] the icdf uses the overflow-free forms.
_ICDF_MID = 1.0


def _safe(small, l, substitute):
    """Replace ``l`` by ``substitute`` where ``small`` holds (safe-where trick)."""
    return jnp.where(small, jnp.asarray(substitute, dtype=jnp.result_type(l)), l)


def _horner(l, coefs):
    """Evaluate ``sum_k coefs[k] * l**k``."""
    out = coefs[-1]
    for c in coefs[-2::-1]:
        out = c + l * out
    return out


def _log_normalizer(l):
    """``log C(l) = log(l / tanh(l / 2))``, even in ``l``, ``log 2`` at 0."""
    a = jnp.abs(l)
    small = a < _LOGNORM_TAYLOR
    a_s = _safe(small, a, 1.0)
    # log tanh(a/2) = log(1 - e^-a) - log(1 + e^-a), both terms accurate.
    direct = jnp.log(a_s) - jnp.log(-jnp.expm1(-a_s)) + jnp.log1p(jnp.exp(-a_s))
    l2 = l * l
    taylor = _LOG2 + l2 * (1.0 / 12.0 + l2 * (-7.0 / 1440.0 + l2 * (31.0 / 90720.0)))
    return jnp.where(small, taylor, direct)


def _mean(l):
    """``1/2 + 1/(2 tanh(l/2)) - 1/l``, ``1/2 + l/12 - ...`` near 0."""
    small = jnp.abs(l) < _MEAN_TAYLOR
    l_s = _safe(small, l, 1.0)
    direct = 0.5 + 0.5 / jnp.tanh(0.5 * l_s) - 1.0 / l_s
    l2 = l * l
    taylor = 0.5 + l * (
        1.0 / 12.0
        + l2 * (-1.0 / 720.0 + l2 * (1.0 / 30240.0 + l2 * (-1.0 / 1209600.0 + l2 / 47900160.0)))
    )
    return jnp.where(small, taylor, direct)


def _variance(l):
    """``1/l^2 - 1/(4 sinh^2(l/2))``, ``1/12 - l^2/240 + ...`` near 0."""
    a = jnp.abs(l)
    small = a < _VAR_TAYLOR
    a_s = _safe(small, a, 2.0)
    # 1 / (4 sinh^2(a/2)) = e^-a / (1 - e^-a)^2, overflow-free for large a.
    direct = 1.0 / (a_s * a_s) - jnp.exp(-a_s) / jnp.square(jnp.expm1(-a_s))
    l2 = l * l
    taylor = 1.0 / 12.0 + l2 * (
        -1.0 / 240.0
        + l2 * (1.0 / 6048.0 + l2 * (-1.0 / 172800.0 + l2 * (1.0 / 5322240.0)))
    )
    return jnp.where(small, taylor, direct)


def _cdf(l, x):
    """``F(x) = expm1(l x) / expm1(l)`` for ``x`` in [0, 1]."""
    x = jnp.clip(x, 0.0, 1.0)
    small = jnp.abs(l) < _CDF_TAYLOR
    pos = l > 0
    # l > 0: multiply through by e^-l to avoid overflow of e^l.
    l_p = _safe(small | ~pos, l, 1.0)
    cdf_pos = jnp.exp(l_p * (x - 1.0)) * jnp.expm1(-l_p * x) / jnp.expm1(-l_p)
    l_n = _safe(small | pos, l, -1.0)
    cdf_neg = jnp.expm1(l_n * x) / jnp.expm1(l_n)
    # Taylor coefficients c_k(x) of F in powers of l (k = 0..5)
    q = x * (x - 1.0)  # x (x - 1)
    r = 2.0 * x - 1.0
    coefs = (
        x,
        q / 2.0,
        q * r / 12.0,
        q * q / 24.0,
        q * r * (3.0 * q - 1.0) / 720.0,
        q * q * (2.0 * q - 1.0) / 1440.0,
    )
    taylor = _horner(l, coefs)
    out = jnp.where(small, taylor, jnp.where(pos, cdf_pos, cdf_neg))
    return jnp.clip(out, 0.0, 1.0)


def _icdf(l, u):
    """Inverse CDF ``x = log1p(u expm1(l)) / l`` in a stable form."""
    a = jnp.abs(l)
    small = a < _CDF_TAYLOR
    big_pos = l > _ICDF_MID
    big_neg = l < -_ICDF_MID
    mid = ~(small | big_pos | big_neg)
    # moderate |l|: the textbook form is accurate (no overflow, no cancellation)
    l_m = _safe(~mid, l, 0.5)
    icdf_mid = jnp.log1p(u * jnp.expm1(l_m)) / l_m
    # large positive l: x = 1 + log(u + (1 - u) e^-l) / l
    l_p = _safe(~big_pos, l, 2.0)
    icdf_pos = 1.0 + jnp.log(u + (1.0 - u) * jnp.exp(-l_p)) / l_p
    # large negative l: x = log((1 - u) + u e^l) / l  (both terms >= 0)
    l_n = _safe(~big_neg, l, -2.0)
    icdf_neg = jnp.log((1.0 - u) + u * jnp.exp(l_n)) / l_n
    # Taylor coefficients c_k(u) of the icdf in powers of l (k = 0..5)
    q = u * (u - 1.0)  # u (u - 1)
    r = 2.0 * u - 1.0
    coefs = (
        u,
        -q / 2.0,
        q * r / 6.0,
        -q * (6.0 * q + 1.0) / 24.0,
        q * r * (12.0 * q + 1.0) / 120.0,
        -q * (120.0 * q * q + 30.0 * q + 1.0) / 720.0,
    )
    taylor = _horner(l, coefs)
    out = jnp.where(
        small, taylor, jnp.where(big_pos, icdf_pos, jnp.where(big_neg, icdf_neg, icdf_mid))
    )
    return jnp.clip(out, 0.0, 1.0)


class ContinuousBernoulli(Distribution):
    r"""Continuous Bernoulli distribution on the unit interval.

    The density, for :math:`x \in [0, 1]` and :math:`\lambda = \sigma(l)`, is

    .. math::

        p(x \mid \lambda) = C(\lambda)\, \lambda^{x} (1 - \lambda)^{1 - x},
        \qquad
        C(\lambda) = \frac{2 \operatorname{artanh}(1 - 2 \lambda)}{1 - 2\lambda}
                   = \frac{l}{\tanh(l / 2)},

    i.e. ``log p(x) = x * l - softplus(l) + log C(l)`` with ``C(0) = 2``.  In
    contrast to using the Bernoulli log-likelihood on :math:`[0, 1]`-valued
    data, this density is properly normalised.

    Samples are drawn through the inverse CDF,
    :math:`x = \log(1 + u (e^{l} - 1)) / l` with :math:`u \sim U(0, 1)`, so
    they are reparameterised and differentiable with respect to ``logits``
    (and ``probs``).

    Parameters
    ----------
    probs : array_like, optional
        :math:`\lambda \in [0, 1]`.  Values are clamped to
        ``[tiny, 1 - eps]`` when converted to logits.
    logits : array_like, optional
        :math:`l = \log \lambda - \log(1 - \lambda) \in \mathbb{R}`.  Exactly
        one of ``probs`` and ``logits`` must be given.  The batch shape is the
        shape of the given parameter.
    validate_args : bool, optional
        Whether to validate the parameter and, in :meth:`log_prob`, the
        support of the value (out-of-support values warn and get
        ``-inf``, as for other NumPyro distributions).

    Notes
    -----
    All functions are finite with finite gradients (float32) for
    ``|logits| <= 50`` including ``logits == 0``; Taylor expansions are used
    near zero and overflow-free rewrites for large ``|logits|``.

    * mean: :math:`\tfrac12 + \tfrac{1}{2\tanh(l/2)} - \tfrac1l`
      (:math:`\to \tfrac12 + l/12` near 0)
    * variance: :math:`\tfrac{1}{l^2} - \tfrac{1}{4\sinh^2(l/2)}`
      (:math:`\to \tfrac1{12} - l^2/240` near 0)
    * cdf: :math:`F(x) = \tfrac{e^{l x} - 1}{e^{l} - 1}` (:math:`\to x`)

    References
    ----------
    .. [1] G. Loaiza-Ganem and J. P. Cunningham, "The continuous Bernoulli:
       fixing a pervasive error in variational autoencoders", NeurIPS 2019.
       https://arxiv.org/abs/1907.06845

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from probvae.distributions import ContinuousBernoulli
    >>> d = ContinuousBernoulli(logits=jnp.array([-2.0, 0.0, 3.0]))
    >>> d.batch_shape
    (3,)
    >>> x = d.sample(jax.random.PRNGKey(0), (5,))
    >>> x.shape
    (5, 3)
    >>> bool(jnp.all((x >= 0) & (x <= 1)))
    True
    >>> float(ContinuousBernoulli(logits=0.0).log_prob(0.3))  # logits 0: uniform
    0.0
    >>> round(float(ContinuousBernoulli(probs=0.9).mean), 4)
    0.6699
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True
    reparametrized_params = ["probs", "logits"]
    # both parameters are lazy properties; flatten whichever is materialised
    pytree_data_fields = ("probs", "logits")

    def __init__(self, probs=None, logits=None, *, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError(
                "ContinuousBernoulli: exactly one of `probs` or `logits` must be specified."
            )
        if probs is not None:
            self.probs = probs
            batch_shape = jnp.shape(probs)
        else:
            self.logits = logits
            batch_shape = jnp.shape(logits)
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    @lazy_property
    def probs(self):
        """Success probability :math:`\\lambda = \\sigma(l)`."""
        return expit(self.logits)

    @lazy_property
    def logits(self):
        """Log-odds :math:`l = \\log\\lambda - \\log(1 - \\lambda)`."""
        p = clamp_probs(jnp.asarray(self.probs, dtype=jnp.result_type(self.probs, float)))
        return jnp.log(p) - jnp.log1p(-p)

    def _float_logits(self):
        return jnp.asarray(self.logits, dtype=jnp.result_type(self.logits, float))

    def sample(self, key, sample_shape=()):
        """Reparameterised sample via the inverse CDF of ``U(0, 1)`` draws."""
        assert is_prng_key(key)
        l = self._float_logits()
        u = random.uniform(
            key, shape=tuple(sample_shape) + self.batch_shape, dtype=l.dtype
        )
        return _icdf(l, u)

    @validate_sample
    def log_prob(self, value):
        """Normalised log-density ``x l - softplus(l) + log C(l)``."""
        l = self._float_logits()
        return value * l - jax.nn.softplus(l) + _log_normalizer(l)

    def cdf(self, value):
        """Cumulative distribution function (values outside [0, 1] clipped)."""
        return _cdf(self._float_logits(), value)

    def icdf(self, q):
        """Inverse cumulative distribution function."""
        return _icdf(self._float_logits(), q)

    @property
    def mean(self):
        return jnp.broadcast_to(_mean(self._float_logits()), self.batch_shape)

    @property
    def variance(self):
        return jnp.broadcast_to(_variance(self._float_logits()), self.batch_shape)

    def entropy(self):
        """Differential entropy ``-(l E[x] - softplus(l) + log C(l))`` (<= 0)."""
        l = self._float_logits()
        return -(l * _mean(l) - jax.nn.softplus(l) + _log_normalizer(l))
