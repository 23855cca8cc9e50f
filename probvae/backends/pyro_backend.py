"""The Pyro (torch) backend namespace.

Examples
--------
>>> import numpy as np
>>> from probvae.backends import get
>>> bk = get("pyro")
>>> def model(x=None):
...     loc = bk.param("loc", np.zeros(2, np.float32))
...     with bk.plate("data", x.shape[0]):
...         bk.sample("x", bk.dist.Normal(loc, 1.0).to_event(1), obs=x)
>>> state = bk.new_params()
>>> tr = bk.get_trace(bk.seed(bk.with_params(model, state), 0), x=bk.asarray(np.ones((3, 2))))
>>> sorted(state["params"]), bk.shared_param_store     # the parameter lives in its own state
(['loc'], True)
"""
from __future__ import annotations

import contextlib
import inspect
import threading
from types import SimpleNamespace

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.infer
import pyro.poutine as poutine
import torch
from pyro.distributions import transforms as T
from pyro.nn import AutoRegressiveNN
from pyro.poutine.util import site_is_subsample

from ..distributions.cholesky_torch import CholeskyNormal
from ..distributions.columns_torch import Columns
from ..distributions.mixture_torch import DiagonalNormalMixture
from ..distributions import kl_torch  # noqa: F401 (registers the full-rank KL)
from ..networks import torch_nets
from .pyro_dreg import DReGELBO
from .torch_optim import JointAdam, JointOptim

#: torch's optimizer for each name of :data:`~.base.OPTIMIZER_NAMES`, and the settings given
#: explicitly (the fused kernel where torch has one; optax's defaults are set to these)
_TORCH_OPTIMIZERS = {"adam": ("Adam", {"fused": True}),
                     "adamw": ("AdamW", {"weight_decay": 1e-2, "fused": True}),
                     "sgd": ("SGD", {}),
                     "rmsprop": ("RMSprop", {"alpha": 0.99, "eps": 1e-8}),
                     "adagrad": ("Adagrad", {"initial_accumulator_value": 0.0, "eps": 1e-10})}


def _qualified(cls) -> str:
    """A class's name as a user writes it: ``torch.optim.AdamW`` for torch's own."""
    if getattr(torch.optim, getattr(cls, "__name__", ""), None) is cls:
        return f"torch.optim.{cls.__name__}"
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"


def _not_torch(obj) -> str:
    """Why ``obj`` is not an optimizer a Pyro fit takes, and what to pass."""
    kind = type(obj)
    module = getattr(kind, "__module__", "") or ""
    if module.split(".")[0] in ("optax", "numpyro") or (
            isinstance(obj, tuple) and callable(getattr(obj, "init", None))
            and callable(getattr(obj, "update", None))):
        return ("optimizer= got an optax transformation, which trains models made with "
                "backend='numpyro'; this model is a Pyro one: pass a torch optimizer class "
                "with lr= (optimizer=torch.optim.AdamW, lr=1e-3, or (torch.optim.SGD, "
                '{"momentum": 0.9})) or a name that works on both backends (optimizer='
                "'adamw', lr=1e-3)")
    from .base import OPTIMIZER_NAMES
    return (f"optimizer takes a name ({', '.join(map(repr, OPTIMIZER_NAMES))}), a torch "
            "optimizer class (torch.optim.AdamW) or (class, {options}) on Pyro, got "
            f"{kind.__name__} {obj!r}"[:400])


def _register_mixture_support():
    """torch knows no bijection for a mixture's support; it is its components' support.
    NUTS (reference posteriors) needs one for the mixture and vamp priors."""
    from torch.distributions import biject_to, constraints, transform_to
    cls = getattr(constraints, "MixtureSameFamilyConstraint", None)
    if cls is None or cls in biject_to._registry:
        return
    biject_to.register(cls)(lambda c: biject_to(c.base_constraint))
    transform_to.register(cls)(lambda c: transform_to(c.base_constraint))


_register_mixture_support()


