"""The NumPyro training loop: a whole epoch is one compiled XLA call (``jit`` of ``lax.scan``)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from numpyro.infer import SVI

__all__ = ["run"]


def run(model, x, x_valid, elbo, schedule, *, epochs, batch_size, lr, seed, tracker,
        labelled=None):
    """Train ``model`` (built); return its parameter dict (constrained values).

    With ``labelled=(x_l, y_l)`` each scan step also updates on a labelled batch (drawn anew
    from the labelled examples), inside the same compiled epoch.
    """
    svi = SVI(model.model, model.guide, optax.adam(lr), loss=elbo)
    n = len(x)
    b = min(batch_size, n)
    nb = n // b
    x = jnp.asarray(x)
    key_init, key_shuffle = jax.random.split(jax.random.PRNGKey(seed))
    kw0 = {"kl_weight": jnp.float32(schedule(0))} if schedule else {}
    state = svi.init(key_init, x[:b], **kw0)

    if labelled is not None:
        xl, yl = jnp.asarray(labelled[0]), jnp.asarray(labelled[1], dtype=jnp.int32)
        nl = len(xl)
        bl = min(b, nl)
    else:
        xl = yl = None

    @jax.jit
    def epoch_fn(state, key, x, kw, xl, yl):
        key_perm, key_lab = jax.random.split(key)
        idx = jax.random.permutation(key_perm, n)[: nb * b].reshape(nb, b)

        def step(state, inputs):
            i, k = inputs
            state, loss = svi.update(state, x[i], **kw)
            if xl is not None:
                j = jax.random.permutation(k, nl)[:bl]
                state, _ = svi.update(state, xl[j], y=yl[j], **kw)
            return state, loss

        state, losses = jax.lax.scan(step, state, (idx, jax.random.split(key_lab, nb)))
        return state, losses.sum() / (nb * b)

    eval_fn = jax.jit(lambda state, xb, kw: svi.evaluate(state, xb, **kw))
    xv = jnp.asarray(x_valid) if x_valid is not None else None
    best = None
    for epoch in range(epochs):
        kw = {"kl_weight": jnp.float32(schedule(epoch))} if schedule else {}
        state, train_loss = epoch_fn(state, jax.random.fold_in(key_shuffle, epoch), x, kw, xl, yl)
        valid_loss = None
        if xv is not None:
            vkw = {"kl_weight": jnp.float32(schedule.final)} if schedule else {}
            valid_loss = float(sum(eval_fn(state, xv[i:i + b], vkw)
                                   for i in range(0, len(xv), b))) / len(xv)
        improved, stop = tracker.record(epoch, float(train_loss), valid_loss,
                                        float(kw.get("kl_weight", 1.0)),
                                        params=lambda: svi.get_params(state))
        if improved:
            best = state
        if stop:
            break
    return svi.get_params(best if best is not None else state)
