"""Imputation: ``pv.impute(res, data)`` fills gaps from a fitted model, ``pv.impute(data)``
fits a self-tuned imputer on the data first, and :class:`VAEImputer` is the same as a
scikit-learn transformer (like ``IterativeImputer``).

``pv.impute`` is this module, callable: ``pv.impute(res, x)`` runs
:func:`probvae.inference.impute` and ``pv.impute.VAEImputer`` is the estimator.

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(60, 3)); X[::7, 1] = np.nan
>>> imp = VAEImputer(latent_dim=2, hidden=(16,), epochs=2, num_samples=8).fit(X)
>>> bool(np.isnan(imp.transform(X)).any())
False
"""
from __future__ import annotations

import numbers
import sys
import time
import types

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.utils.validation import validate_data

from probvae.applications._estimator import VAEEstimatorBase, _as_frame
from probvae.inference import impute as _impute

__all__ = ["VAEImputer", "impute"]


#: what :class:`VAEImputer` tunes when left to itself: latent sizes, then importance samples
LATENT_GRID = (4, 8, 16)
SAMPLES_GRID = (50, 200, 1000)
#: share of the observed cells hidden to score the candidates on
TUNE_FRACTION = 0.1


def impute(res, data=None, num_samples=100, multiple=None, seed=0, condition=None, **settings):
    """Fill the missing (NaN) cells of ``data`` from ``res`` (see
    :func:`probvae.inference.impute`); or, given the data alone (``pv.impute(x)``), fit a
    self-tuned :class:`VAEImputer` on it (``settings``: its parameters, all optional) and
    return it filled, like it (what was chosen is printed). ``condition``: each row's
    condition, for a conditional model.

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
    if data is None:
        if hasattr(res, "param_state"):
            raise TypeError("pv.impute(res, data): give the data to fill, or pv.impute(data) "
                            "to fit an imputer on it first")
        imputer = VAEImputer(**{"seed": seed, "progress": True, **settings}).fit(res)
        return imputer.transform(res)
    if settings:
        raise TypeError(f"pv.impute(res, data) takes no {sorted(settings)}: those are "
                        "VAEImputer's settings, for pv.impute(data) alone")
    return _impute(res, data, num_samples=num_samples, multiple=multiple, seed=seed,
                   condition=condition)


class VAEImputer(TransformerMixin, VAEEstimatorBase):
    """Missing-value imputation with a VAE, as a scikit-learn transformer.

    ``fit(X)`` models X column by column (numbers on their own scale, a DataFrame's text and
    category columns by their levels) with the gaps left out of the bound; ``transform(X)``
    fills every NaN with the importance-weighted posterior predictive (MIWAE) and returns X
    otherwise unchanged: an array for an array, a DataFrame like X for a DataFrame.

    With its defaults it tunes itself: it hides a tenth of the observed cells, trains a VAE for
    each latent size of ``(4, 8, 16)`` on the rest, keeps the size whose imputations of the
    hidden cells are best (squared error in standard deviations for numbers, 0/1 for
    categories), then the number of importance samples among ``(50, 200, 1000)`` the same way,
    and refits on every cell. ``tuning_`` says what was tried and chosen, and the seconds.
    Training is MIWAE's: the IWAE bound with 8 samples (better imputations than the ELBO on
    every table of ``bench/defaults.py``), for ``pv.fit``'s length with early stopping.

    Parameters
    ----------
    num_samples : int or "auto"
        Importance samples per row ("auto": tuned).
    latent_dim : int or "auto"
        Size of z ("auto": tuned).
    **other parameters
        The VAE and its training, as for :class:`probvae.applications._estimator.VAEEstimatorBase`
        (``hidden``, ``epochs``, ``batch_size``, ``backend``, ``seed``, ...).

    Attributes
    ----------
    latent_dim_, num_samples_ : int
        The sizes used.
    tuning_ : dict or None
        ``{"hidden_cells", "latent_dim": {size: loss}, "num_samples": {n: loss}, "seconds"}``
        when anything was tuned (loss: the mean over the hidden cells), else None.

    References
    ----------
    Mattei & Frellsen (2019), "MIWAE: Deep Generative Modelling and Imputation of Incomplete
    Data Sets", ICML.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LinearRegression
    >>> X = np.random.default_rng(0).normal(size=(50, 3)); X[::5, 0] = np.nan
    >>> model = make_pipeline(VAEImputer(latent_dim=2, hidden=(8,), epochs=1, num_samples=8),
    ...                       LinearRegression()).fit(X, X[:, 1])
    >>> model.predict(X[:2]).shape
    (2,)
    """

    def __init__(self, *, num_samples="auto", latent_dim="auto", hidden=(128, 128),
                 prior="normal", likelihood="auto", objective="iwae", num_particles=8,
                 epochs=None, batch_size=None, lr=None, validation_fraction="auto",
                 patience=None, backend="numpyro", seed=0, progress=False):
        super().__init__(latent_dim=latent_dim, hidden=hidden, prior=prior,
                         likelihood=likelihood, objective=objective, num_particles=num_particles,
                         epochs=epochs, batch_size=batch_size, lr=lr,
                         validation_fraction=validation_fraction, patience=patience,
                         backend=backend, seed=seed, progress=progress)
        self.num_samples = num_samples

    def fit(self, X, y=None):
        """Train the VAE on X, gaps and all (``y`` is ignored); with ``"auto"`` settings, tune
        them first on hidden cells of X.

        Returns
        -------
        self
        """
        for name in ("latent_dim", "num_samples"):
            value = getattr(self, name)
            if not (value == "auto" if isinstance(value, str) else
                    isinstance(value, numbers.Integral) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1 or 'auto' (tuned), got "
                                 f"{value!r}")
        self.tuning_ = None
        latent, samples = self.latent_dim, self.num_samples
        if "auto" in (latent, samples):
            latent, samples = self._tune(X)
        self._fit_vae(X, tabular=True, latent_dim=latent)
        self.latent_dim_, self.num_samples_ = int(latent), int(samples)
        return self

    def _tune(self, X):
        """The latent size and importance samples whose imputations of hidden observed cells
        are best (each fitted on the rest); see the class."""
        t0 = time.perf_counter()
        frame = _as_frame(X) if type(X).__name__ == "DataFrame" else _as_frame(
            validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                          ensure_min_samples=2))
        gappy, cells = _hide_cells(frame, TUNE_FRACTION, self.seed)
        if not cells:
            raise ValueError("X has too few observed cells to tune on: give latent_dim= and "
                             "num_samples=")
        grid = LATENT_GRID if self.latent_dim == "auto" else (int(self.latent_dim),)
        probe = 200 if self.num_samples == "auto" else int(self.num_samples)
        scores, fitted = {}, {}
        for size in grid:
            trial = self._trial()
            trial._fit_vae(gappy, tabular=True, latent_dim=size)
            scores[size] = _cell_loss(frame, trial._fill(gappy, probe), cells)
            fitted[size] = trial
            self._say(f"impute: latent_dim {size}: loss {scores[size]:.4f} on "
                      f"{len(cells)} hidden cells")
        latent = min(scores, key=scores.get)
        sample_scores = {probe: scores[latent]}
        if self.num_samples == "auto":
            for n in SAMPLES_GRID:
                if n not in sample_scores:
                    sample_scores[n] = _cell_loss(frame, fitted[latent]._fill(gappy, n), cells)
        # the fewest samples within 0.5% of the best loss
        best = min(sample_scores.values())
        samples = min(n for n, v in sample_scores.items() if v <= best * 1.005)
        self.tuning_ = {"hidden_cells": len(cells), "latent_dim": scores,
                        "num_samples": dict(sorted(sample_scores.items())),
                        "chosen": {"latent_dim": latent, "num_samples": samples},
                        "seconds": time.perf_counter() - t0}
        self._say(f"impute: chose latent_dim {latent}, num_samples {samples} "
                  f"({self.tuning_['seconds']:.0f} s of tuning); refitting on every cell")
        return latent, samples

    def _trial(self):
        """A copy of this imputer's settings, for one candidate."""
        from sklearn.base import clone
        return clone(self).set_params(progress=False)

    def _say(self, line):
        if self.progress:
            print(line, file=sys.stderr, flush=True)

    def _fill(self, X, num_samples):
        """X filled with ``num_samples`` importance samples (the fitted table's frame)."""
        frame = self._frame(X)
        return _impute(self.result_, frame, num_samples=int(num_samples), seed=self.seed)

    def transform(self, X):
        """X with every missing cell filled; observed cells unchanged.

        Returns
        -------
        numpy.ndarray or DataFrame, like X
        """
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(self, "result_")
        samples = getattr(self, "num_samples_", self.num_samples)
        if type(X).__name__ == "DataFrame":
            self._validated(X)
            return _impute(self.result_, X, num_samples=samples, seed=self.seed)
        x = np.asarray(X, dtype=np.float64)
        encoded = self._validated(X)
        filled = _impute(self.result_, encoded, num_samples=samples, seed=self.seed)
        values = self.table_.decode(filled).to_numpy(dtype=np.float64)
        return np.where(np.isnan(x), values, x)


