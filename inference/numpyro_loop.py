"""The NumPyro training loop: a whole epoch is one compiled XLA call (``jit`` of ``lax.scan``).

:func:`probvae.fit` drives it for models made with ``backend="numpyro"``:

>>> import probvae as pv
>>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,)),
...              pv.data.load("digits").train, epochs=2, progress=False)
>>> len(res.history["train_loss"]), sorted(res.param_state)
(2, ['decoder$params', 'encoder$params'])

The loop's state between epochs (the ``SVIState``: parameters, the optimizer's state, with its
step count where a schedule needs one, and the random key) is plain arrays, so a checkpoint
holds it exactly and a resumed run continues bit for bit.
"""
from __future__ import annotations

import functools
import signal
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro.infer import SVI

from probvae import batch as batching
from probvae.backends.numpyro_cache import ProgramCache
from probvae.outputs import DamagedFileError, check_field

from . import distributed, objectives, programs
from .compiling import QUICK, Compiling, keep_programs, plan
from .inputs import StreamedBatch
from .optimizers import Optimizer

__all__ = ["Loop"]


#: compiled functions of recent fits, by configuration: a refit of the same model, settings
#: and data shapes (the estimators, repeated experiments) neither traces nor compiles again
_COMPILED: "OrderedDict[tuple, tuple]" = OrderedDict()
_COMPILED_MAX = 16
#: validation rows scored per compiled call (one shape for a validation set up to this size)
VALID_CHUNK = 4096
def _signature(batch):
    if batch is None:
        return None
    return tuple((k, tuple(v.shape), str(v.dtype)) for k, v in sorted(batch.items()))


def _in_site_order(method):
    """``method`` inside :meth:`ProgramCache.sorted_sets`: every program the loop traces
    (exported, kept or jitted on a first call) sums NumPyro's ELBO terms in one order, the
    same in every process, so the caches hit and a resumed run continues bit for bit."""
    @functools.wraps(method)
    def scoped(*args, **kwargs):
        with ProgramCache.sorted_sets():
            return method(*args, **kwargs)
    return scoped


def _binary(key, part):
    """``part`` with its grey pixels replaced by one Bernoulli draw each."""
    return {**part, "x": (jax.random.uniform(key, part["x"].shape) < part["x"])
            .astype(part["x"].dtype)}


def _split_across(mesh):
    """A function that lays a batch's arrays out across ``mesh``'s devices along the example
    axis (identity without a mesh): XLA then runs each device's share of the examples and
    sums the gradients across devices itself (data parallelism, parameters replicated)."""
    if mesh is None:
        return lambda part: part
    from jax.sharding import NamedSharding, PartitionSpec
    spec = NamedSharding(mesh, PartitionSpec("batch"))
    return lambda part: jax.tree_util.tree_map(
        lambda a: jax.lax.with_sharding_constraint(a, spec), part)


def device_mesh(devices, kind=None):
    """A one-axis ``jax.sharding.Mesh`` ("batch") over ``devices`` (int: the first that many
    of ``jax.devices(kind)``; ``"all"``; a list of devices), or None for one device. ``kind``
    is ``"cpu"``, ``"gpu"`` or None (JAX's default platform).

    Examples
    --------
    >>> device_mesh(1) is None
    True
    """
    if devices is None:
        return None
    available = jax.devices(kind)
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"devices takes an int, 'all' or a list of jax devices, got "
                             f"{devices!r}")
        chosen = available
    elif isinstance(devices, (list, tuple)):
        chosen = list(devices)
    else:
        n = int(devices)
        if n < 1:
            raise ValueError(f"devices must be >= 1, got {devices}")
        if n > len(available):
            raise ValueError(
                f"devices={n} but JAX sees {len(available)} {available[0].platform} device(s). "
                "On a CPU, test with XLA_FLAGS=--xla_force_host_platform_device_count="
                f"{n} set before Python starts; for GPUs install the CUDA build of jax "
                "(pip install -U 'jax[cuda12]')")
        chosen = available[:n]
    if jax.process_count() > 1 and {d.process_index for d in chosen} != set(
            range(jax.process_count())):
        raise ValueError(
            f"this process is one of {jax.process_count()} joined by jax.distributed, which "
            f"train one model together: devices='all' (or None) spans every process's devices "
            f"({len(available)}); devices={devices!r} leaves some processes out")
    if len(chosen) == 1:
        return None
    from jax.sharding import Mesh
    return Mesh(np.asarray(chosen), ("batch",))


