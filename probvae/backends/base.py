"""The backend contract: what every backend namespace ``bk`` provides, declared once.

Model code, scoring, generation and diagnostics use only these names; a capability flag, never
the backend's name, says where the libraries behave differently. Both
:class:`~probvae.backends.pyro_backend.PyroBackend` and
:class:`~probvae.backends.numpyro_backend.NumPyroBackend` implement :class:`Backend` (a test
checks every member).

Examples
--------
>>> from probvae import backends
>>> isinstance(backends.get("pyro"), Backend), backends.get("numpyro").fixed_shapes
(True, True)
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

__all__ = ["Backend", "init_params", "check_device", "DEVICES", "GPU_INSTALL",
           "OBJECTIVE_KINDS", "OPTIMIZER_NAMES"]

#: what ``fit(device=...)`` takes
DEVICES = (None, "cpu", "gpu")
#: how to get each library's CUDA build (the CPU builds install by default)
GPU_INSTALL = {"numpyro": 'pip install -U "jax[cuda12]"',
               "pyro": "pip install torch --index-url https://download.pytorch.org/whl/cu126"}


#: the estimators ``bk.objective(kind, ...)`` builds, each with the options it takes (besides
#: the model's ``max_plate_nesting``); every backend maps each kind to its library's class
OBJECTIVE_KINDS = {"elbo": ("num_particles",),          # Trace_ELBO: Monte Carlo KL
                   "mean_field": ("num_particles",),    # TraceMeanField_ELBO: analytic KL
                   "renyi": ("alpha", "num_particles"),  # RenyiELBO: alpha = 0 is the IWAE bound
                   "enum": ("num_particles",),          # TraceEnum_ELBO: sums discrete latents out
                   "dreg": ("num_particles",)}          # DReGELBO: IWAE bound, DReG gradients

#: the optimizers ``fit(optimizer=NAME, lr=...)`` takes by name on every backend; each backend
#: maps a name to its library's own (optax's, torch's), setting explicitly each default in
#: which the two libraries differ
OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "rmsprop", "adagrad")


def check_device(device, bk):
    """``device`` checked against what the backend sees: ``None`` (automatic: the GPU when
    the library sees one, else the CPU), ``"cpu"`` or ``"gpu"``.

    Examples
    --------
    >>> from probvae import backends
    >>> check_device("cpu", backends.get("pyro"))
    'cpu'
    >>> check_device("tpu", backends.get("pyro"))
    Traceback (most recent call last):
    ...
    ValueError: device takes None (automatic), 'cpu' or 'gpu', got 'tpu'
    """
    if device not in DEVICES:
        raise ValueError(f"device takes None (automatic), 'cpu' or 'gpu', got {device!r}")
    if device == "gpu" and not bk.has_gpu():
        raise ValueError(f"device='gpu' but {bk.name} sees no GPU on this machine. Install the "
                         f"CUDA build ({GPU_INSTALL[bk.name]}; see docs/devices.md), or "
                         "leave device=None to use a GPU when there is one")
    return device


@runtime_checkable
class Backend(Protocol):
    """The members a backend namespace has (see :mod:`probvae.backends`).

    Capability flags
    ----------------
    fixed_shapes : bool
        Compiled functions want one input shape: chunks are padded to a fixed size (NumPyro's
        ``jit``); Pyro runs eagerly on any shape.
    shared_param_store : bool
        The library keeps parameters in one global store that must be swapped per model
        (Pyro); NumPyro passes them explicitly.
    multi_process : bool
        Trains data-parallel as several processes under ``torchrun`` (Pyro, with
        ``torch.distributed``); False: several devices from one process (NumPyro's
        ``fit(devices=N)``).

    ``placement(device)`` is a context manager under which new arrays (and, on NumPyro,
    computations) go on ``device``: ``"cpu"``, ``"gpu"``, or ``None`` for the library's own
    default (see :func:`check_device`). ``has_gpu()`` says whether the library sees a GPU.

    ``lock`` is a re-entrant lock that every probvae call tracing or training on the backend
    holds: both libraries keep their effect-handler stack in a global, so fits and samples
    from several threads run one at a time, each on its own parameters.

    ``objective(kind, num_particles=1, max_plate_nesting=1, **options)`` builds the library's
    ELBO of ``kind`` (one of :data:`OBJECTIVE_KINDS`; ``alpha`` for ``"renyi"``) with every
    setting in which the two libraries' defaults differ passed explicitly (particles
    vectorised, the model's plate nesting). ``optimizer(optimizer, lr, options=None)`` builds
    the library's optimizer from a name of :data:`OPTIMIZER_NAMES` (with its library's keyword
    ``options``) or a user's optimizer object, at learning rate ``lr`` (a number, a function of
    the step count, or None where the object holds its own); ``optimizer_of(obj)`` says what a
    user's object is on this backend, ``(description, holds_lr)``, or raises a TypeError that
    names what the backend takes (the other library's optimizer named as such).

    ``loop_module`` names the module of the backend's training loop (its ``Loop`` class),
    which ``fit`` imports on first use: named, not imported here, as the backends sit below
    the inference layer.
    """

    name: str
    loop_module: str
    fixed_shapes: bool
    shared_param_store: bool
    multi_process: bool
    lock: Any
    dist: Any
    constraints: Any

    # model-facing primitives, shared by Pyro and NumPyro
    sample: Callable
    plate: Callable
    factor: Callable
    deterministic: Callable

    def module(self, name, net): ...
    def scale(self, factor): ...
    def scale_sites(self, names, factor): ...
    def param(self, name, init=None, constraint=None): ...

    # arrays
    def asarray(self, x): ...
    def asarray_int(self, x): ...
    def asarray_bool(self, x): ...
    def to_numpy(self, x): ...
    def logsumexp(self, x, axis): ...
    def log_softmax(self, x): ...

    # networks and flows
    def build_network(self, spec, seed): ...
    def build_flow(self, dim, hidden, num_layers, seed): ...
    def flow_transforms(self, name, layers): ...
    def autoregressive_step(self, net, context): ...
    def site_log_prob(self, site): ...
    def mixture_logits(self, fn): ...

    # parameters, randomness, tracing and compilation
    def new_params(self): ...
    def collect_params(self, state, traces): ...
    def params_to_numpy(self, params): ...
    def params_from_numpy(self, template, flat): ...
    def with_params(self, fn, params): ...
    def seed(self, fn, seed): ...
    def get_trace(self, fn, *args, **kwargs): ...
    def sample_sites(self, trace): ...
    def replay(self, fn, trace): ...
    def condition(self, fn, data): ...
    def compile(self, fn): ...

    # where training runs
    def has_gpu(self): ...
    def placement(self, device): ...

    # inference the libraries ship
    def objective(self, kind, num_particles=1, max_plate_nesting=1, **options): ...
    def nuts(self, fn, params, kwargs, chains, num_samples, num_warmup, seed): ...
    def run_svi(self, model, guide, params, kwargs, steps, lr, num_particles, seed): ...

    # optimizers (fit's optimizer= and lr=)
    def optimizer(self, optimizer, lr, options=None): ...
    def optimizer_of(self, obj): ...


def init_params(bk, model, kwargs: dict, seed: int):
    """Create a model's parameters by tracing its guide, then its model against the guide's
    draws, once; returns the backend's parameter state (a dict on NumPyro, a param-store
    state on Pyro). ``kwargs`` is a batch (see :mod:`probvae.batch`) in backend arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from probvae import backends
    >>> from probvae.models import VAE
    >>> bk = backends.get("numpyro")
    >>> vae = VAE(input_dim=4, latent_dim=2, hidden=(8,)).build(0)
    >>> params = init_params(bk, vae, {"x": bk.asarray(np.full((2, 4), 0.5))}, seed=0)
    >>> sorted(params)
    ['decoder$params', 'encoder$params']
    """
    state = bk.new_params()
    gtr = bk.get_trace(bk.seed(bk.with_params(model.guide, state), seed), **kwargs)
    mtr = bk.get_trace(bk.replay(bk.seed(bk.with_params(model.model, state), seed), gtr),
                       **kwargs)
    return bk.collect_params(state, (gtr, mtr))
