"""The Pyro training loop: eager SVI steps over shuffled mini-batches.

Pyro's ``Jit*`` ELBOs rely on ``torch.jit.trace``, deprecated in torch 2.13 and known to crash
with some models; eager Pyro with vectorised particles is used instead (``bench/backends.py``
measures it).

:func:`probvae.fit` drives it for models made with ``backend="pyro"``:

>>> import probvae as pv
>>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="pyro"),
...              pv.data.load("digits").train, epochs=2, progress=False)
>>> len(res.history["train_loss"]), sorted(res.param_state["params"])[:2]
(2, ['decoder$$$net.0.bias', 'decoder$$$net.0.weight'])

Everything that changes during training (parameters, the optimizer's state per parameter
and its step count, which a learning-rate schedule reads, the shuffling generator, torch's
global random state, and the position inside an unfinished epoch) goes in and out of a
checkpoint as arrays, so a run stopped after any step resumes where it was.
"""
from __future__ import annotations

import contextlib
import math
import signal
import weakref

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer.util import torch_item

from probvae import batch as batching
from probvae.backends import init_params
from probvae.backends.pyro_backend import param_scope
from probvae.outputs import DamagedFileError, check_field

from . import distributed, objectives
from .inputs import StreamedBatch
from .optimizers import Optimizer

__all__ = ["Loop"]

# First-seen values of live parameter tensors (a user's torch modules outlive a fit): a refit of
# the same (model, guide) pair starts from them, so the same seed gives the same numbers.
_INITIAL: dict = {}


class _Diverged(Exception):
    """A training step's loss was not finite; its update was not applied."""


@contextlib.contextmanager
def _checks_off():
    """Pyro's and torch's argument checks off; on exit both flags are as they were (Pyro's
    own ``validation_enabled`` restores torch's flag from Pyro's, not from torch's)."""
    torch_flag = torch.distributions.Distribution._validate_args
    try:
        with pyro.validation_enabled(False):
            yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(torch_flag)


def _reset_to_initial(params):
    with torch.no_grad():
        for t in params.values():
            ref_init = _INITIAL.get(id(t))
            if ref_init is not None and ref_init[0]() is t:
                t.copy_(ref_init[1])
            else:
                _INITIAL[id(t)] = (weakref.ref(t, lambda _r, k=id(t): _INITIAL.pop(k, None)),
                                   t.detach().clone())


def _encode(obj, arrays, prefix):
    """A JSON-able tree for ``obj`` with its tensors moved into ``arrays`` (keys kept typed)."""
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        key = f"{prefix}{len(arrays)}"
        arrays[key] = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else obj
        return {"__array__": key}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays, prefix) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays, prefix) for v in obj]
    if isinstance(obj, dict):
        return {"__items__": [[k, _encode(v, arrays, prefix)] for k, v in obj.items()]}
    return obj


def _decode(tree, arrays):
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    if isinstance(tree, dict):
        if "__array__" in tree:
            if tree["__array__"] not in arrays:
                raise ValueError(f"optimizer state array {tree['__array__']!r} is missing")
            return torch.as_tensor(arrays[tree["__array__"]])
        if "__tuple__" in tree:
            return tuple(_decode(v, arrays) for v in tree["__tuple__"])
        if "__items__" in tree:
            return {k: _decode(v, arrays) for k, v in tree["__items__"]}
    return tree


def _signum(stop) -> float:
    """The number of the stop signal this process received (0: none)."""
    if stop is None or not stop.requested:
        return 0.0
    return float(getattr(signal, stop.signal or "SIGINT"))


def _bernoulli(x, gen):
    """One Bernoulli draw per value of ``x`` from the CPU generator ``gen`` (the same pixels
    on any device), returned where ``x`` is."""
    return torch.bernoulli(x.detach().cpu(), generator=gen).to(x.device)