def _compile(svi, n, b, nl, bl, binarize=False, mesh=None):
    """The jitted init, epoch and evaluation functions of one configuration."""
    nb = n // b
    split = _split_across(mesh)

    @jax.jit
    def epoch_fn(state, key, index, data, kw, labelled):
        key_perm, key_lab = jax.random.split(jax.random.fold_in(key, index))
        idx = jax.random.permutation(key_perm, n)[: nb * b].reshape(nb, b)

        def step(state, inputs):
            i, k = inputs
            part = split(batching.take(data, i))
            if binarize:
                k, k_unlab, k_lab = jax.random.split(k, 3)
                part = _binary(k_unlab, part)
            state, loss = svi.update(state, **part, **kw)
            if labelled is not None:
                j = jax.random.permutation(k, nl)[:bl]
                lab = split(batching.take(labelled, j))
                state, _ = svi.update(state, **(_binary(k_lab, lab) if binarize else lab), **kw)
            return state, loss

        state, losses = jax.lax.scan(step, state, (idx, jax.random.split(key_lab, nb)))
        return state, losses.sum() / (nb * b), losses[0] / b

    @jax.jit
    def init_fn(seed, first, kw):
        """The SVI state and the shuffling key from ``seed`` (the keys are made in here: made
        outside, each would compile a small program of its own at start-up)."""
        key_init, key_shuffle = jax.random.split(jax.random.PRNGKey(seed))
        if binarize:                                 # init sees binary pixels too
            first = _binary(jax.random.PRNGKey(seed), first)
        return svi.init(key_init, **first, **kw), key_shuffle

    # with a mesh, each device scores its share of the examples (XLA sums the shares)
    eval_fn = jax.jit(lambda state, part, kw: svi.evaluate(state, **split(part), **kw))
    return init_fn, epoch_fn, eval_fn


def _convolutional(model) -> bool:
    """Whether the model's networks (built-in or a user's Equinox modules) hold a convolution:
    then its programs compile optimised from the start (:func:`.compiling.plan`)."""
    import equinox as eqx
    kinds = (eqx.nn.Conv, eqx.nn.ConvTranspose)
    leaves = jax.tree_util.tree_leaves(getattr(model, "nets", None) or {},
                                       is_leaf=lambda v: isinstance(v, kinds))
    return any(isinstance(v, kinds) for v in leaves)


