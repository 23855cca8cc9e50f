"""A VAE's encoder as a scikit-learn transformer: X to posterior means E_q[z|x].

Train the encoder on all the unlabelled data there is, then use its features for a supervised
model fitted on few labels, in a ``Pipeline`` like any scikit-learn transformer.

Examples
--------
>>> import probvae as pv
>>> from probvae.applications.features import VAEEncoder
>>> data = pv.data.load("digits", seed=0)
>>> enc = VAEEncoder(latent_dim=4, hidden=(32,), epochs=1).fit(data.train.x)
>>> enc.transform(data.test.x).shape
(360, 4)
"""
from __future__ import annotations

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin

from probvae.applications._estimator import VAEEstimatorBase
from probvae.inference import encode

__all__ = ["VAEEncoder"]


class VAEEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, VAEEstimatorBase):
    """Unsupervised features: a VAE trained on X, mapping each example to E_q[z|x].

    ``fit`` ignores ``y`` (the VAE learns from X alone), so the encoder can be trained on
    unlabelled data and then used, inside a ``Pipeline`` or alone, before a classifier or
    regressor trained on the labelled part. Outputs keep float32 inputs as float32 and are
    float64 otherwise.

    Parameters
    ----------
    latent_dim : int
        Number of output features.
    **other parameters
        As documented in :class:`probvae.applications._estimator.VAEEstimatorBase` (``hidden``, ``prior``,
        ``likelihood="auto"``, ``epochs``, ``validation_fraction``, ``backend``, ``seed``, ...).

    Attributes
    ----------
    result_ : FitResult
        The trained VAE (``pv.sample(enc.result_)``, ``pv.reconstruct(enc.result_, X)``, ...).
    likelihood_, n_features_in_ : str or Likelihood, int
        The likelihood used (``"auto"`` resolved); the number of input features.

    References
    ----------
    Kingma & Welling (2014), "Auto-Encoding Variational Bayes", ICLR.

    Examples
    --------
    >>> import probvae as pv
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> data = pv.data.load("digits", seed=0)
    >>> clf = make_pipeline(VAEEncoder(latent_dim=4, hidden=(32,), epochs=1),
    ...                     LogisticRegression())
    >>> clf.fit(data.train.x, data.train.y).predict(data.test.x[:3]).shape
    (3,)
    >>> clf[0].get_feature_names_out()
    array(['vaeencoder0', 'vaeencoder1', 'vaeencoder2', 'vaeencoder3'], dtype=object)
    """

    def fit(self, X, y=None):
        """Train the VAE on X (``y`` is ignored).

        Returns
        -------
        self
        """
        self._fit_vae(X)
        self._n_features_out = int(self.latent_dim)
        return self

    def transform(self, X):
        """Posterior means E_q[z|x], one row per example.

        Returns
        -------
        numpy.ndarray, shape (n_samples, latent_dim)
        """
        dtype = np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64
        x = self._validated(X)
        return encode(self.result_, x, seed=self.seed).astype(dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