class Loop:
    """One model's training on Pyro with its own param-store state (see ``param_scope``).

    Use it as a context manager: inside, Pyro's global store holds this model's parameters
    and torch's global random state is this fit's own (forked and seeded).
    """

    #: a Ctrl-C stops after the current SVI step, even inside an epoch
    steps_interruptible = True
    #: an epoch stopped part-way: {"epoch", "perm", "step", "total"} (set when it happens)
    pending = None

    def __init__(self, model, data, valid, elbo, schedule, *, batch_size, lr, seed,
                 labelled=None, clip_norm=None, cache_key=None, binarize=False, devices=None,
                 device=None, objective=None, resuming=False, epochs=None, optimizer=None):
        del objective, resuming, epochs  # (NumPyro's loop uses them to choose its programs)
        if devices not in (None, 1):
            raise ValueError("Pyro trains on several devices as several processes: launch the "
                             "same command with torchrun --nproc_per_node=N (see "
                             "probvae.inference.distributed); devices= is NumPyro's option")
        self.model, self.bk, self.elbo, self.schedule = model, model.bk, elbo, schedule
        weighted = model.contract.continuous_names           # the KL weight scales these
        self._model = objectives.kl_weighted(self.bk, model.model, weighted)
        self._guide = objectives.kl_weighted(self.bk, model.guide, weighted)
        # fit enters bk.placement(device) around the loop: new tensors go there; the networks
        # (built on the CPU, so the same seed gives the same start anywhere) move there too
        self.device = self.bk.torch_device(device)
        self.bk.move_nets(model.nets, self.device)
        self.stream = None
        if isinstance(data, StreamedBatch):          # from disk: one chunk in memory at a time
            self.stream, data = data, data.first_chunk(batch_size, labelled)
        self.batch_size, self.lr, self.seed = batch_size, lr, seed
        #: what steps (default Adam) and how many steps it has taken: a schedule ``lr(step)``
        #: sets the rate before each one (as optax's count does on NumPyro)
        self.optimizer = Optimizer() if optimizer is None else optimizer
        self.steps = 0
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.data = batching.to_backend(self.bk, data)
        self.valid = batching.to_backend(self.bk, valid) if valid is not None else None
        self.labelled = batching.to_backend(self.bk, labelled) if labelled is not None else None
        self.n = batching.size(self.data)
        self.b = min(batch_size, self.n)
        self.gen = torch.Generator().manual_seed(seed)
        self.rank, self.world = distributed.world()
        if self.world > 1:
            nl = None if self.labelled is None else min(batch_size, batching.size(self.labelled))
            if self.b % self.world or (nl is not None and nl % self.world):
                raise ValueError(f"the batches ({self.b} examples"
                                 f"{'' if nl is None else f', {nl} labelled'}) do not split "
                                 f"evenly across {self.world} processes: use a batch_size "
                                 f"that is a multiple of {self.world}")
        self.binarize = binarize
        self.pending = None         # an unfinished epoch: {"epoch", "perm", "step", "total"}
        self.first_loss = None      # the loss before the current epoch's first step
        self.stop_signal = 0        # a stop signal's number, agreed by every process
        self._stack = None
        self._checked = False       # an epoch has run with Pyro's argument checks on

    # ---- scope ------------------------------------------------------------------------------
    def __enter__(self):
        stack = contextlib.ExitStack()
        stack.enter_context(torch.random.fork_rng(devices=[]))
        torch.manual_seed(self.seed)
        first = batching.take(self.data, slice(0, self.b))
        if self.binarize:                            # init sees binary pixels too
            first = {**first, "x": _bernoulli(first["x"],
                                              torch.Generator().manual_seed(self.seed))}
        self.state_dict = init_params(self.bk, self.model, first, self.seed)
        self.store = stack.enter_context(param_scope(self.state_dict))
        _reset_to_initial(self.store.get_state()["params"])
        self._reseed_rank()
        self.optim = self.optimizer.build(self.bk, self.lr)
        self._stack = stack
        return self

    def _reseed_rank(self):
        """Under torchrun: every process but rank 0 draws its own noise (the parameters start
        equal, from the same seed; the draws for each share of a batch must differ)."""
        if self.rank > 0:
            state = torch.get_rng_state().numpy()
            torch.manual_seed(int(np.random.default_rng(
                [self.seed, self.rank, int(state.astype(np.int64).sum())]).integers(2 ** 62)))

    def _share(self, idx):
        """This process's slice of a global batch's indices (all of them in one process)."""
        if self.world == 1:
            return idx
        k = len(idx) // self.world
        return idx[self.rank * k:(self.rank + 1) * k]

    def __exit__(self, *exc):
        self._stack.close()
        self._to_cpu()
        return False

    def _to_cpu(self):
        """The fitted model lives on the CPU, wherever it trained: networks, parameters and
        their fitted values (nothing to do after training on the CPU)."""
        self.bk.move_nets(self.model.nets, torch.device("cpu"))   # their parameters follow
        state = self.state_dict
        for key in ("params", "values"):
            for k, v in list(state.get(key, {}).items()):
                if v.device.type != "cpu":        # e.g. a prior's pyro.param on the GPU
                    state[key][k] = v.detach().cpu().requires_grad_(v.requires_grad)

    def _kw(self, epoch, final=False):
        if not self.schedule:
            return {}
        return {"kl_weight": self.schedule.final if final else self.schedule(epoch)}

    def kl_weight(self, epoch) -> float:
        return float(self.schedule(epoch)) if self.schedule else 1.0

    # ---- training -------------------------------------------------------------------------
    def _step(self, batch, kw, stop=None) -> float:
        """One SVI step (as ``pyro.infer.SVI.step``), with parameters in name order so that
        the global-norm clip sums in the same order in every process. A loss that is not
        finite raises :class:`_Diverged` before the update, which is then not applied. Under
        torchrun the sum of the gradients also carries whether any process was asked to stop
        (``stop``), so that every process stops after the same step."""
        with poutine.trace(param_only=True) as capture:
            loss = self.elbo.loss_and_grads(self._model, self._guide, **batch, **kw)
        params = [site["value"].unconstrained()
                  for _, site in sorted(capture.trace.nodes.items())]
        if self.world > 1:         # the global batch's gradient: the sum of the shares'
            total = torch.tensor([float(torch_item(loss)), _signum(stop)], dtype=torch.float64)
            for p in params:       # every parameter, so the processes' lists pair up
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            with distributed.watching_peers():    # a process gone: every other one stops
                distributed.all_sum([p.grad for p in params] + [total])
            loss = float(total[0].item())
            if total[1].item() > 0:          # some process was asked to stop: which signal
                self._agree_signal(stop)
        else:
            self.stop_signal = _signum(stop)
        loss = torch_item(loss)
        if not math.isfinite(loss):
            self._drop_grads(params)
            raise _Diverged(loss)
        if self.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
        if callable(self.lr):                     # a schedule: this step's rate
            self.optim.set_lr(float(self.lr(self.steps)))
        self.optim(params)
        self.steps += 1
        self._drop_grads(params)
        return loss

    def _agree_signal(self, stop):
        """Every process learns the stop signal (the largest number, if several came)."""
        sig = torch.tensor([_signum(stop)], dtype=torch.float64)
        with distributed.watching_peers():
            distributed.all_max([sig])
        self.stop_signal = int(sig.item())

    def stop_agreed(self, stop) -> bool:
        """Whether to stop at the end of this epoch: asked in any process (under torchrun all
        of them agree, and all stop at the same epoch). ``stop.signal`` is set to the signal
        another process received."""
        if stop is None:
            return False
        if self.world > 1:
            flag = torch.tensor([_signum(stop)], dtype=torch.float64)
            with distributed.watching_peers():
                distributed.all_sum([flag])
            self.stop_signal = 0
            if flag.item() > 0:
                self._agree_signal(stop)
        else:
            self.stop_signal = _signum(stop)
        if self.stop_signal and stop.signal is None:
            stop.adopt(self.stop_signal)
        return bool(self.stop_signal)

    @staticmethod
    def _drop_grads(params):
        """After an update: the next backward writes fresh gradients (torch's
        ``zero_grad(set_to_none=True)``), with no zero fill and no add."""
        for p in params:
            p.grad = None

    def _checks(self):
        """Pyro's and torch's argument checks for this epoch's steps: as the user set them
        (on by default) for the first epoch this loop runs, where a model's mistake shows with
        the names of its distribution and argument; off after that (both flags restored after
        the epoch). They cost 13% of an MNIST step; ``fit`` has checked the data already, and a
        diverged step still shows, as a loss that is not finite (as on NumPyro, whose compiled
        steps check nothing). The flags are the process's: other threads' torch code sees
        them too while an epoch runs."""
        return _checks_off() if self._checked else contextlib.nullcontext()

    def _divergence(self, err) -> bool:
        """Whether ``err``, raised inside a step, means the run diverged: a loss that is not
        finite, torch's argument checks failing on NaN, or any error once the parameters are
        not finite (a sampler given NaN probabilities, with the checks off); never a lost
        process (:class:`~.distributed.PeerLostError`)."""
        if isinstance(err, distributed.PeerLostError):
            return False
        return (isinstance(err, _Diverged)
                or (isinstance(err, ValueError) and "invalid values" in str(err))
                or not self.finite())

    def epoch(self, epoch, stop=None) -> tuple:
        """Run (or finish) epoch ``epoch``; returns ``(train_loss, finished)``. With ``stop``
        requested it returns ``(None, False)`` after the current step, keeping its place
        (a stream from disk finishes its epoch first)."""
        with self._checks():
            loss, finished = (self._stream_epoch(epoch) if self.stream is not None
                              else self._epoch(epoch, stop))
        self._checked = self._checked or finished
        return loss, finished

    def _epoch(self, epoch, stop) -> tuple:
        steps = self.n // self.b
        kw = self._kw(epoch)
        if self.pending is not None and self.pending["epoch"] == epoch:
            perm, start, total = self.pending["perm"], self.pending["step"], self.pending["total"]
            self.first_loss = self.pending.get("first")
        else:
            perm, start, total = torch.randperm(self.n, generator=self.gen, device="cpu"), 0, 0.0
        self.pending = None
        try:
            for s in range(start, steps):
                loss = self._step(self._binary(batching.take(
                    self.data, self._share(perm[s * self.b:(s + 1) * self.b]))), kw, stop)
                if s == 0:
                    self.first_loss = loss / self.b
                total += loss
                if self.labelled is not None:
                    nl = batching.size(self.labelled)
                    j = torch.randperm(nl, generator=self.gen,
                                       device="cpu")[:min(self.batch_size, nl)]
                    self._step(self._binary(batching.take(self.labelled, self._share(j))), kw,
                               stop)
                if self.stop_signal and s + 1 < steps:     # the same step in every process
                    if stop.signal is None:
                        stop.adopt(self.stop_signal)
                    self.pending = {"epoch": epoch, "perm": perm, "step": s + 1, "total": total,
                                    "first": self.first_loss}
                    return None, False
        except (_Diverged, ValueError, RuntimeError) as err:
            if not self._divergence(err):
                raise
            return float("nan"), True
        return total / (steps * self.b), True

    def _stream_epoch(self, epoch) -> tuple:
        """One pass over a stream: chunks in random order, rows shuffled within each."""
        kw, total, count = self._kw(epoch), 0.0, 0
        order = torch.randperm(self.stream.num_chunks, generator=self.gen, device="cpu")
        try:
            for j, i in enumerate(order.tolist()):
                part = batching.to_backend(self.bk, self.stream.chunk(i))
                m = batching.size(part)
                perm = torch.randperm(m, generator=self.gen, device="cpu")
                for s in range(m // self.b):
                    loss = self._step(self._binary(batching.take(
                        part, self._share(perm[s * self.b:(s + 1) * self.b]))), kw)
                    if j == 0 and s == 0:
                        self.first_loss = loss / self.b
                    total, count = total + loss, count + self.b
        except (_Diverged, ValueError, RuntimeError) as err:
            if not self._divergence(err):
                raise
            return float("nan"), True
        return total / max(count, 1), True

    def _binary(self, part):
        """With dynamic binarization, ``part`` with one Bernoulli draw per grey pixel."""
        if not self.binarize:
            return part
        return {**part, "x": _bernoulli(part["x"], self.gen)}

    def validate(self):
        if self.valid is None:
            return None
        if not self.finite():      # diverged: the checks would raise on NaN parameters
            return float("nan")
        kw = self._kw(0, final=True)
        with torch.no_grad():   # under torchrun each process scores every world-th batch
            total = sum(float(self.elbo.loss(self._model, self._guide, **part, **kw))
                        for i, (_, part, _) in enumerate(batching.chunks(self.valid,
                                                                         self.batch_size))
                        if i % self.world == self.rank)
        if self.world > 1:     # the shares summed: every process takes the same mean
            t = torch.tensor([float(total)], dtype=torch.float64)
            with distributed.watching_peers("validation"):
                distributed.all_sum([t])
            total = float(t.item())
        return total / batching.size(self.valid)

    def params(self):
        """The live parameter state (Pyro's param-store state)."""
        return self.store.get_state()

    def snapshot(self):
        return self.bk.snapshot(self.store.get_state())

    def finite(self) -> bool:
        return all(bool(torch.isfinite(v).all()) for v in self.store.get_state()["params"].values())

    def result(self, snapshot):
        return self.bk.finalize(self.state_dict, snapshot)

    # ---- checkpoints ----------------------------------------------------------------------
    def state(self) -> tuple:
        arrays = {f"param/{k}": v.detach().cpu().numpy()
                  for k, v in self.store.get_state()["params"].items()}
        optim = _encode(self.optim.get_state(), arrays, "optim/")
        arrays["rng/torch"] = torch.get_rng_state().numpy()
        arrays["rng/gen"] = self.gen.get_state().numpy()
        meta = {"optim": optim, "pending": None, "steps": self.steps}
        if self.pending is not None:
            arrays["epoch/perm"] = self.pending["perm"].numpy()
            meta["pending"] = {k: self.pending[k] for k in ("epoch", "step", "total", "first")}
        return meta, arrays

    def restore(self, meta, arrays, where=("checkpoint.json", "the state file")):
        """Continue from :meth:`state`'s ``(meta, arrays)``, read from the files ``where``
        (``checkpoint.json``, the state file): every field and array is checked before
        anything changes, and a damaged one raises DamagedFileError naming its file and the
        field or array."""
        meta_file, arrays_file = where
        params = self.store.get_state()["params"]
        check_field(meta, meta_file, "loop", dict)
        if "optim" not in meta:
            raise DamagedFileError(f"{meta_file}: field 'loop.optim' is missing")
        saved = {k[len("param/"):] for k in arrays if k.startswith("param/")}
        if saved != set(params):
            raise DamagedFileError(f"{arrays_file}: the checkpoint's parameters do not match "
                                   f"this model: {sorted(saved ^ set(params))[:4]}")
        shapes = {k: tuple(t.shape) for k, t in params.items()}
        pending = _checked_pending(meta.get("pending"), meta_file, self.n // self.b)
        rng = {"rng/torch": tuple(torch.get_rng_state().shape),
               "rng/gen": tuple(self.gen.get_state().shape)}
        refs = _array_refs(meta["optim"])
        known = {*(f"param/{k}" for k in params), *(f"best/{k}" for k in params), *rng, *refs,
                 *(["epoch/perm"] if pending is not None else [])}
        for name in arrays:
            if name not in known:
                raise DamagedFileError(f"{arrays_file}: array {name!r} is not part of this "
                                       "model's training state; the file is damaged")
        best = [k for k in params if f"best/{k}" in arrays]
        if best and len(best) != len(params):
            raise DamagedFileError(f"{arrays_file}: the best parameters (arrays 'best/...') are "
                                   "incomplete; the file is damaged")
        for k, shape in shapes.items():
            for name in (f"param/{k}", *([f"best/{k}"] if best else [])):
                _check_array(arrays.get(name), arrays_file, name, shape, "f")
        for name, shape in rng.items():
            _check_array(arrays.get(name), arrays_file, name, shape, "u")
            if arrays[name].dtype != np.uint8:
                raise DamagedFileError(f"{arrays_file}: array {name!r} should be uint8, found "
                                       f"{arrays[name].dtype}; the file is damaged")
        if pending is not None:
            perm = arrays.get("epoch/perm")
            _check_array(perm, arrays_file, "epoch/perm", (self.n,), "iu")
            if not np.array_equal(np.sort(perm), np.arange(self.n)):
                raise DamagedFileError(f"{arrays_file}: array 'epoch/perm' is not an order of "
                                       f"the {self.n} training examples; the file is damaged")
        steps = check_field(meta.get("steps"), meta_file, "loop.steps", int, low=0,
                            high=2 ** 62, none=True)
        adam = self.optim.pt_optim_constructor in (torch.optim.Adam, torch.optim.AdamW)
        state = _checked_optim(meta["optim"], arrays, shapes, meta_file, adam=adam)
        with torch.no_grad():
            for k, t in params.items():
                t.copy_(torch.as_tensor(arrays[f"param/{k}"], dtype=t.dtype))
        self.steps = _steps_taken(state) if steps is None else steps   # (saved before steps)
        fused = self.optim.pt_optim_args.get("fused")
        for group_state in state.values():            # a new lr given on resume wins
            for group in group_state.get("param_groups", []):
                if self.lr is not None:
                    group["lr"] = (float(self.lr(self.steps)) if callable(self.lr)
                                   else self.lr)
                if "fused" in self.optim.pt_optim_args:
                    # runs saved before the fused Adam resume with it too (the same moments)
                    group.update(fused=fused, foreach=None if fused else group.get("foreach"))
        self.optim.set_state(state)
        torch.set_rng_state(torch.as_tensor(arrays["rng/torch"], dtype=torch.uint8, device="cpu"))
        self.gen.set_state(torch.as_tensor(arrays["rng/gen"], dtype=torch.uint8, device="cpu"))
        self._reseed_rank()
        self.pending = None if pending is None else {
            **pending, "perm": torch.as_tensor(arrays["epoch/perm"], dtype=torch.long,
                                               device="cpu")}

    def snapshot_to_arrays(self, snapshot) -> dict:
        return {k: v.detach().cpu().numpy() for k, v in snapshot.items()}

    def snapshot_from_arrays(self, arrays):
        return {k: torch.as_tensor(v, dtype=torch.get_default_dtype()) for k, v in arrays.items()}


# ---- what restore checks ----------------------------------------------------------------------
#: Adam's settings that a saved parameter group must hold (torch fills in the others)
_ADAM_NEEDS = ("betas", "eps", "weight_decay")
#: the tensors of a saved Adam state (``max_exp_avg_sq`` with amsgrad)
_ADAM_STATE = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _check_array(a, where, name, shape, kinds):
    """Array ``name`` of a state file: present, of ``shape``, of a dtype kind in ``kinds``,
    and finite."""
    if a is None:
        raise DamagedFileError(f"{where}: array {name!r} is missing; the file is damaged")
    if tuple(a.shape) != tuple(shape) or a.dtype.kind not in kinds:
        raise DamagedFileError(f"{where}: array {name!r} should have shape {tuple(shape)}, "
                               f"found {a.dtype} {a.shape}; the file is damaged")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise DamagedFileError(f"{where}: array {name!r} has NaN/inf values; the file is "
                               "damaged")


def _checked_pending(pending, where, steps):
    """checkpoint.json's ``loop.pending``: where an unfinished epoch stopped, or null."""
    if pending is None:
        return None
    check_field(pending, where, "loop.pending", dict)
    for key in ("epoch", "step", "total"):
        if key not in pending:
            raise DamagedFileError(f"{where}: field 'loop.pending.{key}' is missing")
    check_field(pending["epoch"], where, "loop.pending.epoch", int, low=0, high=2 ** 31 - 1)
    check_field(pending["step"], where, "loop.pending.step", int, low=0, high=steps)
    check_field(pending["total"], where, "loop.pending.total", float)
    check_field(pending.get("first"), where, "loop.pending.first", float, none=True)
    return pending


def _array_refs(tree) -> list:
    """The array names an encoded optimizer state refers to (``{"__array__": name}``)."""
    refs, stack = [], [tree]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if isinstance(v.get("__array__"), str):
                refs.append(v["__array__"])
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return refs


def _steps_taken(state) -> int:
    """The optimizer steps a checkpoint written before the loop counted them had taken: the
    largest ``step`` of its parameters' states (Adam's count; 0 where there is none)."""
    counts = [float(sd["state"][0]["step"]) for sd in state.values()
              if isinstance(sd.get("state", {}).get(0), dict) and "step" in sd["state"][0]]
    return int(max(counts, default=0))


def _checked_optim(tree, arrays, shapes, where, adam=True) -> dict:
    """checkpoint.json's ``loop.optim`` decoded and checked against the parameters'
    ``shapes``: one single-tensor ``state_dict`` per parameter name (Adam's settings and
    moments where ``adam``; another optimizer's: finite tensors of the parameter's shape or
    scalars), its moments of the parameter's shape (Pyro's optimizers take them up lazily, at
    the next step: a damaged one must be refused here, not half-way through an epoch)."""
    field = "loop.optim"
    try:
        state = _decode(tree, arrays)
    except MemoryError:
        raise
    except Exception as err:
        raise DamagedFileError(f"{where}: field {field!r} is not an optimizer state "
                               f"({type(err).__name__}: {str(err)[:200]})") from None
    check_field(state, where, field, dict)
    for name, sd in state.items():
        f = f"{field}[{name!r}]"
        if name not in shapes:
            raise DamagedFileError(f"{where}: field {f} is the state of {name!r}, not a "
                                   "parameter of this model")
        if not isinstance(sd, dict) or set(sd) != {"state", "param_groups"}:
            raise DamagedFileError(f"{where}: field {f} should hold 'state' and "
                                   "'param_groups' (an Adam state)")
        groups = sd["param_groups"]
        if not (isinstance(groups, list) and len(groups) == 1 and isinstance(groups[0], dict)
                and groups[0].get("params") == [0]):
            raise DamagedFileError(f"{where}: field {f}.param_groups should be one group of "
                                   "parameter [0]")
        group = groups[0]
        if not adam:
            _check_other_state(sd["state"], shapes[name], where, f)
            continue
        for key in _ADAM_NEEDS:
            if key not in group:
                raise DamagedFileError(f"{where}: field {f}.param_groups[0].{key} is missing")
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise DamagedFileError(f"{where}: field {f}.param_groups[0].betas should be two "
                                   "numbers")
        for i, b in enumerate(betas):
            check_field(b, where, f"{f}.param_groups[0].betas[{i}]", float, low=0, high=1)
        for key in ("eps", "weight_decay"):
            check_field(group[key], where, f"{f}.param_groups[0].{key}", float, low=0)
        for key in ("amsgrad", "maximize", "capturable", "differentiable",
                    "decoupled_weight_decay"):
            if key in group:
                check_field(group[key], where, f"{f}.param_groups[0].{key}", bool)
        moments = sd["state"]
        if not isinstance(moments, dict) or set(moments) - {0}:
            raise DamagedFileError(f"{where}: field {f}.state should hold the state of "
                                   "parameter 0 only")
        one = moments.get(0, {})
        if not isinstance(one, dict) or (one and (set(one) - set(_ADAM_STATE) or any(
                k not in one for k in _ADAM_STATE[:3 + bool(group.get("amsgrad"))]))):
            raise DamagedFileError(f"{where}: field {f}.state[0] should hold "
                                   f"{', '.join(_ADAM_STATE[:3])}")
        for key, t in one.items():
            shape = () if key == "step" else shapes[name]
            if not (isinstance(t, torch.Tensor) and t.is_floating_point()
                    and tuple(t.shape) == shape and bool(torch.isfinite(t).all())
                    and (key != "step" or float(t) >= 0)):
                raise DamagedFileError(f"{where}: field {f}.state[0].{key} should be a finite "
                                       f"float array of shape {shape}")
    return state


def _check_other_state(moments, shape, where, f):
    """The saved state of one parameter under an optimizer other than Adam: ``{0: {name:
    value}}``, each value a finite tensor of the parameter's shape or a scalar, a number, a
    flag or None (SGD's momentum buffer, Adagrad's sum, RMSprop's average, their step)."""
    if not isinstance(moments, dict) or set(moments) - {0}:
        raise DamagedFileError(f"{where}: field {f}.state should hold the state of parameter 0 "
                               "only")
    one = moments.get(0, {})
    if not isinstance(one, dict):
        raise DamagedFileError(f"{where}: field {f}.state[0] should be the optimizer's state "
                               "of the parameter")
    for key, t in one.items():
        if isinstance(t, torch.Tensor):
            if tuple(t.shape) not in ((), tuple(shape)) or not bool(torch.isfinite(t).all()):
                raise DamagedFileError(f"{where}: field {f}.state[0].{key} should be a finite "
                                       f"array of shape {tuple(shape)} or a number")
        elif t is not None and not isinstance(t, (bool, int, float)):
            raise DamagedFileError(f"{where}: field {f}.state[0].{key} should be an array or a "
                                   f"number, found {type(t).__name__}")