class Loop:
    """One model's training on NumPyro: ``epoch`` runs a compiled epoch, ``state``/``restore``
    move everything that changes between epochs in and out as NumPy arrays."""

    #: a Ctrl-C waits for the compiled epoch to finish
    steps_interruptible = False
    #: a compiled epoch is never left part-way
    pending = None

    @_in_site_order
    def __init__(self, model, data, valid, elbo, schedule, *, batch_size, lr, seed,
                 labelled=None, clip_norm=None, cache_key=None, binarize=False, devices=None,
                 device=None, objective=None, resuming=False, epochs=None, optimizer=None):
        bk = self.bk = model.bk
        optimizer = Optimizer() if optimizer is None else optimizer    # (default: Adam)
        bk.program_cache.start()         # JAX's compilation cache on, the first time a fit runs
        if devices is None and jax.process_count() > 1:   # joined processes: all together
            devices = "all"
        mesh = self.mesh = device_mesh(devices, device)   # fit runs it under bk.placement
        #: devices training (of every process), and processes
        self.device_count = 1 if mesh is None else int(mesh.devices.size)
        self.process_count = jax.process_count()
        if mesh is not None:
            ndev = mesh.devices.size
            if batch_size % ndev:
                raise ValueError(f"batch_size={batch_size} does not split evenly across "
                                 f"{ndev} devices: use a multiple of {ndev}")
        self.schedule = schedule
        self.stream, self.seed, self.binarize = None, seed, binarize
        if isinstance(data, StreamedBatch):          # from disk: the program runs per chunk
            self.stream, data = data, data.first_chunk(batch_size, labelled)
            self._chunk_fns = {}
        n = batching.size(data)
        b = self.b = min(batch_size, n)
        self.data = batching.to_backend(bk, data)
        self.labelled = None
        nl = bl = None
        if labelled is not None:
            self.labelled = batching.to_backend(bk, labelled)
            nl = batching.size(self.labelled)
            bl = min(b, nl)
        self.valid = batching.to_backend(bk, valid) if valid is not None else None
        if mesh is not None and ((nl is not None and bl % mesh.devices.size)
                                 or b % mesh.devices.size):
            raise ValueError(f"the batches ({b} examples, {bl} labelled) do not split evenly "
                             f"across {mesh.devices.size} devices: use more data or a batch "
                             "size that does")
        if mesh is not None:                      # data and state start replicated
            self._replicate()
        # a user's optimizer or schedule is keyed by identity: never another's programs
        key = None if cache_key is None else (cache_key, optimizer.cache_token(lr), clip_norm,
                                              seed, n, b, nl, bl,
                                              _signature(data), _signature(labelled), binarize,
                                              None if mesh is None else
                                              tuple(d.id for d in mesh.devices.flat))
        if key is not None and key in _COMPILED:
            _COMPILED.move_to_end(key)
            self.svi, fns, memo = _COMPILED[key]
        else:
            optim = optimizer.build(bk, lr)     # optax's, or the user's transformation
            if clip_norm is not None:
                optim = optax.chain(optax.clip_by_global_norm(float(clip_norm)), optim)
            weighted = model.contract.continuous_names    # the KL weight scales these
            self.svi = SVI(objectives.kl_weighted(bk, model.model, weighted),
                           objectives.kl_weighted(bk, model.guide, weighted), optim, loss=elbo)
            fns, memo = _compile(self.svi, n, b, nl, bl, binarize, mesh), {}
            if key is not None:
                _COMPILED[key] = (self.svi, fns, memo)
                keep_programs(_COMPILED, _COMPILED_MAX)
        init_fn, self._epoch_fn, self._eval_fn = fns
        self._chunk_rows = n
        # sliced before it goes to JAX: slicing there would compile a small program
        first_batch = batching.to_backend(bk, batching.take(data, slice(0, b)))
        valid_part = (None if self.valid is None else
                      next(batching.chunks(self.valid, VALID_CHUNK))[1])
        kw = self._kw(0)
        state, shuffle = jax.eval_shape(init_fn, seed, first_batch, kw)
        loss = jax.ShapeDtypeStruct((), jnp.float32)
        index = jax.ShapeDtypeStruct((), jnp.int32)
        self._jobs = {"epoch": ((state, shuffle, index, self.data, kw, self.labelled),
                                (state, loss, loss), self._epoch_fn)}
        if valid_part is not None:
            self._jobs["eval"] = ((state, valid_part, self._kw(0, final=True)), loss,
                                  self._eval_fn)
        self._valid_part = valid_part
        # which programs compile how (quick, optimised), from the settings (:func:`.compiling.plan`);
        # with a mesh, or data streamed from disk, optimised from the start
        size = sum(leaf.size for leaf in jax.tree_util.tree_leaves(state))
        self.plan = ("full" if mesh is not None or self.stream is not None else
                     plan(epochs, (n // b) * (1 if labelled is None else 2), b, size,
                          convolutional=_convolutional(model)))
        self._programs_of = Compiling(quick=self.plan == "quick" or
                                       (self.plan == "tiered" and not resuming))
        init = init_fn      # runs once: compiled quickly, first (while the main thread traces
        if mesh is None:    # the others); jitted for a mesh's placed inputs
            init = self._programs_of.submit(init_fn.lower(seed, first_batch, kw).compile, QUICK)
        if mesh is not None:             # jitted: compiled on their first call, for the
            for k, (_, _, fn) in self._jobs.items():           # placed (replicated) inputs
                self._programs_of.add(k, lambda options, fn=fn: fn)
        elif (key is not None and optimizer.portable(lr)
              and programs.own_code(model, elbo, schedule, objective)):
            self._kept(programs.key(         # the in-memory key less seed and devices
                cache_key, lr=lr, clip_norm=clip_norm, rows=n, batch_size=b, labelled_rows=nl,
                labelled_batch_size=bl, data=_signature(data), labelled=_signature(labelled),
                validation=_signature(valid_part), binarize=binarize,
                kl_schedule=bool(schedule)), memo)
        else:
            for k in self._jobs:
                self._programs_of.add(k, self._lowered(k))
        if self.plan == "full" or (self.plan == "tiered" and (resuming or epochs != 1)):
            self._programs_of.start_optimised()
        else:                           # quick, or tiered for one epoch: none optimised
            self._programs_of.done()
        if mesh is None:
            init = init.result()
        self.svi_state, self.key_shuffle = self._placed(init(seed, first_batch, kw))
        self._last_epoch = None
        self.first_loss = None

    def _replicate(self):
        """Copy the data to every device of the mesh (each step takes its batch there)."""
        self.data = self._placed(self.data)
        self.labelled = self._placed(self.labelled)
        self.valid = self._placed(self.valid)

    def _placed(self, tree):
        """``tree`` replicated on the mesh's devices (as it is without a mesh)."""
        if self.mesh is None or tree is None:
            return tree
        from jax.sharding import NamedSharding, PartitionSpec
        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

    def _lowered(self, name):
        """``compile(options)`` for the jitted program ``name``, traced from abstract shapes
        now, on this thread (NumPyro's effect handlers live on one global stack)."""
        args, _, fn = self._jobs[name]
        return fn.lower(*args).compile

    def _kept(self, key, memo):
        """The epoch and validation programs as :class:`programs.Program` s, by ``key`` (their
        :class:`~probvae.backends.numpyro_cache.ProgramKey`): from ``memo`` (this
        process's earlier fits), from the files an earlier run with the same settings left (no
        tracing), else traced now and kept for the next run. Each goes to the compiling threads
        as soon as it is there; one that cannot be exported is traced by jit as usual (one that
        holds weights as constants runs as exported, and :func:`programs.save` does not keep it).
        (``init`` is traced each time: it holds the initial weights of this seed.)"""
        cache = self.bk.program_cache
        kept = memo.get(key)
        if kept is None:
            saved = programs.load(key, cache)
            kept = {k: programs.Program.fitted(saved.get(k), args, out)
                    for k, (args, out, _) in self._jobs.items()}
            if not all(kept.values()):
                kept = {}
                for k, (args, _, fn) in self._jobs.items():
                    try:
                        kept[k] = programs.export(fn, *args)
                    except Exception:        # not exportable: jit traces it as before
                        break
                    self._programs_of.add(k, kept[k].compiled)
                if len(kept) == len(self._jobs):
                    programs.save(key, kept, cache)
            memo[key] = kept
        for k in self._jobs:
            if k not in self._programs_of:
                self._programs_of.add(k, kept[k].compiled if k in kept else self._lowered(k))

    def _program(self, name, epoch):
        """The compiled ``name`` program ("epoch" or "eval") for epoch ``epoch``: the quickly
        compiled one in a quick plan and for a tiered plan's epoch 0, else the optimised one
        (waiting for its compilation)."""
        quick = self.plan == "quick" or (self.plan == "tiered" and epoch == 0)
        return self._programs_of.get(name, quick=quick)

    def _kw(self, epoch, final=False):
        if not self.schedule:
            return {}
        return {"kl_weight": jnp.float32(self.schedule.final if final else self.schedule(epoch))}

    def kl_weight(self, epoch) -> float:
        return float(self.schedule(epoch)) if self.schedule else 1.0

    # ---- training -------------------------------------------------------------------------
    @_in_site_order
    def epoch(self, epoch, stop=None) -> tuple:
        """Run epoch ``epoch``; returns ``(train_loss, finished)`` (always finished here)."""
        with distributed.watching_peers():       # joined processes: a lost one says so
            if self.stream is not None:
                return self._stream_epoch(epoch)
            self._last_epoch = epoch
            self.svi_state, loss, first = self._program("epoch", epoch)(
                self.svi_state, self.key_shuffle, np.int32(epoch), self.data, self._kw(epoch),
                self.labelled)
            self.first_loss = float(first)         # the loss before the epoch's first step
            return float(loss), True

    def __enter__(self):
        """Nothing to swap in: NumPyro's parameters and random keys are values the loop holds
        (Pyro's loop swaps its param store and torch's random state)."""
        return self

    def __exit__(self, *exc):
        return False

    def stop_agreed(self, stop) -> bool:
        """Whether to stop at the end of this epoch: as it was asked (one process), or as any
        process was asked (processes joined by ``jax.distributed``: all stop at the same epoch,
        with the signal another one received)."""
        if stop is None:
            return False
        if self.process_count == 1:
            return stop.requested
        with distributed.watching_peers():
            signum = distributed.agree_max(
                int(getattr(signal, stop.signal or "SIGINT")) if stop.requested else 0)
        if signum and not stop.requested:
            stop.adopt(signum)
        return bool(signum)

    def _stream_epoch(self, epoch) -> tuple:
        """One pass over a stream: chunks in a random order (from ``seed`` and the epoch), the
        compiled epoch program on each (it shuffles the chunk's rows), one chunk in memory."""
        key = jax.random.fold_in(self.key_shuffle, epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.stream.num_chunks)
        total, count, kw = 0.0, 0, self._kw(epoch)
        for j, i in enumerate(order):
            part = self.stream.chunk(int(i))
            m = batching.size(part)
            if m < self.b:          # a last chunk shorter than a batch is left out this time
                continue
            part = self._placed(batching.to_backend(self.bk, part))
            self.svi_state, loss, first = self._chunk_fn(m)(
                self.svi_state, key, np.int32(j), part, kw, None)
            if j == 0:
                self.first_loss = float(first)
            used = (m // self.b) * self.b
            total, count = total + float(loss) * used, count + used
        return total / count, True

    def _chunk_fn(self, m):
        """The epoch program for a chunk of ``m`` rows (the first chunk's is compiled ahead)."""
        if m == self._chunk_rows:
            return self._program("epoch", None)
        if m not in self._chunk_fns:
            self._chunk_fns[m] = _compile(self.svi, m, self.b, None, None, self.binarize,
                                          self.mesh)[1]
        return self._chunk_fns[m]

    @_in_site_order
    def validate(self):
        if self.valid is None:
            return None
        # the programs are compiled for the first chunk's shape; a last, shorter chunk goes
        # through the jitted function (compiled once for its shape)
        kw, fn = self._kw(0, final=True), self._program("eval", self._last_epoch)
        shape = _signature(self._valid_part)
        with distributed.watching_peers("validation"):
            total = sum(float((fn if _signature(part) == shape else self._eval_fn)(
                self.svi_state, part, kw))
                for _, part, _ in batching.chunks(self.valid, VALID_CHUNK))
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

    def restore(self, meta, arrays, where=("checkpoint.json", "the state file")):
        """Continue from :meth:`state`'s ``(meta, arrays)``, read from the files ``where``
        (``checkpoint.json``, the state file): every field and array is checked first, and a
        damaged one raises DamagedFileError naming its file and the field or array."""
        meta_file, arrays_file = where
        leaves, treedef = jax.tree_util.tree_flatten(self.svi_state)
        check_field(meta, meta_file, "loop", dict)
        if "leaves" not in meta:
            raise DamagedFileError(f"{meta_file}: field 'loop.leaves' is missing")
        if check_field(meta["leaves"], meta_file, "loop.leaves", int) != len(leaves):
            raise DamagedFileError(f"{meta_file}: field 'loop.leaves' says the optimizer state "
                                   f"has {meta['leaves']} parts but this model's has "
                                   f"{len(leaves)}: it was made by another model or objective")
        best = self.bk.params_to_numpy(self.params())
        expected = {**{f"svi/{i}": old for i, old in enumerate(leaves)},
                    **{f"best/{k}": v for k, v in best.items()}}
        for name in arrays:
            if name not in expected:
                raise DamagedFileError(f"{arrays_file}: array {name!r} is not part of this "
                                       "model's training state; the file is damaged")
        new = []
        for name, old in expected.items():
            a = arrays.get(name)
            if a is None and name.startswith("best/"):
                continue                     # no best parameters (training.py checks which)
            if a is None or a.shape != old.shape or a.dtype != old.dtype:
                raise DamagedFileError(
                    f"{arrays_file}: array {name!r} should be {old.dtype} {tuple(old.shape)}, "
                    f"found {'nothing' if a is None else f'{a.dtype} {a.shape}'}; the file is "
                    "damaged")
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise DamagedFileError(f"{arrays_file}: array {name!r} has NaN/inf values; the "
                                       "file is damaged")
            if name.startswith("svi/"):
                new.append(jnp.asarray(a))
        self.svi_state = self._placed(jax.tree_util.tree_unflatten(treedef, new))

    def snapshot_to_arrays(self, snapshot) -> dict:
        return self.bk.params_to_numpy(snapshot)

    def snapshot_from_arrays(self, arrays):
        return self.bk.params_from_numpy(self.params(), arrays)