class _ScaleSites(poutine.messenger.Messenger):
    """``poutine.scale`` for the named sites only."""

    def __init__(self, names, factor):
        super().__init__()
        self.names, self.factor = frozenset(names), factor

    def _process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.names:
            msg["scale"] = self.factor * msg["scale"]


@contextlib.contextmanager
def param_scope(state):
    """Run with Pyro's global param store holding exactly ``state``, then put the old one back.

    ``state`` is a dict ``{"params": ..., "constraints": ...}`` (``ParamStoreDict.get_state()``);
    it is updated in place with whatever the block created, so each fitted model keeps its
    own parameters and two models never share the store. A fitted state also carries
    ``"values"``, its own detached copies: they are written into the live tensors on entry,
    because a user's torch modules (``pyro.module``) may be shared by several fits.
    """
    store = pyro.get_param_store()
    saved = store.get_state()
    store.clear()
    if "values" in state:
        with torch.no_grad():
            for k, v in state["values"].items():
                state["params"][k].copy_(v)
    store.set_state({"params": dict(state["params"]), "constraints": dict(state["constraints"])})
    try:
        yield store
    finally:
        new = store.get_state()
        state["params"], state["constraints"] = new["params"], new["constraints"]
        store.clear()
        store.set_state(saved)


class _Distributions(SimpleNamespace):
    """``pyro.distributions`` plus probvae's own (a table row, :class:`Columns`; the full-rank
    posterior's ``CholeskyNormal``)."""

    def __getattr__(self, name):
        return getattr(dist, name)


class _WithContext:
    """``z -> net(z, context)`` with the network's ``permutation`` (which Pyro's
    ``AffineAutoregressive`` reads to invert a step)."""

    def __init__(self, net, context):
        self.net, self.context, self.permutation = net, context, net.permutation

    def __call__(self, z):
        return self.net(z, self.context)


def _copy_state(params):
    """A scope of its own over a fitted state's values, so new parameters stay out of it."""
    scope = {"params": dict(params["params"]), "constraints": dict(params["constraints"])}
    if "values" in params:
        scope["values"] = params["values"]
    return scope


#: Pyro's ELBO for each objective kind (:data:`~.base.OBJECTIVE_KINDS`) and its settings beyond
#: particles and plates, all explicit (an unlabelled and a labelled batch of a semi-supervised
#: model share one ``enum`` objective, and the labelled one has nothing to enumerate: no warning)
_ELBOS = {"elbo": (pyro.infer.Trace_ELBO, {"strict_enumeration_warning": True}),
          "mean_field": (pyro.infer.TraceMeanField_ELBO, {"strict_enumeration_warning": True}),
          "renyi": (pyro.infer.RenyiELBO, {"alpha": 0.0, "strict_enumeration_warning": True}),
          "enum": (pyro.infer.TraceEnum_ELBO, {"strict_enumeration_warning": False}),
          "dreg": (DReGELBO, {"strict_enumeration_warning": True})}


