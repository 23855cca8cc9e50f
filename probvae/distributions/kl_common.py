"""The closed-form KL divergence of a full-covariance Gaussian to a diagonal one, written once.

Neither Pyro nor NumPyro registers ``kl_divergence(MultivariateNormal, Independent(Normal, 1))``,
the pair a ``posterior="full_rank"`` guide meets against a diagonal prior under the
``mean_field`` objective, so both fell back to a one-sample Monte Carlo KL. With
``q = N(m, L L^T)`` and ``p = N(mu, diag(s^2))`` over the last dimension:

    KL(q || p) = 1/2 sum_i [(sum_j L_ij^2 + (m_i - mu_i)^2) / s_i^2 - 1] + sum_i log s_i
                 - sum_i log L_ii

``kl_jax`` and ``kl_torch`` register it with each library's ``kl_divergence``.

Examples
--------
>>> import numpy as np
>>> tril = np.array([[2.0, 0.0], [1.0, 1.0]])
>>> round(float(mvn_diagonal_kl(np.zeros(2), tril, np.zeros(2), np.ones(2), np.log)), 4)
1.3069
"""
from __future__ import annotations

__all__ = ["mvn_diagonal_kl"]


def mvn_diagonal_kl(loc, scale_tril, p_loc, p_scale, log):
    """KL(N(loc, scale_tril scale_tril^T) || N(p_loc, diag(p_scale^2))), summed over the last
    dimension; ``log`` is the array library's elementwise log (arrays of either library)."""
    p_loc, p_scale = p_loc + 0.0 * loc, p_scale + 0.0 * loc     # broadcast scalar parameters
    var = (scale_tril * scale_tril).sum(-1)           # the diagonal of L L^T
    diag = scale_tril.diagonal(0, -2, -1)
    ratio = (var + (loc - p_loc) ** 2) / (p_scale * p_scale)
    return 0.5 * (ratio - 1.0).sum(-1) + log(p_scale).sum(-1) - log(diag).sum(-1)
