"""The NumPyro training loop: a whole epoch is one compiled XLA call (``jit`` of ``lax.scan``)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from numpyro.infer import SVI

__all__ = ["run"]


def run(model, x, x_valid, elbo, schedule, *, epochs, batch_size, lr, seed, tracker):
    """Train ``model`` (built); return its parameter dict (constrained values)."""
    svi = SVI(model.model, model.guide, optax.adam(lr), loss=elbo)
    n = len(x)
    b = min(batch_size, n)
    nb = n // b
    x = jnp.asarray(x)
    key_init, key_shuffle = jax.random.split(jax.random.PRNGKey(seed))
    kw0 = {"kl_weight": jnp.float32(schedule(0))} if schedule else {}
    state = svi.init(key_init, x[:b], **kw0)

    @jax.jit
    def epoch_fn(state, key, x, kw):
        idx = jax.random.permutation(key, n)[: nb * b].reshape(nb, b)

        def step(state, i):
            return svi.update(state, x[i], **kw)

        state, losses = jax.lax.scan(step, state, idx)
        return state, losses.sum() / (nb * b)

    eval_fn = jax.jit(lambda state, xb, kw: svi.evaluate(state, xb, **kw))
    xv = jnp.asarray(x_valid) if x_valid is not None else None
    best = None
    for epoch in range(epochs):
        kw = {"kl_weight": jnp.float32(schedule(epoch))} if schedule else {}
        state, train_loss = epoch_fn(state, jax.random.fold_in(key_shuffle, epoch), x, kw)
        valid_loss = None
        if xv is not None:
            vkw = {"kl_weight": jnp.float32(schedule.final)} if schedule else {}
            valid_loss = float(sum(eval_fn(state, xv[i:i + b], vkw)
                                   for i in range(0, len(xv), b))) / len(xv)
        improved, stop = tracker.record(epoch, float(train_loss), valid_loss,
                                        float(kw.get("kl_weight", 1.0)))
        if improved:
            best = state
        if stop:
            break
    return svi.get_params(best if best is not None else state)
