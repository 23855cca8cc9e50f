"""Several processes training one model: ``torchrun`` for Pyro, ``jax.distributed`` for NumPyro.

Run the same command under ``torchrun`` and every process trains one share of each batch::

    torchrun --nproc_per_node=2 -m probvae train --backend pyro --out runs/ddp
    torchrun --nproc_per_node=4 my_script.py          # a script that calls pv.fit(...)

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and the rendezvous address; :func:`world` starts
the process group from them (``nccl`` when CUDA is there, else ``gloo``). Inside
:func:`probvae.fit` each process then takes its slice of every global batch (the batches one
process would take, so a run on N processes sees the same data in the same order and resumes
from the same checkpoint), computes the gradients of its share, and the gradients are summed
across processes with ``all_reduce`` before every optimizer step: what
``DistributedDataParallel`` does for an ``nn.Module``, done here on the parameters of Pyro's
store (a model/guide pair is not one module whose ``forward`` DDP could wrap). Parameters
start equal (same seed) and stay equal. Only rank 0 writes checkpoints, run folders and
output; every rank reads a checkpoint to resume.

NumPyro runs several devices from one process (``pv.fit(..., devices=N)``), and several
processes, one per host, each with its devices, once :func:`initialize` has joined them
(``jax.distributed``; CPU collectives by gloo, so it runs on CPUs too)::

    import probvae as pv
    pv.inference.distributed.initialize()    # JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
    res = pv.fit(vae, data, devices="all")   # JAX_PROCESS_ID, or Slurm / Open MPI / k8s

:func:`processes` tells either kind of world: ``(index, count)`` of this process.

Examples
--------
>>> world()          # a plain process: rank 0 of 1
(0, 1)
>>> is_main()
True
"""
from __future__ import annotations

import contextlib
import datetime
import os
import re
import sys

__all__ = ["world", "processes", "is_main", "initialize", "launched", "timeout", "all_sum", "all_max",
           "agree_max", "watching_peers", "DistributedError", "PeerLostError",
           "finish"]

#: the environment :func:`initialize` reads: coordinator ``HOST:PORT``, process count, this
#: process's index (JAX reads the first itself; the other two are probvae's, as torchrun's
#: ``WORLD_SIZE``/``RANK``)
JAX_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
#: the seconds a process waits for the others (to join; a silent one is declared dead)
TIMEOUT_ENV = "PROBVAE_DIST_TIMEOUT"


def timeout(default=300) -> int:
    """The seconds a process waits for the others: ``$PROBVAE_DIST_TIMEOUT``, else ``default``.

    Examples
    --------
    >>> timeout(default=300) if "PROBVAE_DIST_TIMEOUT" not in os.environ else 300
    300
    """
    value = os.environ.get(TIMEOUT_ENV)
    if value is None or value == "":
        return int(default)
    try:
        seconds = int(value)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise ValueError(f"{TIMEOUT_ENV}={value!r}: give the seconds a process waits for the "
                         "others, a whole number >= 1")
    return seconds


def _jax_started() -> bool:
    """Whether ``jax.distributed`` joined this process to others (without importing JAX)."""
    jax = sys.modules.get("jax")
    if jax is None:
        return False
    started = getattr(jax.distributed, "is_initialized", None)
    if started is not None:
        return bool(started())
    from jax._src import distributed as _state            # older JAX
    return _state.global_state.client is not None


