"""The frozen result of a fit: the trained model, its own parameters, history and settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Optional


@dataclass(frozen=True)
class FitResult:
    """What :func:`probvae.fit` returns; every other call (evaluate, sample, ...) takes it.

    Attributes
    ----------
    model : Model or CustomModel
        The built model (its networks hold the architecture).
    param_state : dict
        This model's parameters as its backend keeps them: NumPyro's param dict, or Pyro's
        param-store state (unconstrained values) that is swapped into the global store only
        while this result is used. What scoring hands to the backend; read :attr:`params`.
    history : dict
        Per-epoch lists: ``train_loss`` and ``valid_loss`` (negative objective per example),
        ``kl_weight`` and ``seconds`` (wall time per epoch; the first also counts building the
        networks and, on NumPyro, compiling).
    objective : str
    options : dict
        Objective options and training settings (epochs, batch_size, lr, seed, ...).
    best_epoch : int or None
        Epoch whose parameters were kept (with validation), counted from 1 as the progress
        bar, the messages and ``history_frame()`` count them; else None.
    status : str
        How training ended: ``"completed"`` (all epochs), ``"stopped_early"`` (patience),
        ``"interrupted"`` (Ctrl-C, SIGTERM or SIGHUP), ``"diverged"`` (a non-finite loss; the parameters are the
        best ones before it).
    message : str
        What happened and what to do next, for any status but ``"completed"``.
    checkpoint : str or None
        The run folder that holds this fit's checkpoints (``fit(checkpoint=...)``).
    stopped_by : str or None
        For an ``"interrupted"`` fit, the signal that stopped it: ``"SIGINT"`` (Ctrl-C),
        ``"SIGTERM"`` (``timeout``, Slurm, Kubernetes, ``docker stop``) or ``"SIGHUP"``.
    training_state : TrainState or None
        Where training stopped, as a checkpoint holds it (parameters, optimizer and random
        state, history; :class:`~probvae.inference.train_state.TrainState`):
        ``pv.fit(res, data, epochs=N)`` continues from it, and :func:`probvae.save` writes
        it. None for a diverged fit and for a folder saved without it.

    Notes
    -----
    :attr:`params` reads the fitted values the same way on both backends (same names,
    constrained values, NumPy arrays); :attr:`param_state` is each backend's own state.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=2, progress=False)
    >>> len(res.history["train_loss"])
    2
    >>> res2 = pv.fit(res, data.train, epochs=3, progress=False)    # one epoch more
    >>> len(res2.history["train_loss"])
    3
    """

    model: Any
    param_state: Any
    history: dict
    objective: str
    options: dict = field(default_factory=dict)
    best_epoch: Optional[int] = None
    status: str = "completed"
    message: str = ""
    checkpoint: Optional[str] = None
    stopped_by: Optional[str] = None
    training_state: Any = field(default=None, repr=False, compare=False)

    @property
    def diverged(self) -> bool:
        """True when training stopped on a non-finite loss (the parameters predate it)."""
        return self.status == "diverged"

    @property
    def backend(self) -> str:
        return self.model.backend

    @property
    def bk(self):
        return self.model.bk

    def bound(self, fn):
        """``fn`` (the model's ``model`` or ``guide``) running on this result's parameters."""
        return self.bk.with_params(fn, self.param_state)

    @cached_property
    def params(self) -> dict:
        """The fitted parameters as ``{name: ndarray}``, constrained (the values the model
        sees: a ``df`` constrained to be > 1 reads > 1), named the same way on both backends.

        A parameter a model makes with ``param("df", ...)`` is ``"df"`` on both. A network's
        arrays are ``"<module>.<path>"``, the path as its library names it inside the network
        (``"decoder.net.0.weight"``: torch's on Pyro; ``"decoder.layers[0].weight"``:
        Equinox's on NumPyro). Read once, then kept (a copy: changing it changes nothing).

        Examples
        --------
        >>> import probvae as pv
        >>> data = pv.data.load("digits", seed=0)
        >>> vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="pyro")
        >>> res = pv.fit(vae, data.train, epochs=1, progress=False)
        >>> sorted(res.params)[:2]
        ['decoder.net.0.bias', 'decoder.net.0.weight']
        """
        return self.param_values()

    def param_values(self) -> dict:
        """:attr:`params`, read afresh."""
        bk, state = self.bk, self.param_state
        if bk.shared_param_store:   # Pyro: a store of unconstrained values, read through it
            with bk.lock:
                values = bk.with_params(lambda: {k: bk.param(k) for k in state["params"]},
                                        state)()
            return {k.replace("$$$", "."): v
                    for k, v in bk.params_to_numpy({"params": values}).items()}
        return {name.removesuffix("$params") + path: a      # already constrained
                for name, tree in state.items()
                for path, a in bk.params_to_numpy(tree).items()}

    def history_frame(self):
        """The history as a pandas DataFrame, one row per epoch, indexed by epoch from 1 (as
        the progress bar and the messages count them); a value an epoch does not have (no
        validation data, a metric recorded only on some epochs) is NaN.

        Examples
        --------
        >>> import probvae as pv
        >>> data = pv.data.load("digits", seed=0)
        >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,)), data.train,
        ...              epochs=2, validation=None, progress=False)   # no validation data
        >>> frame = res.history_frame()
        >>> frame.index.tolist(), bool(frame["valid_loss"].isna().all())
        ([1, 2], True)
        """
        import numpy as np
        import pandas as pd
        n = len(self.history.get("train_loss", []))
        columns = {}
        for key, values in self.history.items():
            values = np.asarray(values, dtype=float)
            if len(values) < n:          # recorded from some epoch on (or never): NaN before
                values = np.concatenate([np.full(n - len(values), np.nan), values])
            columns[key] = values[:n]
        return pd.DataFrame(columns, index=pd.RangeIndex(1, n + 1, name="epoch"))

    def __repr__(self):
        h = self.history
        last = h["train_loss"][-1] if h.get("train_loss") else float("nan")
        status = "" if self.status == "completed" else f", status={self.status!r}"
        return (f"FitResult({type(self.model).__name__}, backend={self.backend!r}, "
                f"objective={self.objective!r}, epochs={len(h.get('train_loss', []))}, "
                f"train_loss={last:.3f}{status})")
