"""The Pyro training loop: eager SVI steps over shuffled mini-batches.

Pyro's ``Jit*`` ELBOs rely on ``torch.jit.trace``, deprecated in torch 2.13 and known to crash
with some models; eager Pyro with vectorised particles is used instead (``bench/backends.py``
measures it).
"""
from __future__ import annotations

import weakref

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import SVI

from probvae.backends.pyro_backend import param_scope

__all__ = ["run"]

# First-seen values of live parameter tensors (a user's torch modules outlive a fit): a refit of
# the same (model, guide) pair starts from them, so the same seed gives the same numbers.
_INITIAL: dict = {}


def _reset_to_initial(params):
    with torch.no_grad():
        for t in params.values():
            ref_init = _INITIAL.get(id(t))
            if ref_init is not None and ref_init[0]() is t:
                t.copy_(ref_init[1])
            else:
                _INITIAL[id(t)] = (weakref.ref(t, lambda _r, k=id(t): _INITIAL.pop(k, None)),
                                   t.detach().clone())


def _register(model, x, kw, seed):
    """Create every parameter in the current store by tracing guide and model once."""
    gtr = poutine.trace(poutine.seed(model.guide, seed)).get_trace(x, **kw)
    poutine.trace(poutine.replay(poutine.seed(model.model, seed), trace=gtr)).get_trace(x, **kw)


def _batches(n, batch_size, generator):
    b = min(batch_size, n)
    perm = torch.randperm(n, generator=generator)
    return [perm[i * b:(i + 1) * b] for i in range(n // b)]


def run(model, x, x_valid, elbo, schedule, *, epochs, batch_size, lr, seed, tracker,
        labelled=None):
    """Train ``model`` (built) with its own param-store state; return that state.

    With ``labelled=(x_l, y_l)`` every unlabelled step is followed by a step on a labelled
    batch drawn anew from the labelled examples.
    """
    bk = model.bk
    state = bk.new_params()
    xt = torch.as_tensor(x)
    xv = torch.as_tensor(x_valid) if x_valid is not None else None
    if labelled is not None:
        xl, yl = torch.as_tensor(labelled[0]), torch.as_tensor(labelled[1], dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    best = None
    with param_scope(state) as store, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kw0 = {"kl_weight": schedule(0)} if schedule else {}
        with torch.no_grad():
            _register(model, xt[:min(batch_size, len(xt))], kw0, seed)
        _reset_to_initial(store.get_state()["params"])
        svi = SVI(model.model, model.guide, pyro.optim.Adam({"lr": lr}), loss=elbo)
        for epoch in range(epochs):
            kw = {"kl_weight": schedule(epoch)} if schedule else {}
            batches = _batches(len(xt), batch_size, gen)
            total = 0.0
            for idx in batches:
                total += svi.step(xt[idx], **kw)
                if labelled is not None:
                    j = torch.randperm(len(xl), generator=gen)[:min(batch_size, len(xl))]
                    svi.step(xl[j], y=yl[j], **kw)
            train_loss = total / (len(batches) * len(batches[0]))
            valid_loss = None
            if xv is not None:
                vkw = {"kl_weight": schedule.final} if schedule else {}
                with torch.no_grad():
                    valid_loss = sum(svi.evaluate_loss(xv[i:i + batch_size], **vkw)
                                     for i in range(0, len(xv), batch_size)) / len(xv)
            improved, stop = tracker.record(epoch, train_loss, valid_loss, kw.get("kl_weight", 1.0),
                                            params=store.get_state)
            if improved:
                best = bk.snapshot(store.get_state())
            if stop:
                break
    return bk.finalize(state, best if best is not None else bk.snapshot(state))
