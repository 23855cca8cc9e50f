"""Anomaly detection with a VAE, as a scikit-learn outlier detector.

A VAE trained on normal data gives every new example a score: its importance-weighted
log-likelihood log p(x) (the default), or its negative reconstruction error. Low scores are
anomalies. The estimator follows scikit-learn's outlier detectors (``IsolationForest``,
``LocalOutlierFactor``): ``score_samples`` (higher is more normal), ``decision_function``
(``score_samples - offset_``, negative for outliers) and ``predict`` (+1 inlier, -1 outlier).

Examples
--------
>>> import probvae as pv
>>> from probvae.applications.anomaly import VAEAnomalyDetector
>>> data = pv.data.load("digits", seed=0)
>>> det = VAEAnomalyDetector(latent_dim=2, hidden=(32,), epochs=1, num_samples=10)
>>> det = det.fit(data.train.x[data.train.y != 0])      # zeros never seen in training
>>> det.score_samples(data.test.x).shape
(360,)
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import OutlierMixin

from probvae.applications._estimator import VAEEstimatorBase
from probvae.inference import log_weights, reconstruct
from probvae.inference.scoring import log_mean_exp

__all__ = ["VAEAnomalyDetector", "METHODS", "SCALINGS"]


def _log_likelihood(det, x):
    """IWAE bound log (1/K) sum_k p(x, z_k) / q(z_k|x): the same K noise draws for every row."""
    log_w = log_weights(det.result_, x, num_samples=det.num_samples, seed=det.seed,
                        common_noise=True)["log_w"]
    return log_mean_exp(log_w, axis=1)


def _reconstruction(det, x):
    """Minus the squared error between x and the decoded posterior mean of z (over the
    observed cells of a table)."""
    err = (x - reconstruct(det.result_, x, seed=det.seed)) ** 2
    return -np.nansum(err, axis=1, dtype=np.float64)


#: method name -> function (detector, float32 X) -> float64 scores, higher = more normal
METHODS = {"log_likelihood": _log_likelihood, "reconstruction": _reconstruction}

#: how real-valued features are scaled before the VAE sees them (see the class's ``scaling``)
SCALINGS = ("yeo-johnson", "standardize")


def _in_support(likelihood, x):
    """Which rows lie in the likelihood's support (the rest have log p(x) = -inf)."""
    def ok(rows):
        try:
            likelihood.check(rows)
            return True
        except ValueError:
            return False
    return np.ones(len(x), bool) if ok(x) else np.array([ok(row[None]) for row in x])