def _hide_cells(frame, fraction, seed):
    """A copy of ``frame`` with ``fraction`` of its observed cells hidden (NaN), never a row's
    last observed cell, and the hidden cells as ``[(row, column)]``."""
    rng = np.random.default_rng([seed, 36])
    observed = ~frame.isna().to_numpy()
    pick = observed & (rng.random(observed.shape) < fraction)
    last = observed.sum(axis=1) - pick.sum(axis=1) < 1          # a row left with nothing
    for i in np.flatnonzero(last):
        keep = rng.choice(np.flatnonzero(observed[i]))
        pick[i, keep] = False
    gappy = frame.copy()
    for j, name in enumerate(frame.columns):
        if pick[:, j].any():
            if str(gappy[name].dtype) == "category":
                gappy[name] = gappy[name].astype(object)
            gappy.loc[pick[:, j], name] = np.nan
            gappy[name] = gappy[name].astype(frame[name].dtype, errors="ignore")
    return gappy, [(int(i), int(j)) for i, j in zip(*np.nonzero(pick))]


def _cell_loss(truth, filled, cells) -> float:
    """Mean loss over ``cells``: squared error in standard deviations of the column for
    numbers, 0/1 for any other value."""
    total = 0.0
    for i, j in cells:
        name = truth.columns[j]
        a, b = truth.iat[i, j], filled.iat[i, j]
        column = truth[name]
        kind = getattr(column.dtype, "kind", "O")
        if kind in "iuf":                    # numbers (not bools, text or categories)
            sd = float(column.std()) or 1.0
            total += ((float(b) - float(a)) / sd) ** 2
        else:
            total += float(a != b)
    return total / len(cells)


class _CallableModule(types.ModuleType):
    """``pv.impute(...)`` calls :func:`impute`; ``pv.impute.VAEImputer`` is the estimator."""

    def __call__(self, *args, **kwargs):
        return impute(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
