"""Several processes for Pyro: ``torch.distributed``, launched by ``torchrun``.

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

NumPyro runs several devices from one process instead: ``pv.fit(..., devices=N)``.

Examples
--------
>>> world()          # a plain process: rank 0 of 1
(0, 1)
>>> is_main()
True
"""
from __future__ import annotations

import os

__all__ = ["world", "is_main", "all_sum", "all_max", "finish"]


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
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """True in the process that writes files (rank 0, or a plain process).

    Examples
    --------
    >>> is_main()
    True
    """
    return int(os.environ.get("RANK", "0")) == 0


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
    import torch.distributed as dist
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)


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

    Examples
    --------
    >>> finish()
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch.distributed as dist
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
