"""The applications: what a user does with a fitted model, built on :mod:`probvae.inference`.

The top layer of the tree (``applications/`` beside ``models/`` and ``inference/``):

- ``diagnostics``: ArviZ InferenceData of the approximate posterior, k-hat, collapse, the
  amortization gap and a NUTS reference (``pv.diagnostics``);
- ``anomaly``, ``features`` and ``imputation``: scikit-learn estimators
  (``VAEAnomalyDetector``, ``VAEEncoder``, ``VAEImputer``) on one shared base (``_estimator``);
  ``pv.impute(res, x)`` is the ``imputation`` module, callable;
- ``cli``: the ``probvae`` command (``python -m probvae``).

The estimators load scikit-learn, so they are imported on first use, not by ``import probvae``.

Examples
--------
>>> import probvae as pv
>>> from probvae.applications import diagnostics
>>> diagnostics is pv.diagnostics
True
"""
