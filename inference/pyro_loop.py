"""The Pyro training loop: eager SVI steps over shuffled mini-batches.

Pyro's ``Jit*`` ELBOs rely on ``torch.jit.trace``, deprecated in torch 2.13 and known to crash
with some models; eager Pyro with vectorised particles is used instead (``bench/backends.py``
measures it).

:func:`probvae.fit` runs it for models made with ``backend="pyro"``:

>>> import probvae as pv
>>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="pyro"),
...              pv.data.load("digits").train, epochs=2, progress=False)
>>> len(res.history["train_loss"]), sorted(res.params["params"])[:2]
(2, ['decoder$$$net.0.bias', 'decoder$$$net.0.weight'])
"""
from __future__ import annotations

import weakref

import pyro
import torch
from pyro.infer import SVI

from probvae import batch as batching
from probvae.backends import init_params
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


def _batches(n, batch_size, generator):
    b = min(batch_size, n)
    perm = torch.randperm(n, generator=generator)
    return [perm[i * b:(i + 1) * b] for i in range(n // b)]


def run(model, data, valid, elbo, schedule, *, epochs, batch_size, lr, seed, tracker,
        labelled=None):
    """Train ``model`` (built) with its own param-store state; return that state.

    ``data``, ``valid`` and ``labelled`` are batches (see :mod:`probvae.batch`). With
    ``labelled`` (which has ``y``) every unlabelled step is followed by a step on a labelled
    batch drawn anew from the labelled examples.
    """
    bk = model.bk
    data = batching.to_backend(bk, data)
    valid = batching.to_backend(bk, valid) if valid is not None else None
    if labelled is not None:
        labelled = batching.to_backend(bk, labelled)
        nl = batching.size(labelled)
    n = batching.size(data)
    gen = torch.Generator().manual_seed(seed)
    best = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kw0 = {"kl_weight": schedule(0)} if schedule else {}
        state = init_params(bk, model, {**batching.take(data, slice(0, min(batch_size, n))),
                                        **kw0}, seed)
        with param_scope(state) as store:
            _reset_to_initial(store.get_state()["params"])
            svi = SVI(model.model, model.guide, pyro.optim.Adam({"lr": lr}), loss=elbo)
            for epoch in range(epochs):
                kw = {"kl_weight": schedule(epoch)} if schedule else {}
                batches = _batches(n, batch_size, gen)
                total = 0.0
                for idx in batches:
                    total += svi.step(**batching.take(data, idx), **kw)
                    if labelled is not None:
                        j = torch.randperm(nl, generator=gen)[:min(batch_size, nl)]
                        svi.step(**batching.take(labelled, j), **kw)
                train_loss = total / (len(batches) * len(batches[0]))
                valid_loss = None
                if valid is not None:
                    vkw = {"kl_weight": schedule.final} if schedule else {}
                    with torch.no_grad():
                        valid_loss = sum(svi.evaluate_loss(**part, **vkw) for _, part, _
                                         in batching.chunks(valid, batch_size))
                        valid_loss /= batching.size(valid)
                improved, stop = tracker.record(epoch, train_loss, valid_loss,
                                                kw.get("kl_weight", 1.0), params=store.get_state)
                if improved:
                    best = bk.snapshot(store.get_state())
                if stop:
                    break
    return bk.finalize(state, best if best is not None else bk.snapshot(state))
