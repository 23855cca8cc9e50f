"""Scoring split across devices and processes, with the numbers of one device.

Importance-weighted scoring (:func:`~.scoring.weight_chunks`, and so ``pv.evaluate``,
``pv.impute``, ``pv.predict(method="model")``, ``latent_posterior`` and the diagnostics) is
done in *units*: one block of examples times one block of draws, each with a random seed of
its own (from the call's ``seed``, the block's first row and the draw block). A unit's numbers
do not depend on where it runs, so the units are dealt out: round-robin over the processes
that train one model together (:func:`probvae.inference.distributed.processes`: torchrun's, or
those joined by ``jax.distributed``), then over this process's devices (NumPyro: every local
device of the platform the parameters live on; JAX runs them at once), and the results are
gathered back in order. One device, four forced CPU devices and two processes give the same
figures, bit for bit on one kind of device.

Every process of a several-process run must make the same scoring call (as each calls
``pv.fit``): each computes its share and all of them get the whole result.

Examples
--------
>>> import probvae as pv
>>> vae = pv.models.VAE(input_dim=4, latent_dim=1, hidden=(4,))
>>> workers(vae.bk, {}).processes
1
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import distributed

__all__ = ["Workers", "workers", "run_units"]


@dataclass(frozen=True)
class Workers:
    """Where scoring units run: this process's index among ``processes``, and its devices
    (``[None]``: the backend's own placement, one device)."""

    index: int
    processes: int
    devices: tuple

    @property
    def count(self) -> int:
        """Devices in all processes together (assuming as many in each)."""
        return self.processes * len(self.devices)

    def mine(self, units: int) -> list:
        """``(unit, device)`` of the units this process computes: every ``processes``-th
        unit from its index, dealt over its devices in turn."""
        return [(u, self.devices[(u // self.processes) % len(self.devices)])
                for u in range(self.index, units, self.processes)]


def _local_devices(params) -> tuple:
    """JAX's local devices of the platform ``params`` live on (the default platform for
    NumPy parameters)."""
    import jax
    leaves = [a for a in jax.tree_util.tree_leaves(params) if isinstance(a, jax.Array)]
    platform = (next(iter(leaves[0].devices())).platform if leaves else jax.default_backend())
    return tuple(jax.local_devices(backend=platform))


def workers(bk, params) -> Workers:
    """The processes and this process's devices that scoring with ``params`` uses.

    Examples
    --------
    >>> import probvae as pv
    >>> w = workers(pv.models.VAE(input_dim=4, backend="numpyro").bk, {})
    >>> (w.index, w.processes, len(w.devices) >= 1)
    (0, 1, True)
    """
    index, count = distributed.processes()
    # a backend that runs several devices from one process (NumPyro) deals units over them;
    # one whose processes each drive one device (Pyro under torchrun) over the processes only
    devices = (None,) if bk.multi_process else _local_devices(params)
    return Workers(index, count, devices if len(devices) > 1 else (None,))


class _Placed:
    """Copies of arrays on each device, made once per device (the parameters, a block)."""

    def __init__(self, tree):
        self.tree, self.copies = tree, {}

    def on(self, device):
        if device is None:
            return self.tree
        if device not in self.copies:
            import jax
            self.copies[device] = jax.tree_util.tree_map(
                lambda a: jax.device_put(np.asarray(a), device), self.tree)
        return self.copies[device]


def placed(tree) -> _Placed:
    """``tree`` with ``.on(device)``: a copy of its arrays on ``device`` (itself for None)."""
    return _Placed(tree)


def run_units(bk, where: Workers, units: int, compute) -> list:
    """``[compute(u, device) as NumPy dicts for u in range(units)]``, the units dealt out over
    ``where``'s processes and devices and gathered back in order (every process gets all).

    ``compute(u, device)`` returns a dict of the backend's arrays for unit ``u``, computed on
    ``device`` (None: as the backend places it). On NumPyro the units of a process are all
    started before any is read, so its devices run at once.
    """
    mine = where.mine(units)
    with distributed.watching_peers("scoring"):
        started = [(u, compute(u, device)) for u, device in mine]
        done = {u: {k: bk.to_numpy(v) for k, v in out.items()} for u, out in started}
        if where.processes == 1:
            return [done[u] for u in range(units)]
        return _gather(done, units, where)


def _gather(done: dict, units: int, where: Workers) -> list:
    """Every process's units, in order, in every process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:           # torchrun: objects over gloo
        import torch.distributed as dist
        distributed.world()                          # the process group, if nothing started it
        every = [None] * where.processes
        dist.all_gather_object(every, done)
        merged = {}
        for part in every:
            merged.update(part)
        return [merged[u] for u in range(units)]
    # jax.distributed: each process's units as bytes, padded to the longest, gathered
    import pickle
    from jax.experimental import multihost_utils
    mine = np.frombuffer(pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)
    longest = int(np.asarray(multihost_utils.process_allgather(np.int64(len(mine)))).max())
    padded = np.zeros(longest + 8, np.uint8)
    padded[:8] = np.frombuffer(np.int64(len(mine)).tobytes(), np.uint8)
    padded[8:8 + len(mine)] = mine
    merged = {}
    for row in np.asarray(multihost_utils.process_allgather(padded)):
        n = int(np.frombuffer(row[:8].tobytes(), np.int64)[0])
        merged.update(pickle.loads(row[8:8 + n].tobytes()))
    return [merged[u] for u in range(units)]
