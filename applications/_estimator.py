"""What the scikit-learn estimators share: the VAE settings, training on X, and pickling.

:class:`~probvae.applications.anomaly.VAEAnomalyDetector` and :class:`~probvae.applications.features.VAEEncoder` derive
from :class:`VAEEstimatorBase`; it validates X with scikit-learn's ``validate_data``, builds a
:class:`~probvae.models.VAE`, trains it with :func:`probvae.fit` and keeps the
:class:`~probvae.inference.FitResult` as ``result_``. A fitted estimator pickles (and
``copy.deepcopy``-s) through the model config and plain NumPy parameters
(:func:`probvae.inference.checkpoint.to_state`), never through backend objects.
"""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from probvae.data import from_frame
from probvae.inference import fit
from probvae.inference.checkpoint import from_state, to_state
from probvae.models import VAE

__all__ = ["VAEEstimatorBase", "resolve_likelihood", "REAL_VALUED"]

#: likelihoods of real values on any scale: X is standardised for them (``center_``, ``scale_``)
REAL_VALUED = ("gaussian", "laplace")


def resolve_likelihood(likelihood, x: np.ndarray):
    """``"auto"``: ``"continuous_bernoulli"`` when every value of ``x`` lies in [0, 1], else
    ``"gaussian"`` (a learned scale per feature); anything else is returned as given.

    Examples
    --------
    >>> import numpy as np
    >>> resolve_likelihood("auto", np.array([[0.0, 1.0]]))
    'continuous_bernoulli'
    >>> resolve_likelihood("auto", np.array([[-0.5, 2.0]]))
    'gaussian'
    """
    if isinstance(likelihood, str) and likelihood == "auto":
        return "continuous_bernoulli" if x.min() >= 0 and x.max() <= 1 else "gaussian"
    return likelihood


