"""What a training loop is: the members ``fit`` and :func:`.training.train` use, which each
backend's ``Loop`` (:mod:`.pyro_loop`, :mod:`.numpyro_loop`) implements.

A loop is built by ``fit`` for one model, data and objective, entered as a context manager
(Pyro swaps its param store and random state in; NumPyro has nothing to swap), and driven one
epoch at a time. Everything that changes between epochs moves in and out as plain arrays
(``state``/``restore``), which is what checkpoints and exact resumes rest on.

Examples
--------
>>> from probvae.inference import numpyro_loop, pyro_loop
>>> [sorted(set(MEMBERS) - set(dir(cls)) - INSTANCE_MEMBERS)
...  for cls in (numpyro_loop.Loop, pyro_loop.Loop)]      # both have every member
[[], []]
"""
from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Loop", "MEMBERS", "INSTANCE_MEMBERS"]


class Loop(Protocol):
    """The training loop of one backend.

    Attributes
    ----------
    bk : Backend
        The backend namespace.
    valid : dict or None
        The validation batch, in backend arrays.
    first_loss : float or None
        The loss before the current epoch's first step (the untrained model's, on epoch 0).
    pending : dict or None
        An epoch stopped part-way (Pyro, which stops after a step), else None.
    steps_interruptible : bool
        Whether a stop request ends an epoch after its current step (Pyro) or only at its
        end (NumPyro's compiled epoch).
    """

    bk: Any
    valid: Any
    first_loss: Any
    pending: Any
    steps_interruptible: bool

    def __enter__(self) -> "Loop": ...
    def __exit__(self, *exc) -> bool: ...

    def epoch(self, epoch: int, stop=None) -> tuple:
        """Run (or finish) epoch ``epoch``; ``(train_loss, finished)``."""

    def validate(self):
        """The validation loss per example (None without validation data)."""

    def stop_agreed(self, stop) -> bool:
        """Whether to stop at the end of this epoch (every process agrees)."""

    def kl_weight(self, epoch: int) -> float:
        """The KL weight of epoch ``epoch`` (1 without a schedule)."""

    def params(self):
        """The current parameters."""

    def snapshot(self):
        """A copy of the current parameters that later steps do not change."""

    def result(self, snapshot):
        """The parameters a :class:`~.result.FitResult` holds, from a snapshot."""

    def state(self) -> tuple:
        """``(meta, arrays)``: everything that changes between epochs, JSON and NumPy."""

    def restore(self, meta, arrays, where=("checkpoint.json", "the state file")):
        """Put a saved ``state()`` back (checked first; ``where`` names the files)."""

    def snapshot_to_arrays(self, snapshot) -> dict: ...
    def snapshot_from_arrays(self, arrays): ...


#: the members every loop has (methods and class attributes)
MEMBERS = ("__enter__", "__exit__", "epoch", "validate", "stop_agreed", "kl_weight", "params",
           "snapshot", "result", "state", "restore", "snapshot_to_arrays",
           "snapshot_from_arrays", "steps_interruptible", "pending", "bk", "valid",
           "first_loss")
#: the members a loop sets on itself when it is built
INSTANCE_MEMBERS = {"bk", "valid", "first_loss"}
