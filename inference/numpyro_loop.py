"""The NumPyro training loop: a whole epoch is one compiled XLA call (``jit`` of ``lax.scan``).

:func:`probvae.fit` runs it for models made with ``backend="numpyro"``:

>>> import probvae as pv
>>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,)),
...              pv.data.load("digits").train, epochs=2, progress=False)
>>> len(res.history["train_loss"]), sorted(res.params)
(2, ['decoder$params', 'encoder$params'])
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from numpyro.infer import SVI

from probvae import batch as batching

__all__ = ["run"]


def run(model, data, valid, elbo, schedule, *, epochs, batch_size, lr, seed, tracker,
        labelled=None):
    """Train ``model`` (built) on batch ``data``; return its parameter dict (constrained values).

    ``data``, ``valid`` and ``labelled`` are batches (dicts of per-example arrays, see
    :mod:`probvae.batch`). With ``labelled`` (which has ``y``) each scan step also updates on a
    labelled batch (drawn anew from the labelled examples), inside the same compiled epoch.
    """
    bk = model.bk
    svi = SVI(model.model, model.guide, optax.adam(lr), loss=elbo)
    n = batching.size(data)
    b = min(batch_size, n)
    nb = n // b
    data = batching.to_backend(bk, data)
    key_init, key_shuffle = jax.random.split(jax.random.PRNGKey(seed))
    kw0 = {"kl_weight": jnp.float32(schedule(0))} if schedule else {}
    state = svi.init(key_init, **batching.take(data, slice(0, b)), **kw0)

    if labelled is not None:
        labelled = batching.to_backend(bk, labelled)
        nl = batching.size(labelled)
        bl = min(b, nl)

    @jax.jit
    def epoch_fn(state, key, data, kw, labelled):
        key_perm, key_lab = jax.random.split(key)
        idx = jax.random.permutation(key_perm, n)[: nb * b].reshape(nb, b)

        def step(state, inputs):
            i, k = inputs
            state, loss = svi.update(state, **batching.take(data, i), **kw)
            if labelled is not None:
                j = jax.random.permutation(k, nl)[:bl]
                state, _ = svi.update(state, **batching.take(labelled, j), **kw)
            return state, loss

        state, losses = jax.lax.scan(step, state, (idx, jax.random.split(key_lab, nb)))
        return state, losses.sum() / (nb * b)

    eval_fn = jax.jit(lambda state, part, kw: svi.evaluate(state, **part, **kw))
    valid = batching.to_backend(bk, valid) if valid is not None else None
    best = None
    for epoch in range(epochs):
        kw = {"kl_weight": jnp.float32(schedule(epoch))} if schedule else {}
        state, train_loss = epoch_fn(state, jax.random.fold_in(key_shuffle, epoch), data, kw,
                                     labelled)
        valid_loss = None
        if valid is not None:
            vkw = {"kl_weight": jnp.float32(schedule.final)} if schedule else {}
            valid_loss = float(sum(eval_fn(state, part, vkw)
                                   for _, part, _ in batching.chunks(valid, b))) / batching.size(valid)
        improved, stop = tracker.record(epoch, float(train_loss), valid_loss,
                                        float(kw.get("kl_weight", 1.0)),
                                        params=lambda: svi.get_params(state))
        if improved:
            best = state
        if stop:
            break
    return svi.get_params(best if best is not None else state)
