"""What the scikit-learn estimators share: the VAE settings, training on X, and pickling.

:class:`~probvae.anomaly.VAEAnomalyDetector` and :class:`~probvae.features.VAEEncoder` derive
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

from probvae.inference import fit
from probvae.inference.checkpoint import from_state, to_state
from probvae.models import VAE

__all__ = ["VAEEstimatorBase", "resolve_likelihood"]


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
        non-binary data fails, naming the fix). Put a ``StandardScaler`` before the estimator
        in a ``Pipeline`` for real-valued features on very different scales.
    objective : str
        A registered objective (``"elbo"``, ``"iwae"``, ...), with ``num_particles``.
    num_particles : int
    epochs, batch_size, lr : int, int, float
        Training length, mini-batch size and Adam learning rate.
    validation_fraction : float in [0, 1)
        Share of X held out (at random, from ``seed``) to keep the best epoch's parameters;
        0 trains on all of X and keeps the last epoch.
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
    def _fit_vae(self, X) -> np.ndarray:
        """Validate X, train the VAE (``result_``); return X as the float32 array trained on."""
        X = validate_data(self, X, dtype=np.float32)
        frac = self.validation_fraction
        if not (isinstance(frac, numbers.Real) and 0 <= frac < 1):
            raise ValueError(f"validation_fraction must be a number in [0, 1), got {frac!r}; "
                             "use 0 to train on all of X")
        if self.patience is not None and frac == 0:
            raise ValueError("patience (early stopping) needs held-out data: set "
                             "validation_fraction, e.g. 0.1")
        self.likelihood_ = resolve_likelihood(self.likelihood, X)
        vae = VAE(input_dim=X.shape[1], latent_dim=self.latent_dim, hidden=self.hidden,
                  prior=self.prior, likelihood=self.likelihood_, backend=self.backend)
        train, valid = X, None
        if frac > 0:
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
                           num_particles=self.num_particles)
        return X

    def _validated(self, X) -> np.ndarray:
        """X checked against the fitted estimator (fitted, same features, finite), float32."""
        check_is_fitted(self, "result_")
        return validate_data(self, X, dtype=np.float32, reset=False)

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


class _PickledResult:
    """A FitResult as plain data, inside a pickled estimator."""

    def __init__(self, state):
        self.state = state
