"""How the NumPyro loop's programs compile: quickly (XLA without LLVM's optimisations) or
optimised, chosen by :func:`plan` from a run's settings, on two threads (:class:`Compiling`).

>>> plan(4, 39, 32, 522_868)     # four epochs of the make-demo VAE: every epoch quick
'quick'
"""
from __future__ import annotations

import gc
from concurrent.futures import Future, ThreadPoolExecutor

from probvae.memory import maps_in_use

__all__ = ["QUICK", "MAP_BUDGET", "Compiling", "done", "keep_programs", "plan"]

#: XLA's options for quickly compiled programs: LLVM without its optimisations compiles them
#: in about half the time, and they run up to twice as slow (:func:`plan` chooses which runs).
QUICK = {"xla_backend_optimization_level": 0}


#: what :func:`plan` takes an optimised compile to cost (seconds more than a quick one) and
#: how much sooner a quick one is ready; measured here (digits MLPs, MNIST 784-400-50):
#: optimised 1.0-1.9 s more, the quick epoch 0.4-1.8 ms a step slower, growing as about the
#: 0.4th power of batch x parameters (0.42 ms at 8.5e5, 1.8 ms at 1.7e7, 4.7 ms at 5.3e8)
OPTIMISED_COST_S, QUICK_SAVES_S = 1.5, 1.0


def plan(epochs, steps, batch, state_size, convolutional=False):
    """How a run's programs compile, from its settings alone (so that a seed and settings give
    the same numbers in every run, cached or not, and on resume): ``"quick"`` (every epoch runs
    quickly compiled programs, when all of them together lose less than an optimised compile
    costs: short runs of small models, the estimators), ``"tiered"`` (epoch 0 runs the quick
    ones while the optimised ones compile for the later epochs) or ``"full"`` (optimised from
    the start, when one quick epoch loses more than compiling quickly saves: large models).

    >>> plan(4, 39, 32, 522_868), plan(50, 39, 32, 522_868), plan(10, 234, 256, 2_071_000)
    ('quick', 'tiered', 'full')

    A model with convolutions compiles optimised from the start, however short its run
    (``convolutional=True``): the cost model above, fitted to MLPs, cannot see what a quick
    program loses on a convolution. With XLA's own convolutions that was about 18 times (a conv
    VAE, latent 16, batch 128, 3 epochs of 512 binarized MNIST images: 573 s quick against
    39.5 s planned; ``bench/conv_plan.py`` on 2 busy cores). probvae's NumPyro conv layers are
    now matrix products (``jax_nets._conv_by_taps``), and the same run (one core busy beside
    it) gives 7.7 s quick (epochs 1.4 s) against 9.0 s planned (0.5 s): quick wins only up to
    about 14 steps of such a model, so optimised stays the rule (a few seconds lost on the
    shortest runs, never minutes).

    >>> plan(3, 4, 128, 400_000, convolutional=True)
    'full'
    """
    if convolutional:
        return "full"
    per_step = 1.8e-3 * (batch * state_size / 1.7e7) ** 0.4     # seconds lost at O0, a step
    per_epoch = steps * per_step
    if epochs is not None and epochs * per_epoch <= OPTIMISED_COST_S:
        return "quick"
    return "tiered" if per_epoch <= QUICK_SAVES_S else "full"


#: the share of the process's memory maps (``vm.max_map_count``) that kept programs may bring it
#: to before the oldest are let go (see :func:`keep_programs`)
MAP_BUDGET = 0.5


def keep_programs(cache, most) -> int:
    """Let the oldest entries of ``cache`` (an ``OrderedDict`` of compiled programs, newest
    last) go while it holds more than ``most``, or while this process's memory maps are above
    ``MAP_BUDGET`` of its limit (the newest entry stays): past the limit XLA's next compile
    fails and the process crashes. A process that fits table after table (the estimators, a
    bench, a notebook) compiles a few programs per model; a 64-column table's thousands of maps
    a fit filled the limit within one table's fits, however few entries were kept. Returns how
    many went.

    >>> from collections import OrderedDict
    >>> keep_programs(OrderedDict(a=1, b=2, c=3), 2)
    1
    """
    gone = 0
    while len(cache) > most:
        cache.popitem(last=False)
        gone += 1
    while len(cache) > 1 and _over_map_budget():
        cache.popitem(last=False)
        gone += 1
        gc.collect()                 # the programs' executables go with their last reference
    return gone


def _over_map_budget() -> bool:
    maps = maps_in_use()
    return maps is not None and maps[0] > MAP_BUDGET * maps[1]


class Compiling:
    """The programs of one loop, compiling on two threads: the quick ones first (the first
    epoch waits for them), then the optimised ones, which start when the quick ones are done
    so that those have both cores. :meth:`add` takes a name and its ``compile(options)``."""

    def __init__(self, quick=True):
        self.compilers, self.quick, self.full, self._quick_ahead = {}, {}, {}, quick
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="probvae-compile")

    def __contains__(self, name):
        return name in self.compilers

    def add(self, name, compile_):
        """Start compiling ``name`` (its quick version, when the loop starts with one)."""
        self.compilers[name] = compile_
        if self._quick_ahead:
            self.quick[name] = self._pool.submit(compile_, QUICK)
        else:
            self.full[name] = self._pool.submit(compile_, None)

    def submit(self, fn, *args):
        """Run ``fn(*args)`` on the threads, after what is already queued; returns its future."""
        return self._pool.submit(fn, *args)

    @staticmethod
    def _after(jobs):
        """``compile(options)`` that first waits for ``jobs`` (an error shows where it is used)."""
        def after(compile_, options):
            for job in jobs:
                job.exception()
            return compile_(options)
        return after

    def start_optimised(self):
        """Queue the optimised programs behind the quick ones (call after the last add)."""
        after = self._after(list(self.quick.values()))
        for name, compile_ in self.compilers.items():
            if name not in self.full:
                self.full[name] = self._pool.submit(after, compile_, None)
        self.done()

    def done(self):
        """No more programs: the threads end when their work is done (or compile an optimised
        program on first use, :meth:`get`)."""
        self._pool.shutdown(wait=False)

    def get(self, name, quick=False):
        """The compiled program ``name`` (waits for its compilation)."""
        jobs = self.quick if quick else self.full
        if name not in jobs:      # not compiled ahead (quick: resumed at 0; or one epoch only)
            jobs[name] = done(self.compilers[name](QUICK if quick else None))
        return jobs[name].result()


def done(value):
    """A finished future holding ``value``."""
    job = Future()
    job.set_result(value)
    return job
