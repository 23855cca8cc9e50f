"""Imputation: ``pv.impute(res, data)`` fills gaps from a fitted model, and
:class:`VAEImputer` is the same as a scikit-learn transformer (like ``IterativeImputer``).

``pv.impute`` is this module, callable: ``pv.impute(res, x)`` runs
:func:`probvae.inference.impute` and ``pv.impute.VAEImputer`` is the estimator.

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(60, 3)); X[::7, 1] = np.nan
>>> imp = VAEImputer(latent_dim=2, hidden=(16,), epochs=2).fit(X)
>>> bool(np.isnan(imp.transform(X)).any())
False
"""
from __future__ import annotations

import sys
import types

import numpy as np
from sklearn.base import TransformerMixin

from probvae.applications._estimator import VAEEstimatorBase
from probvae.inference import impute as _impute

__all__ = ["VAEImputer", "impute"]


def impute(res, data, num_samples=100, multiple=None, seed=0):
    """Fill the missing (NaN) cells of ``data`` from ``res`` (see
    :func:`probvae.inference.impute`).

    Examples
    --------
    >>> import numpy as np, probvae as pv
    >>> x = np.random.default_rng(1).uniform(size=(40, 4)).astype(np.float32)
    >>> res = pv.fit(pv.models.VAE(input_dim=4, latent_dim=1, hidden=(8,)), x, epochs=1,
    ...              progress=False)
    >>> x[0, 0] = np.nan
    >>> bool(np.isnan(impute(res, x)).any())
    False
    """
    return _impute(res, data, num_samples=num_samples, multiple=multiple, seed=seed)


class VAEImputer(TransformerMixin, VAEEstimatorBase):
    """Missing-value imputation with a VAE, as a scikit-learn transformer.

    ``fit(X)`` models X column by column (numbers on their own scale, a DataFrame's text and
    category columns by their levels) with the gaps left out of the bound; ``transform(X)``
    fills every NaN with the importance-weighted posterior predictive (MIWAE) and returns X
    otherwise unchanged: an array for an array, a DataFrame like X for a DataFrame.

    Parameters
    ----------
    num_samples : int
        Importance samples per row.
    **other parameters
        The VAE and its training, as for :class:`probvae.applications._estimator.VAEEstimatorBase`
        (``latent_dim``, ``hidden``, ``epochs``, ``batch_size``, ``backend``, ``seed``, ...).

    References
    ----------
    Mattei & Frellsen (2019), "MIWAE: Deep Generative Modelling and Imputation of Incomplete
    Data Sets", ICML.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LinearRegression
    >>> X = np.random.default_rng(0).normal(size=(50, 3)); X[::5, 0] = np.nan
    >>> model = make_pipeline(VAEImputer(latent_dim=2, hidden=(8,), epochs=1),
    ...                       LinearRegression()).fit(X, X[:, 1])
    >>> model.predict(X[:2]).shape
    (2,)
    """

    def __init__(self, *, num_samples=100, latent_dim=4, hidden=(64, 64), prior="normal",
                 likelihood="auto", objective="elbo", num_particles=1, epochs=200,
                 batch_size=32, lr=1e-3, validation_fraction=0.0, patience=None,
                 backend="numpyro", seed=0, progress=False):
        super().__init__(latent_dim=latent_dim, hidden=hidden, prior=prior,
                         likelihood=likelihood, objective=objective, num_particles=num_particles,
                         epochs=epochs, batch_size=batch_size, lr=lr,
                         validation_fraction=validation_fraction, patience=patience,
                         backend=backend, seed=seed, progress=progress)
        self.num_samples = num_samples

    def fit(self, X, y=None):
        """Train the VAE on X, gaps and all (``y`` is ignored).

        Returns
        -------
        self
        """
        self._fit_vae(X, tabular=True)
        return self

    def transform(self, X):
        """X with every missing cell filled; observed cells unchanged.

        Returns
        -------
        numpy.ndarray or DataFrame, like X
        """
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(self, "result_")
        if type(X).__name__ == "DataFrame":
            self._validated(X)
            return _impute(self.result_, X, num_samples=self.num_samples, seed=self.seed)
        x = np.asarray(X, dtype=np.float64)
        encoded = self._validated(X)
        filled = _impute(self.result_, encoded, num_samples=self.num_samples, seed=self.seed)
        values = self.table_.decode(filled).to_numpy(dtype=np.float64)
        return np.where(np.isnan(x), values, x)



class _CallableModule(types.ModuleType):
    """``pv.impute(...)`` calls :func:`impute`; ``pv.impute.VAEImputer`` is the estimator."""

    def __call__(self, *args, **kwargs):
        return impute(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