class PyroBackend:
    """Pyro's primitives under the shared names, plus the few places Pyro differs.

    Implements :class:`~probvae.backends.base.Backend`.
    """

    name = "pyro"
    loop_module = "probvae.inference.pyro_loop"     # its Loop, imported by fit on first use
    fixed_shapes = False         # eager: any shape
    shared_param_store = True    # swapped per model by param_scope
    multi_process = True         # data-parallel as torchrun processes (torch.distributed)
    #: held by every probvae call that traces or trains on this backend: the library's handler
    #: stack (and Pyro's param store) are global, so calls from several threads take turns
    lock = threading.RLock()
    sample = staticmethod(pyro.sample)
    plate = staticmethod(pyro.plate)
    factor = staticmethod(pyro.factor)
    deterministic = staticmethod(pyro.deterministic)
    module = staticmethod(pyro.module)
    dist = _Distributions(Columns=Columns, DiagonalNormalMixture=DiagonalNormalMixture,
                          CholeskyNormal=CholeskyNormal)
    constraints = dist.constraints
    infer = pyro.infer

    # ---- model-facing helpers -------------------------------------------------------------
    @staticmethod
    def scale(factor):
        return poutine.scale(scale=factor)

    @staticmethod
    def scale_sites(names, factor):
        """A handler that scales the log densities of the sample sites named ``names`` (in
        model and guide alike: the KL weight of a warm-up, applied from outside the model)."""
        return _ScaleSites(names, factor)

    def param(self, name, init=None, constraint=dist.constraints.real):
        """``pyro.param`` whose ``init`` may be a NumPy array (converted lazily, once)."""
        if init is None:
            return pyro.param(name)
        if isinstance(init, np.ndarray):
            arr = init
            init = lambda: torch.as_tensor(arr, dtype=torch.get_default_dtype())  # noqa: E731
        return pyro.param(name, init, constraint=constraint)

    @staticmethod
    def asarray(x):
        return torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype())

    @staticmethod
    def asarray_int(x):
        return torch.as_tensor(np.asarray(x), dtype=torch.long)

    @staticmethod
    def asarray_bool(x):
        return torch.as_tensor(np.asarray(x), dtype=torch.bool)

    @staticmethod
    def to_numpy(x):
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    # ---- where training runs ------------------------------------------------------------
    @staticmethod
    def has_gpu() -> bool:
        """Whether torch sees a CUDA GPU."""
        return bool(torch.cuda.is_available())

    @classmethod
    def torch_device(cls, device) -> torch.device:
        """``"cpu"``/``"gpu"``/``None`` (automatic: CUDA when torch sees it) as a torch device."""
        if device is None:
            device = "gpu" if cls.has_gpu() else "cpu"
        return torch.device("cuda" if device == "gpu" else "cpu")

    @classmethod
    def placement(cls, device):
        """New tensors (data, parameters, optimiser state) go on ``device`` inside this block
        (torch's default-device context); networks are moved by :meth:`move_nets`. On the CPU,
        where new tensors go anyway, no context is entered: torch's device context intercepts
        every torch call in Python, about 10% of a small network's training step.

        Examples
        --------
        >>> with PyroBackend.placement("cpu"):
        ...     torch.zeros(2).device.type
        'cpu'
        """
        where = cls.torch_device(device)
        if where.type == "cpu" and torch.get_default_device().type == "cpu":
            return contextlib.nullcontext()
        return where

    @staticmethod
    def move_nets(nets, device):
        """Move every torch module in a model's ``nets`` dict (nested lists and dicts too) to
        ``device``, in place; NumPy arrays stay as they are (converted where they are used)."""
        def move(obj):
            if isinstance(obj, torch.nn.Module):
                obj.to(device)
            elif isinstance(obj, dict):
                for v in obj.values():
                    move(v)
            elif isinstance(obj, (list, tuple)):
                for v in obj:
                    move(v)
        move(nets)

    # ---- networks and flows -------------------------------------------------------------
    @staticmethod
    def build_network(spec, seed):
        """A torch module for a network spec (MLP or conv), weights drawn from ``seed``."""
        return torch_nets.build(spec, seed)

    @staticmethod
    def build_flow(dim, hidden, num_layers, seed):
        """Affine autoregressive layers (Pyro's ``AffineAutoregressive``), built once."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.nn.ModuleList(
                T.AffineAutoregressive(AutoRegressiveNN(dim, [hidden], permutation=torch.arange(dim)))
                for _ in range(num_layers))

    def flow_transforms(self, name, layers):
        """Register flow layers under ``name`` and return them as a transform list."""
        layers = pyro.module(name, layers)
        dim = layers[0].arn.input_dim
        flip = T.Permute(torch.arange(dim - 1, -1, -1))
        out = []
        for i, layer in enumerate(layers):
            out += [layer] if i == 0 else [flip, layer]
        return out

    @staticmethod
    def autoregressive_step(net, context):
        """Pyro's ``AffineAutoregressive`` (``y = mean + exp(log_scale) * z``, log-scale
        clipped to [-5, 3], as NumPyro's) around a MADE network ``net(z, context)``."""
        return T.AffineAutoregressive(_WithContext(net, context))

    # ---- parameters, randomness and tracing ---------------------------------------------
    @staticmethod
    def new_params():
        return {"params": {}, "constraints": {}}

    @staticmethod
    def collect_params(state, traces):
        """The state itself: tracing under ``with_params(fn, state)`` registered the
        parameters in it (see ``base.init_params``)."""
        return state

    @staticmethod
    def snapshot(state):
        """Detached copies of a state's (unconstrained) values."""
        return {k: v.detach().clone() for k, v in state["params"].items()}

    @staticmethod
    def finalize(state, values):
        """Make ``state`` a fitted state that owns ``values`` (see :func:`param_scope`)."""
        state["values"] = values
        return state

    @staticmethod
    def params_to_numpy(state):
        """Flat ``{name: ndarray}`` of unconstrained values, for checkpoints."""
        values = state.get("values") or state["params"]
        return {k: v.detach().cpu().numpy() for k, v in values.items()}

    def params_from_numpy(self, template, flat):
        """Load checkpoint values into a template state made by tracing a freshly built model."""
        missing = set(template["params"]) ^ set(flat)
        if missing:
            raise ValueError(f"checkpoint parameters do not match the model: {sorted(missing)}")
        dtype = torch.get_default_dtype()
        return self.finalize(template, {k: torch.as_tensor(v, dtype=dtype) for k, v in flat.items()})

    @staticmethod
    def with_params(fn, state):
        """``fn`` run against its own parameter state instead of the global param store."""
        def bound(*args, **kwargs):
            with param_scope(state):
                return fn(*args, **kwargs)
        return bound

    @staticmethod
    def seed(fn, seed):
        return poutine.seed(fn, rng_seed=int(seed))

    @staticmethod
    def get_trace(fn, *args, **kwargs):
        with torch.no_grad():
            return dict(poutine.trace(fn).get_trace(*args, **kwargs).nodes)

    @staticmethod
    def site_log_prob(site):
        """log density of a traced sample site's value (a flow's draw is cached by its
        transforms: no inverse is computed)."""
        return site["fn"].log_prob(site["value"])

    @staticmethod
    def sample_sites(trace):
        """The random (non-plate) sample sites of a trace from :meth:`get_trace`."""
        return {k: s for k, s in trace.items()
                if s["type"] == "sample" and not site_is_subsample(s)}

    @staticmethod
    def replay(fn, trace):
        tr = poutine.Trace()
        for name, site in trace.items():
            tr.add_node(name, **site)
        return poutine.replay(fn, trace=tr)

    @staticmethod
    def condition(fn, data):
        return poutine.condition(fn, data=data)

    @staticmethod
    def compile(fn):
        """Pyro runs eagerly; inference-only calls skip autograd."""
        def run(*args, **kwargs):
            with torch.no_grad():
                return fn(*args, **kwargs)
        return run

    @staticmethod
    def objective(kind, num_particles=1, max_plate_nesting=1, **options):
        """Pyro's ELBO of ``kind`` (one of :data:`~.base.OBJECTIVE_KINDS`), with the settings
        in which Pyro's defaults differ from NumPyro's given explicitly: particles vectorised
        (Pyro's default draws them one after another) and the model's ``max_plate_nesting``
        (Pyro's default finds it by an extra trace); ``options``: the kind's own (``alpha``
        for ``"renyi"``, default 0, the IWAE bound).

        Examples
        --------
        >>> elbo = PyroBackend.objective("renyi", num_particles=4)
        >>> type(elbo).__name__, elbo.alpha, elbo.num_particles, elbo.vectorize_particles
        ('RenyiELBO', 0.0, 4, True)
        """
        if kind not in _ELBOS:
            raise ValueError(f"unknown objective kind {kind!r}; pyro builds {', '.join(_ELBOS)}")
        cls, own = _ELBOS[kind]
        return cls(num_particles=int(num_particles), max_plate_nesting=int(max_plate_nesting),
                   vectorize_particles=True, **{**own, **options})

    def nuts(self, fn, params, kwargs, chains, num_samples, num_warmup, seed):
        """NUTS on the latent sites of ``fn(**kwargs)`` with ``params`` fixed; Pyro runs
        the chains one after another. Returns ``{site: ndarray (chain, draw, ...)}``."""
        from pyro.infer import MCMC, NUTS
        out = []
        with param_scope(_copy_state(params)), torch.random.fork_rng(devices=[]):
            for c in range(chains):
                torch.manual_seed(seed + c)
                mcmc = MCMC(NUTS(poutine.block(fn, hide_types=["param"])), num_samples=num_samples,
                            warmup_steps=num_warmup, num_chains=1, disable_progbar=True)
                mcmc.run(**kwargs)
                out.append({k: v.detach().numpy() for k, v in mcmc.get_samples().items()})
        return {k: np.stack([o[k] for o in out]) for k in out[0]}

    @staticmethod
    def adam(lr):
        """Adam for Pyro's SVI: one torch optimizer with the fused kernel over all parameters
        (:class:`~probvae.backends.torch_optim.JointAdam`), where Pyro's own ``Adam`` makes
        one optimizer call per parameter tensor each step. Same arithmetic, same saved state.

        >>> PyroBackend.adam(1e-3).pt_optim_args
        {'lr': 0.001, 'fused': True}
        """
        return JointAdam(lr)

    @classmethod
    def optimizer(cls, optimizer, lr, options=None):
        """The optimizer a Pyro fit steps with: one torch optimizer over all parameters
        (:class:`~probvae.backends.torch_optim.JointOptim`) of the class named by
        ``optimizer`` (a name of :data:`~.base.OPTIMIZER_NAMES`: torch's ``Adam``, ``AdamW``,
        ``SGD``, ``RMSprop``, ``Adagrad``), or a ``torch.optim.Optimizer`` class, or the class
        and settings of a ``pyro.optim`` optimizer (which holds its ``lr``: ``lr`` is None).
        ``options`` are the class's keyword arguments (``momentum``, ``weight_decay``, ...);
        ``lr`` a number or a function of the step count (its value at step 0 here: the loop
        sets it before every step). The settings are checked now, on a throwaway tensor.

        >>> PyroBackend.optimizer("sgd", 0.1, {"momentum": 0.9}).pt_optim_args
        {'lr': 0.1, 'momentum': 0.9}
        >>> PyroBackend.optimizer("sgd", 0.1, {"momentun": 0.9})
        Traceback (most recent call last):
        ...
        ValueError: optimizer='sgd' (torch.optim.SGD) does not take the option 'momentun'; its options: ...
        """
        if isinstance(optimizer, str):
            if optimizer == "adam" and not options:
                return cls.adam(float(lr(0)) if callable(lr) else lr)     # as always
            name, defaults = _TORCH_OPTIMIZERS[optimizer]
            what, make = f"optimizer={optimizer!r} (torch.optim.{name})", getattr(torch.optim,
                                                                                  name)
            args = dict(defaults)
        elif isinstance(optimizer, pyro.optim.PyroOptim):
            what, make = cls.optimizer_of(optimizer)[0], optimizer.pt_optim_constructor
            args = dict(optimizer.pt_optim_args)
        else:
            what, make, args = f"optimizer={_qualified(optimizer)}", optimizer, {}
        args.update(options or {})
        if lr is not None:                       # the rate first, as torch lists it
            args = {"lr": float(lr(0)) if callable(lr) else float(lr),
                    **{k: v for k, v in args.items() if k != "lr"}}
        accepted = [k for k in inspect.signature(make.__init__).parameters
                    if k not in ("self", "params")]
        unknown = [k for k in args if k not in accepted]
        if unknown and not any(p.kind == p.VAR_KEYWORD for p in
                               inspect.signature(make.__init__).parameters.values()):
            raise ValueError(f"{what} does not take the option {unknown[0]!r}; its options: "
                             f"{', '.join(k for k in accepted if k != 'lr')}")
        try:
            make([torch.zeros(1, requires_grad=True)], **args)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{what} refuses the settings {args}: {err}") from None
        return JointOptim(make, args)

    @staticmethod
    def optimizer_of(obj):
        """``(description, holds_lr)`` of a user's optimizer object: a ``torch.optim.Optimizer``
        class (``lr=`` sets its rate), or a ``pyro.optim`` optimizer such as
        ``pyro.optim.ClippedAdam({"lr": 1e-3})`` (its rate inside it). Anything else raises a
        TypeError naming what a Pyro fit takes (an optax transformation: NumPyro's).

        >>> PyroBackend.optimizer_of(torch.optim.AdamW)
        ('torch.optim.AdamW', False)
        >>> PyroBackend.optimizer_of(torch.optim.AdamW([torch.zeros(1, requires_grad=True)]))
        Traceback (most recent call last):
        ...
        TypeError: optimizer= takes the torch optimizer's class, not an instance made on parameters (fit makes it on the model's): optimizer=torch.optim.AdamW, with lr= and its other settings as (torch.optim.AdamW, {"weight_decay": 0.01})
        """
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer):
            return _qualified(obj), False
        if isinstance(obj, torch.optim.Optimizer):
            name = _qualified(type(obj))
            raise TypeError("optimizer= takes the torch optimizer's class, not an instance made "
                            "on parameters (fit makes it on the model's): optimizer="
                            f"{name}, with lr= and its other settings as ({name}, "
                            '{"weight_decay": 0.01})')
        if isinstance(obj, pyro.optim.PyroOptim):
            if isinstance(obj, pyro.optim.lr_scheduler.PyroLRScheduler):
                raise TypeError("optimizer= takes a torch optimizer, not a Pyro learning-rate "
                                "scheduler: pass the optimizer, and the schedule as lr= (a "
                                "function of the step count, e.g. lr=lambda step: 1e-3 * "
                                "0.999 ** step)")
            if not isinstance(obj.pt_optim_args, dict) or obj.pt_clip_args:
                raise TypeError("a pyro.optim optimizer with per-parameter settings or clip "
                                "arguments cannot train a whole model: give its settings as a "
                                "dict, and clip with fit(clip_norm=...)")
            return (f"pyro.optim.PyroOptim({_qualified(obj.pt_optim_constructor)}, "
                    f"{obj.pt_optim_args!r})"), "lr" in obj.pt_optim_args
        raise TypeError(_not_torch(obj))

    def run_svi(self, model, guide, params, kwargs, steps, lr, num_particles, seed):
        """Optimise ``guide``'s own parameters for ``model(**kwargs)`` by Pyro's SVI (Adam,
        ``Trace_ELBO`` with vectorised particles) with the model's ``params`` held fixed;
        returns the guide's parameters as ``{name: ndarray}`` (constrained values)."""
        from pyro.infer import SVI
        with param_scope(_copy_state(params)) as store, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            before = set(store.keys())
            svi = SVI(poutine.block(model, hide_types=["param"]), guide,
                      self.adam(lr), self.objective("elbo", num_particles=num_particles))
            for _ in range(steps):
                svi.step(**kwargs)
            return {k: store[k].detach().numpy().copy() for k in store.keys() if k not in before}

    @staticmethod
    def mixture_logits(fn):
        """Mixing logits of a ``MixtureSameFamily`` (the attribute name differs by library)."""
        return fn.mixture_distribution.logits

    @staticmethod
    def logsumexp(x, axis):
        return torch.logsumexp(x, dim=axis)

    @staticmethod
    def log_softmax(x):
        return torch.log_softmax(x, dim=-1)


BACKEND = PyroBackend()
