"""The Pyro training loop: eager SVI steps over shuffled mini-batches.

Pyro's ``Jit*`` ELBOs rely on ``torch.jit.trace``, deprecated in torch 2.13 and known to crash
with some models; eager Pyro with vectorised particles is used instead (``bench/backends.py``
measures it).
"""
from __future__ import annotations

import pyro
import torch
from pyro.infer import SVI

from probvae.backends.pyro_backend import param_scope

__all__ = ["run"]


def _batches(n, batch_size, generator):
    b = min(batch_size, n)
    perm = torch.randperm(n, generator=generator)
    return [perm[i * b:(i + 1) * b] for i in range(n // b)]


def run(model, x, x_valid, elbo, schedule, *, epochs, batch_size, lr, seed, tracker):
    """Train ``model`` (built) with its own param-store state; return that state."""
    bk = model.bk
    state = bk.new_params()
    xt = torch.as_tensor(x)
    xv = torch.as_tensor(x_valid) if x_valid is not None else None
    gen = torch.Generator().manual_seed(seed)
    best = None
    with param_scope(state), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        svi = SVI(model.model, model.guide, pyro.optim.Adam({"lr": lr}), loss=elbo)
        for epoch in range(epochs):
            kw = {"kl_weight": schedule(epoch)} if schedule else {}
            batches = _batches(len(xt), batch_size, gen)
            total = sum(svi.step(xt[idx], **kw) for idx in batches)
            train_loss = total / (len(batches) * len(batches[0]))
            valid_loss = None
            if xv is not None:
                vkw = {"kl_weight": schedule.final} if schedule else {}
                with torch.no_grad():
                    valid_loss = sum(svi.evaluate_loss(xv[i:i + batch_size], **vkw)
                                     for i in range(0, len(xv), batch_size)) / len(xv)
            improved, stop = tracker.record(epoch, train_loss, valid_loss, kw.get("kl_weight", 1.0))
            if improved:
                best = bk.copy_params(pyro.get_param_store().get_state())
            if stop:
                break
    if best is not None:
        bk.restore_params(state, best)
    return state
