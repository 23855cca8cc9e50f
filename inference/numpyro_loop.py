"""The NumPyro training loop: a whole epoch is one compiled XLA call (``jit`` of ``lax.scan``).

:func:`probvae.fit` drives it for models made with ``backend="numpyro"``:

>>> import probvae as pv
>>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,)),
...              pv.data.load("digits").train, epochs=2, progress=False)
>>> len(res.history["train_loss"]), sorted(res.params)
(2, ['decoder$params', 'encoder$params'])

The loop's state between epochs (the ``SVIState``: parameters, Adam's moments and the random
key) is plain arrays, so a checkpoint holds it exactly and a resumed run continues bit for bit.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI

from probvae import batch as batching

__all__ = ["Loop"]


class Loop:
    """One model's training on NumPyro: ``epoch`` runs a compiled epoch, ``state``/``restore``
    move everything that changes between epochs in and out as NumPy arrays."""

    #: a Ctrl-C waits for the compiled epoch to finish
    steps_interruptible = False

    def __init__(self, model, data, valid, elbo, schedule, *, batch_size, lr, seed,
                 labelled=None, clip_norm=None):
        bk = self.bk = model.bk
        optim = optax.adam(lr)
        if clip_norm is not None:
            optim = optax.chain(optax.clip_by_global_norm(float(clip_norm)), optim)
        self.svi = svi = SVI(model.model, model.guide, optim, loss=elbo)
        self.schedule = schedule
        n = batching.size(data)
        b = self.b = min(batch_size, n)
        nb = n // b
        self.data = batching.to_backend(bk, data)
        key_init, self.key_shuffle = jax.random.split(jax.random.PRNGKey(seed))
        self.svi_state = svi.init(key_init, **batching.take(self.data, slice(0, b)),
                                  **self._kw(0))
        self.labelled = None
        if labelled is not None:
            self.labelled = batching.to_backend(bk, labelled)
            nl = batching.size(self.labelled)
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

        self._epoch_fn = epoch_fn
        self._eval_fn = jax.jit(lambda state, part, kw: svi.evaluate(state, **part, **kw))
        self.valid = batching.to_backend(bk, valid) if valid is not None else None

    def _kw(self, epoch, final=False):
        if not self.schedule:
            return {}
        return {"kl_weight": jnp.float32(self.schedule.final if final else self.schedule(epoch))}

    def kl_weight(self, epoch) -> float:
        return float(self.schedule(epoch)) if self.schedule else 1.0

    # ---- training -------------------------------------------------------------------------
    def epoch(self, epoch, stop=None) -> tuple:
        """Run epoch ``epoch``; returns ``(train_loss, finished)`` (always finished here)."""
        self.svi_state, loss = self._epoch_fn(self.svi_state,
                                              jax.random.fold_in(self.key_shuffle, epoch),
                                              self.data, self._kw(epoch), self.labelled)
        return float(loss), True

    def initial_loss(self) -> float:
        """The objective per example on the first training batch, before any step."""
        part = batching.take(self.data, slice(0, self.b))
        return float(self._eval_fn(self.svi_state, part, self._kw(0))) / self.b

    def validate(self):
        if self.valid is None:
            return None
        kw = self._kw(0, final=True)
        total = sum(float(self._eval_fn(self.svi_state, part, kw))
                    for _, part, _ in batching.chunks(self.valid, self.b))
        return total / batching.size(self.valid)

    def params(self):
        """The current parameters (constrained values, NumPyro's dict)."""
        return self.svi.get_params(self.svi_state)

    def snapshot(self):
        """A copy of the current parameters that later steps do not change."""
        return self.params()          # JAX arrays are immutable

    def finite(self) -> bool:
        return all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree_util.tree_leaves(self.params()))

    def result(self, snapshot):
        """The parameters a :class:`FitResult` holds, from a :meth:`snapshot`."""
        return snapshot

    # ---- checkpoints ----------------------------------------------------------------------
    def state(self) -> tuple:
        """``(meta, arrays)``: the SVI state as leaves ``svi/0``, ``svi/1``, ...."""
        leaves = jax.tree_util.tree_leaves(self.svi_state)
        return {"leaves": len(leaves)}, {f"svi/{i}": np.asarray(v) for i, v in enumerate(leaves)}

    def restore(self, meta, arrays):
        leaves, treedef = jax.tree_util.tree_flatten(self.svi_state)
        if int(meta.get("leaves", -1)) != len(leaves):
            raise ValueError(f"the checkpoint's optimizer state has {meta.get('leaves')} parts "
                             f"but this model's has {len(leaves)}: it was made by another model "
                             "or objective")
        new = []
        for i, old in enumerate(leaves):
            a = arrays.get(f"svi/{i}")
            if a is None or a.shape != old.shape or a.dtype != old.dtype:
                raise ValueError(f"optimizer state part {i}: expected {old.dtype} "
                                 f"{tuple(old.shape)}, found "
                                 f"{'nothing' if a is None else f'{a.dtype} {a.shape}'}")
            new.append(jnp.asarray(a))
        self.svi_state = jax.tree_util.tree_unflatten(treedef, new)

    def snapshot_to_arrays(self, snapshot) -> dict:
        return self.bk.params_to_numpy(snapshot)

    def snapshot_from_arrays(self, arrays):
        return self.bk.params_from_numpy(self.params(), arrays)
