"""What the two backends' ``DiagonalNormalMixture`` share: a mixture's log-density by matmuls.

A mixture of K diagonal Gaussians scored the textbook way (``MixtureSameFamily``) builds a
``(..., K, D)`` array of per-dimension log-densities and its gradient. For the VampPrior (K = 500,
D = 40, a batch of 100) that took 58 ms a step on one core here, more than the encoder's pass over
the 500 pseudo-inputs. Expanding the square turns it into two ``(..., D) @ (D, K)`` matmuls:

    sum_d (v_d - m_kd)^2 / s_kd^2 = v^2 @ (1/s^2).T - 2 v @ (m/s^2).T + sum_d m_kd^2 / s_kd^2

(1.2 ms). The expansion loses float32 digits when the terms are large against their
difference (small scales, values far from the origin), so values and means are first centred
on the mean of the means, and each value's most likely component, which dominates the sum, is
scored again directly from its differences.

Examples
--------
>>> import numpy as np
>>> from probvae.distributions.mixture_jax import DiagonalNormalMixture
>>> loc = np.array([[0.0, 0.0], [3.0, 1.0]], np.float32)
>>> m = DiagonalNormalMixture(np.zeros(2, np.float32), loc, np.ones((2, 2), np.float32))
>>> round(float(m.log_prob(np.zeros(2, np.float32))), 4)
-2.5243
"""
from __future__ import annotations

import math

__all__ = ["MixtureLogProb"]


class MixtureLogProb:
    """Mixin: ``log_prob`` of a mixture of diagonal Gaussians by matmuls.

    The subclass, also a ``MixtureSameFamily`` of its library, names the library's
    distributions module ``_dist`` and array constructor ``_asarray``, and provides
    ``_logsumexp(x)``, ``_log_softmax(x)`` (last axis), ``_log``, ``_where`` and
    ``_arange``; the parameters are kept as ``_logits`` (K,), ``_loc`` and ``_scale`` (K, D).
    Parameters with batch dimensions fall back to the library's own ``log_prob``."""

    def __init__(self, logits, loc, scale, *, validate_args=None):
        self._logits, self._loc, self._scale = (self._asarray(a) for a in (logits, loc, scale))
        d = self._dist
        super().__init__(d.Categorical(logits=self._logits),
                         d.Normal(self._loc, self._scale).to_event(1),
                         validate_args=validate_args)

    def log_prob(self, value):
        if self._loc.ndim != 2 or self._logits.ndim != 1:   # batched parameters: the library's
            return super().log_prob(value)
        return self._fast_log_prob(value)

    def _fast_log_prob(self, value):
        loc, scale, logits = self._loc, self._scale, self._logits
        k, d = loc.shape
        centre = loc.mean(0)
        v, m = value - centre, loc - centre
        prec = 1.0 / (scale * scale)
        quad = (v * v) @ prec.T - 2.0 * (v @ (m * prec).T) + (m * m * prec).sum(-1)
        norm = self._log(scale).sum(-1) + 0.5 * d * math.log(2.0 * math.pi)     # (K,)
        comp = -0.5 * quad - norm                                                 # (..., K)
        best = comp.argmax(-1)                                  # score the top one exactly
        diff = (value - loc[best]) / scale[best]
        exact = -0.5 * (diff * diff).sum(-1) - norm[best]
        onehot = best[..., None] == self._arange(k)
        comp = self._where(onehot, exact[..., None], comp)
        return self._logsumexp(comp + self._log_softmax(logits))