class VAEEstimatorBase(BaseEstimator):
    """Base of probvae's scikit-learn estimators: a :class:`~probvae.models.VAE` trained on X.

    Parameters
    ----------
    latent_dim : int
        Size of the latent code z.
    hidden : tuple of int
        Hidden widths of the encoder (the decoder uses them reversed).
    prior : str or Prior
        A name from :mod:`probvae.priors` (``"normal"``, ``"vamp"``, ...) or an instance.
    likelihood : "auto", str or Likelihood
        ``"auto"`` picks ``"continuous_bernoulli"`` when all training values lie in [0, 1] and
        ``"gaussian"`` (learned scale per feature) otherwise; the choice is stored as
        ``likelihood_``. An explicit choice keeps its support check (e.g. ``"bernoulli"`` on
        non-binary data fails, naming the fix). With ``"gaussian"`` or ``"laplace"`` the
        features are standardised inside (``center_``, ``scale_``), so features on very different scales
        (grams beside ratios) train alike; scores stay log-densities in X's own units.
    objective : str
        A registered objective (``"elbo"``, ``"iwae"``, ...), with ``num_particles``.
    num_particles : int
    epochs, batch_size, lr : int, int, float
        Training length, mini-batch size and Adam learning rate (None: ``pv.fit``'s, the
        length from the data's size).
    validation_fraction : float in [0, 1) or "auto"
        Share of X held out (at random, from ``seed``) to keep the best epoch's parameters;
        0 trains on all of X and keeps the last epoch; ``"auto"``: what ``pv.fit`` does by
        default (a tenth of data between 150 and 20,000 rows, and early stopping).
    patience : int, optional
        With ``validation_fraction > 0``: stop after this many epochs without improvement.
    backend : {"numpyro", "pyro"}
    seed : int
        Seeds the split, networks and training; the same seed gives the same numbers.
    progress : bool
        Show a progress bar while training.

    Attributes
    ----------
    result_ : FitResult
        The trained VAE; every ``probvae`` function (``pv.sample``, ``pv.evaluate``, ...)
        takes it.
    likelihood_ : str or Likelihood
        The likelihood used (``"auto"`` resolved).
    center_, scale_ : numpy.ndarray (n_features,) or None
        With the ``"gaussian"`` or ``"laplace"`` likelihood: the mean and sd the features are
        standardised by
        (the model sees ``(X - center_) / scale_``); None otherwise.
    n_features_in_ : int
    """

    def __init__(self, *, latent_dim=8, hidden=(128, 128), prior="normal", likelihood="auto",
                 objective="elbo", num_particles=1, epochs=100, batch_size=128, lr=1e-3,
                 validation_fraction=0.0, patience=None, backend="numpyro", seed=0,
                 progress=False):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.prior = prior
        self.likelihood = likelihood
        self.objective = objective
        self.num_particles = num_particles
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.backend = backend
        self.seed = seed
        self.progress = progress

    # ---- training ----------------------------------------------------------------------
    def _fit_vae(self, X, tabular=False, latent_dim=None) -> np.ndarray:
        """Validate X, train the VAE (``result_``); return X as the float32 array trained on.

        A table (a DataFrame with text, category or boolean columns, or any X with missing
        cells; or ``tabular=True``) is encoded by its columns' kinds
        (``pv.data.from_frame``) and the VAE is one for tables (``VAE.for_table``), trained
        with ``missing="mask"``; ``table_`` keeps the schema.
        """
        self.table_ = None
        self.center_ = self.scale_ = None
        if tabular or _is_table(X):
            X = self._fit_table(X)
        else:
            X = validate_data(self, X, dtype=np.float32)
            self.likelihood_ = resolve_likelihood(self.likelihood, X)
            if isinstance(self.likelihood_, str) and self.likelihood_ in REAL_VALUED:
                X = self._fit_scaling(X)
        frac = self.validation_fraction
        auto = isinstance(frac, str) and frac == "auto"     # fit's own: a tenth of small data
        if not auto and not (isinstance(frac, numbers.Real) and 0 <= frac < 1):
            raise ValueError(f"validation_fraction must be a number in [0, 1) or 'auto', got "
                             f"{frac!r}; use 0 to train on all of X")
        if self.patience is not None and frac == 0:
            raise ValueError("patience (early stopping) needs held-out data: set "
                             "validation_fraction, e.g. 0.1")
        latent_dim = self.latent_dim if latent_dim is None else latent_dim
        if self.table_ is not None:
            vae = VAE.for_table(self.table_, latent_dim=latent_dim, hidden=self.hidden,
                                prior=self.prior, backend=self.backend)
        else:
            vae = VAE(input_dim=X.shape[1], latent_dim=latent_dim, hidden=self.hidden,
                      prior=self.prior, likelihood=self.likelihood_, backend=self.backend)
        train, valid = X, ("auto" if auto else None)
        if not auto and frac > 0:
            n_valid = int(round(frac * len(X)))
            if not 1 <= n_valid < len(X):
                raise ValueError(f"validation_fraction={frac} of {len(X)} examples leaves "
                                 f"{n_valid} for validation and {len(X) - n_valid} for training; "
                                 "each needs at least one: pass more data or change it")
            perm = np.random.default_rng(self.seed).permutation(len(X))
            train, valid = X[np.sort(perm[n_valid:])], X[np.sort(perm[:n_valid])]
        self.result_ = fit(vae, train, objective=self.objective, epochs=self.epochs,
                           batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                           validation=valid, patience=self.patience, progress=self.progress,
                           num_particles=self.num_particles,
                           missing="mask" if self.table_ is not None else None)
        return X

    def _fit_table(self, X) -> np.ndarray:
        """The table path of ``_fit_vae``: schema from X, encoded rows with NaN gaps."""
        if type(X).__name__ == "DataFrame":
            frame = _as_frame(X)
            if len(frame) < 2:
                raise ValueError(f"X has {len(frame)} row(s); fitting needs at least 2")
            self.n_features_in_ = frame.shape[1]
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        else:
            arr = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                                ensure_min_samples=2)
            frame = _as_frame(arr)
        self.table_ = from_frame(frame, split=False, verbose=False)
        if self.table_.width == 0:
            raise ValueError("every column of X holds a single value: there is nothing to learn")
        self.likelihood_ = "columns"
        return self.table_.train.x

    def _validated(self, X, unseen="error") -> np.ndarray:
        """X checked against the fitted estimator (fitted, same features), float32; a table
        is encoded with the fitted schema (NaN marks missing cells; ``unseen="missing"``
        treats levels never seen in training as missing, see :meth:`_unseen_rows`)."""
        check_is_fitted(self, "result_")
        if getattr(self, "table_", None) is not None:
            frame = self._frame(X)
            return self.table_.encode(frame, unseen=unseen)
        return self._standardized(validate_data(self, X, dtype=np.float32, reset=False))

    def _fit_scaling(self, X) -> np.ndarray:
        """With a real-valued likelihood: learn how X is scaled for the model (``center_``,
        ``scale_``: each feature's mean and sd) and return X scaled."""
        self.center_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0).astype(np.float32)
        return self._standardized(X)

    def _standardized(self, x):
        """x as the model sees it: standardised with a real-valued likelihood."""
        if getattr(self, "scale_", None) is None:
            return x
        return ((x - self.center_) / self.scale_).astype(np.float32)

    def _frame(self, X):
        if type(X).__name__ != "DataFrame":
            X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan",
                              reset=False)
        frame = _as_frame(X, getattr(self, "feature_names_in_", None))
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {frame.shape[1]} features, but {type(self).__name__} "
                             f"is expecting {self.n_features_in_} features as input")
        return frame

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True        # missing cells: the model leaves them out
        return tags

    # ---- pickling: the model config and NumPy parameters, no backend objects -------------
    def __getstate__(self):
        state = dict(super().__getstate__())
        if "result_" in state:
            state["result_"] = _PickledResult(to_state(state["result_"]))
        return state

    def __setstate__(self, state):
        state = dict(state)
        if isinstance(state.get("result_"), _PickledResult):
            state["result_"] = from_state(state["result_"].state)
        super().__setstate__(state)


def _is_table(X) -> bool:
    """True for a DataFrame with non-numeric columns, or any X with missing cells."""
    if type(X).__name__ == "DataFrame":
        numeric = all(str(t) not in ("object", "category", "bool", "string", "str")
                      and "string" not in str(t) for t in X.dtypes)
        return not numeric or bool(X.isna().to_numpy().any())
    try:
        arr = np.asarray(X)
        if arr.dtype.kind == "c":           # refused later, by scikit-learn's validation
            return False
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        return False
    return bool(np.isnan(arr).any())


def _as_frame(X, names=None):
    """X as a DataFrame: a DataFrame as it is (its columns checked against ``names``), an
    array with columns x0, x1, ...; inf is refused (only NaN marks a missing cell)."""
    import pandas as pd
    if type(X).__name__ == "DataFrame":
        if names is not None and list(X.columns) != list(names):
            raise ValueError(f"X has columns {list(X.columns)}, but the estimator was fitted "
                             f"with {list(names)}")
        frame = X
    else:
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"Expected 2D array, got {arr.ndim}D array instead; reshape your "
                             "data, e.g. X.reshape(-1, 1) for one feature")
        frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    numeric = frame.select_dtypes("number")
    if np.isinf(numeric.to_numpy(dtype=np.float64)).any():
        raise ValueError("Input X contains infinity; mark missing cells with NaN")
    return frame


class _PickledResult:
    """A FitResult as plain data, inside a pickled estimator."""

    def __init__(self, state):
        self.state = state