def processes() -> tuple:
    """``(index, count)`` of this process among those that train one model together: torchrun's
    ``RANK``/``WORLD_SIZE`` (Pyro), ``jax.process_index()``/``jax.process_count()`` after
    :func:`initialize` (NumPyro); ``(0, 1)`` for a plain process. Starts nothing.

    Examples
    --------
    >>> processes()
    (0, 1)
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1:
        return int(os.environ.get("RANK", "0")), size
    if _jax_started():
        import jax
        return jax.process_index(), jax.process_count()
    return 0, 1


def launched() -> bool:
    """Whether the environment says this process is one of several for ``jax.distributed``:
    ``$JAX_COORDINATOR_ADDRESS``, or a Slurm step or Open MPI job of several tasks.

    Examples
    --------
    >>> launched() == bool(os.environ.get("JAX_COORDINATOR_ADDRESS") or _cluster())
    True
    """
    return bool(os.environ.get("JAX_COORDINATOR_ADDRESS") or _cluster())


def _cluster() -> str:
    """The launcher whose environment JAX reads itself (``""``: none with several tasks)."""
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_STEP_ID" in os.environ:
        return "Slurm"
    if int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "Open MPI"
    return ""


def initialize(coordinator=None, num_processes=None, process_id=None, wait=None) -> tuple:
    """Join the processes of one NumPyro run (``jax.distributed.initialize``); returns
    ``(index, count)``. Call it first, before anything uses JAX; then ``pv.fit(...,
    devices="all")`` trains on every device of every process (one global mesh).

    Each argument falls back on the environment: ``coordinator`` ``"HOST:PORT"`` of process 0
    (``$JAX_COORDINATOR_ADDRESS``), ``num_processes`` (``$JAX_NUM_PROCESSES``), ``process_id``
    (``$JAX_PROCESS_ID``); under Slurm's ``srun`` or Open MPI's ``mpirun`` JAX reads all three
    from the launcher. On CPUs the collectives run over gloo. ``wait``: the seconds to wait for
    the other processes to join, and for a silent one before it is declared dead and the run
    stops (``$PROBVAE_DIST_TIMEOUT``, else JAX's 300 and 100). A second call returns at once.

    Raises
    ------
    ValueError
        When neither the arguments nor the environment say where the coordinator is, or a
        setting is not a number.
    DistributedError
        When the processes could not join (within ``wait``), or JAX already ran here.

    Examples
    --------
    >>> import os
    >>> env = {k: os.environ.pop(k) for k in JAX_ENV if k in os.environ}
    >>> try:
    ...     initialize()
    ... except ValueError as err:
    ...     print(str(err)[:52])
    no coordinator: pass initialize(coordinator="HOST:PO
    >>> os.environ.update(env)
    """
    if _jax_started():
        return processes()
    env = dict(zip(("coordinator", "num_processes", "process_id"), JAX_ENV))
    given = {"coordinator": coordinator, "num_processes": num_processes,
             "process_id": process_id}
    for key, value in given.items():
        if value is None and os.environ.get(env[key]):
            given[key] = os.environ[env[key]]
    for key in ("num_processes", "process_id"):
        if given[key] is not None:
            try:
                given[key] = int(given[key])
            except (TypeError, ValueError):
                raise ValueError(f"{key} must be a whole number (${env[key]}), got "
                                 f"{given[key]!r}") from None
    launcher = _cluster()
    if given["coordinator"] is None and not launcher:
        raise ValueError(
            "no coordinator: pass initialize(coordinator=\"HOST:PORT\", num_processes=N, "
            "process_id=I), or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
            "JAX_PROCESS_ID (HOST is process 0's address), or start the processes with srun "
            "or mpirun")
    if launcher == "" and (given["num_processes"] is None or given["process_id"] is None):
        raise ValueError("the coordinator is known but not the processes: give num_processes "
                         "and process_id (JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
    if given["process_id"] is not None and given["num_processes"] is not None and not (
            0 <= given["process_id"] < given["num_processes"]):
        raise ValueError(f"process_id={given['process_id']} is not one of the "
                         f"{given['num_processes']} processes (0..{given['num_processes'] - 1})")
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    seconds = {}
    if wait is not None or os.environ.get(TIMEOUT_ENV):
        limit = int(wait) if wait is not None else timeout()
        seconds = {"initialization_timeout": limit, "heartbeat_timeout_seconds": limit}
    try:
        jax.distributed.initialize(coordinator_address=given["coordinator"],
                                   num_processes=given["num_processes"],
                                   process_id=given["process_id"], **seconds)
    except RuntimeError as err:
        text = str(err).splitlines()[0][:300]
        if "before" in text or "already" in text:
            raise DistributedError(f"initialize() must come before anything uses JAX in "
                                   f"this process ({text})") from None
        raise DistributedError(f"could not join the other processes at "
                               f"{given['coordinator'] or 'the launcher' + chr(39) + 's address'}"
                               f": {text}") from None
    return processes()


def world() -> tuple:
    """``(rank, size)`` of this process; starts ``torch.distributed`` under ``torchrun``.

    Examples
    --------
    >>> rank, size = world()
    >>> 0 <= rank < size
    True
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return 0, 1
    import torch
    import torch.distributed as dist
    if not dist.is_initialized():        # a silent process is given up after timeout() s
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo",
                                timeout=datetime.timedelta(seconds=timeout()))
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """True in the process that writes files (rank 0 under torchrun, process 0 under
    ``jax.distributed``, or a plain process).

    Examples
    --------
    >>> is_main()
    True
    """
    return processes()[0] == 0


def agree_max(value: int) -> int:
    """The largest of ``value`` across the ``jax.distributed`` processes (every one must call
    it at the same point; a stop signal's number, 0 for none); ``value`` in a plain process.

    Examples
    --------
    >>> agree_max(15)
    15
    """
    if not _jax_started():
        return int(value)
    import jax
    if jax.process_count() == 1:
        return int(value)
    import numpy as np
    from jax.experimental import multihost_utils
    return int(np.asarray(multihost_utils.process_allgather(np.int32(value))).max())


class DistributedError(RuntimeError):
    """The processes of a several-process run could not work together (they could not join,
    or one was lost)."""


class PeerLostError(DistributedError):
    """Another process of a several-process run stopped (killed, crashed) or cannot be reached:
    this one stops too. The run folder keeps its last checkpoint, to resume on any number of
    processes."""


#: words of the errors a collective raises when another process is gone
_LOST = ("gloo", "connection reset", "connection closed", "broken pipe", "heartbeat",
         "unavailable", "timed out", "timeout", "barrier", "peer")
#: the PeerLostErrors' texts of this process (then torchrun's :func:`finish` waits for no one)
_LOST_PEERS = []

@contextlib.contextmanager
def watching_peers(what="training"):
    """Turn the error a collective raises when another process is gone (a broken gloo
    connection, a heartbeat timeout) into a :class:`PeerLostError` that says so and what to
    do; nothing changes in a plain process.

    Examples
    --------
    >>> with watching_peers():
    ...     total = 1 + 1
    """
    try:
        yield
    except PeerLostError:
        raise
    except Exception as err:
        index, count = processes()
        text = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        if count == 1 or not any(word in text.lower() for word in _LOST):
            raise
        # gloo's "[.../pair.cc:537] " and its "This is typically caused by ... GLHF!" go
        text = re.sub(r"^\[[^\]]*\] ", "", text).split(". This is typically")[0]
        _LOST_PEERS.append(text)
        message = (f"{what} stopped in process {index} of {count}: another process of this "
                   f"run stopped or cannot be reached, or does not make the same call (every "
                   f"process calls pv.fit, pv.evaluate, ... alike) ({text}). Every process "
                   "stops; the run "
                   "folder keeps its last checkpoint: continue it with pv.fit(..., "
                   "resume=FOLDER) or probvae train --resume FOLDER, on any number of processes")
        if _jax_started():   # JAX's coordination service may end this process itself, any
            print(f"probvae: {message}", file=sys.stderr, flush=True)       # moment now
        raise PeerLostError(message) from None


def all_sum(tensors):
    """Sum each tensor across processes, in place (nothing to do in a plain process).

    Examples
    --------
    >>> import torch
    >>> t = torch.ones(2)
    >>> all_sum([t]); t.tolist()
    [1.0, 1.0]
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch
    import torch.distributed as dist
    by_kind = {}                    # one all_reduce per dtype and device, not per tensor:
    for t in tensors:               # between hosts each one costs a round trip
        by_kind.setdefault((t.dtype, t.device), []).append(t)
    for group in by_kind.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        for t, part in zip(group, flat.split([t.numel() for t in group])):
            t.copy_(part.view_as(t))


def all_max(tensors):
    """The element-wise maximum of each tensor across processes, in place (nothing to do in a
    plain process).

    Examples
    --------
    >>> import torch
    >>> t = torch.tensor([15.0])
    >>> all_max([t]); t.tolist()
    [15.0]
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch.distributed as dist
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)


def finish():
    """Under torchrun: wait for every process, then close the process group (a process that
    left early would take the group down while rank 0 still writes). Nothing otherwise.
    After a :class:`PeerLostError` it waits for no one (the lost process never comes).

    Examples
    --------
    >>> finish()
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch.distributed as dist
    if dist.is_initialized():
        try:
            if not _LOST_PEERS:
                with watching_peers("finishing"):
                    dist.barrier()
        finally:
            _LOST_PEERS.clear()
            dist.destroy_process_group()