class VAEAnomalyDetector(OutlierMixin, VAEEstimatorBase):
    """Unsupervised outlier detection with a VAE, scored by log-likelihood.

    Fit on (mostly) normal data; examples the VAE finds unlikely are anomalies. Rows outside
    the likelihood's support (e.g. values above 1 for ``continuous_bernoulli``) have
    log p(x) = -inf and get score -inf under either ``method``. A table (a DataFrame with
    text, category or boolean columns, or any X with NaN) is modelled column by column
    (``VAE.for_table``): a row is scored by log p of its observed cells.

    Parameters
    ----------
    method : {"log_likelihood", "reconstruction"}
        ``"log_likelihood"``: the importance-weighted (IWAE) bound on log p(x) with
        ``num_samples`` draws from q(z|x), a bound that tightens to log p(x) as they grow.
        The draws are common random numbers (the same standard-normal noise for every
        example, from ``seed``), so a row's score does not depend on the rest of the batch.
        ``"reconstruction"``: minus the squared error of the reconstruction from the
        posterior mean of z (deterministic; ignores the likelihood's noise model).
    num_samples : int
        Importance samples per example for ``method="log_likelihood"``.
    scaling : {"yeo-johnson", "standardize"}
        How features are scaled with a real-valued likelihood (``"gaussian"``, the default for
        data outside [0, 1], or ``"laplace"``); other likelihoods and tables see X as it is.
        ``"yeo-johnson"`` (the default) maps each feature to a standard normal shape
        (scikit-learn's ``PowerTransformer``, fitted on the training data), and the score is the
        log-density of the transformed features: a row is unusual when a value lies far in its
        feature's tails, or the values' combination is rare. ``"standardize"`` subtracts each
        feature's mean and divides by its sd, and the score is a log-density in X's own units.
        Why the default: on skewed measurements (breast cancer's areas and radii) a density in
        X's units rates a small value as likely because its feature is skewed, not because
        normal rows look like it; bench/defaults.py (``anomaly``) measures both.
    contamination : "auto" or float in (0, 0.5]
        Sets ``offset_``, the score threshold below which ``predict`` says -1. A float is the
        expected share of outliers in the training data: ``offset_`` is that percentile of
        the training scores. ``"auto"`` uses Tukey's lower fence of the training scores,
        Q1 - 1.5 (Q3 - Q1), which flags only scores far below the bulk.
    **other parameters
        The VAE and its training (``latent_dim``, ``hidden``, ``prior``, ``likelihood``, ...,
        ``backend``, ``seed``) as documented in :class:`probvae.applications._estimator.VAEEstimatorBase`.

    Attributes
    ----------
    offset_ : float
        ``decision_function(X) = score_samples(X) - offset_``.
    result_ : FitResult
        The trained VAE (``pv.sample(det.result_)``, ``pv.evaluate(det.result_, X)``, ...).
    likelihood_ : str or Likelihood
        The likelihood used (``"auto"`` resolved).
    power_ : sklearn.preprocessing.PowerTransformer or None
        With ``scaling="yeo-johnson"`` and a real-valued likelihood: the fitted transform
        (``power_.lambdas_``); None otherwise (then ``center_`` and ``scale_`` standardise).
    n_features_in_ : int

    References
    ----------
    An & Cho (2015), "Variational autoencoder based anomaly detection using reconstruction
    probability", SNU Data Mining Center, Special Lecture on IE 2(1).
    Burda, Grosse & Salakhutdinov (2016), "Importance Weighted Autoencoders", ICLR.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> normal = data.train.x[data.train.y != 0]
    >>> det = VAEAnomalyDetector(latent_dim=2, hidden=(32,), epochs=1, num_samples=10,
    ...                          contamination=0.1).fit(normal)
    >>> round(float((det.predict(normal) == -1).mean()), 2)
    0.1
    """

    def __init__(self, *, method="log_likelihood", num_samples=100, contamination="auto",
                 scaling="yeo-johnson", latent_dim=8, hidden=(128, 128), prior="normal", likelihood="auto",
                 objective="elbo", num_particles=1, epochs=100, batch_size=128, lr=1e-3,
                 validation_fraction=0.0, patience=None, backend="numpyro", seed=0,
                 progress=False):
        super().__init__(latent_dim=latent_dim, hidden=hidden, prior=prior,
                         likelihood=likelihood, objective=objective, num_particles=num_particles,
                         epochs=epochs, batch_size=batch_size, lr=lr,
                         validation_fraction=validation_fraction, patience=patience,
                         backend=backend, seed=seed, progress=progress)
        self.method = method
        self.num_samples = num_samples
        self.contamination = contamination
        self.scaling = scaling

    def _check_settings(self):
        if not (isinstance(self.scaling, str) and self.scaling in SCALINGS):
            raise ValueError(f"scaling must be one of {list(SCALINGS)}, got "
                             f"{self.scaling!r}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {sorted(METHODS)}")
        k = self.num_samples
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {k!r}")
        c = self.contamination
        if not (isinstance(c, str) and c == "auto") and not (
                isinstance(c, numbers.Real) and not isinstance(c, bool) and 0 < c <= 0.5):
            raise ValueError(f"contamination must be 'auto' or a float in (0, 0.5], got {c!r}; "
                             "it is the expected share of outliers in the training data")

    def fit(self, X, y=None):
        """Train the VAE on X and set ``offset_`` from the training scores.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        self._check_settings()
        self.power_ = None
        X = self._fit_vae(X)
        scores = self._scores(X)
        if isinstance(self.contamination, str):
            q1, q3 = np.percentile(scores, [25.0, 75.0])
            self.offset_ = float(q1 - 1.5 * (q3 - q1))
        else:
            self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        return self

    def _fit_scaling(self, X) -> np.ndarray:
        """Standardise X, or with ``scaling="yeo-johnson"`` map each feature to a standard
        normal shape first (``power_``, scikit-learn's ``PowerTransformer``)."""
        self.power_ = None
        if self.scaling == "standardize":
            return super()._fit_scaling(X)
        from sklearn.preprocessing import PowerTransformer
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)    # a constant feature: lambda 1
            self.power_ = PowerTransformer(method="yeo-johnson", standardize=True).fit(
                X.astype(np.float64))
        return self._standardized(X)

    def _standardized(self, x):
        if getattr(self, "power_", None) is None:
            return super()._standardized(x)
        with np.errstate(all="ignore"):
            out = self.power_.transform(np.asarray(x, dtype=np.float64))
        return np.nan_to_num(out, nan=0.0, posinf=1e6, neginf=-1e6).astype(np.float32)

    def _scores(self, x):
        out = np.full(len(x), -np.inf)
        if getattr(self, "table_", None) is not None:    # encoded by the fitted schema
            return METHODS[self.method](self, x)
        inside = _in_support(self.result_.model.likelihood, x)
        if inside.any():
            out[inside] = METHODS[self.method](self, x[inside])
        if self.method == "log_likelihood" and getattr(self, "scale_", None) is not None:
            out -= float(np.log(self.scale_.astype(np.float64)).sum())   # density in X's units
        return out

    def score_samples(self, X):
        """Per-example score, higher = more normal (the IWAE log-likelihood by default).

        In a table, a row holding a category never seen in training has probability 0 under
        the model: it scores -inf (the most anomalous), with a warning naming the levels.

        Returns
        -------
        numpy.ndarray of float64, shape (n_samples,)
        """
        self._check_settings()
        if getattr(self, "table_", None) is None:
            return self._scores(self._validated(X))
        frame = self._frame(X)
        rows, levels = self.table_.unseen_rows(frame)
        scores = self._scores(self.table_.encode(frame, unseen="missing"))
        if rows.any():
            warnings.warn(f"{int(rows.sum())} row(s) hold categories never seen in training "
                          f"({levels}); they score -inf (most anomalous)", UserWarning,
                          stacklevel=2)
            scores[rows] = -np.inf
        return scores

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers.

        Returns
        -------
        numpy.ndarray of float64, shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for inliers, -1 for outliers (``decision_function(X) < 0``).

        Returns
        -------
        numpy.ndarray of int, shape (n_samples,)
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)
