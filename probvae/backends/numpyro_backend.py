"""The NumPyro (JAX) backend namespace.

Examples
--------
>>> import numpy as np
>>> from probvae.backends import get
>>> bk = get("numpyro")
>>> def model(x=None):
...     loc = bk.param("loc", np.zeros(2, np.float32))
...     with bk.plate("data", x.shape[0]):
...         bk.sample("x", bk.dist.Normal(loc, 1.0).to_event(1), obs=x)
>>> tr = bk.get_trace(bk.seed(model, 0), x=bk.asarray(np.ones((3, 2))))
>>> sorted(bk.sample_sites(tr)), bk.fixed_shapes
(['x'], True)
"""
from __future__ import annotations

import contextlib
import threading

from types import SimpleNamespace

import jax
import jax.numpy as jnp

import numpy as np
import numpyro
import numpyro.distributions as _nd
import numpyro.infer
from numpyro import handlers
from functools import partial

from numpyro.contrib.module import eqx_module
from numpyro.distributions import transforms as T
from numpyro.distributions.flows import InverseAutoregressiveTransform
from numpyro.nn import AutoregressiveNN

from ..distributions.continuous_bernoulli import ContinuousBernoulli
from ..distributions.cholesky_jax import CholeskyNormal
from ..distributions.columns_jax import Columns
from ..distributions.mixture_jax import DiagonalNormalMixture
from ..distributions import kl_jax  # noqa: F401 (registers the full-rank KL)
from ..networks import jax_nets
from .numpyro_dreg import DReGELBO
from .numpyro_cache import (CACHE_DIR_ENV, CACHE_ENV,  # noqa: F401 (their old home)
                            ProgramCache, default_cache_dir)

#: optax's optimizer for each name of :data:`~.base.OPTIMIZER_NAMES`, with the defaults in
#: which optax differs from torch set to torch's (the same optimizer on both backends)
_OPTAX = {"adam": ("adam", {}),
          "adamw": ("adamw", {"weight_decay": 1e-2}),
          "sgd": ("sgd", {}),
          "rmsprop": ("rmsprop", {"decay": 0.99, "eps": 1e-8, "eps_in_sqrt": False}),
          "adagrad": ("adagrad", {"initial_accumulator_value": 0.0, "eps": 1e-10})}


def _check_schedule(lr):
    """A learning-rate schedule runs inside the compiled step on a JAX integer: one that does
    not trace (a Python ``if`` on the step) is refused now, naming the fix."""
    try:
        out = jax.eval_shape(lr, jax.ShapeDtypeStruct((), jnp.int32))
    except Exception as err:
        name = getattr(lr, "__name__", type(lr).__name__)
        raise TypeError(f"lr={name} is called inside NumPyro's compiled step, with the step "
                        f"count as a JAX integer, and fails there ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:160] if str(err) else ''}): write it with "
                        "jax.numpy (jnp.where(step < 1000, 1e-3, 1e-4), not an if) or use an "
                        "optax schedule (optax.exponential_decay(1e-3, 1000, 0.5))") from None
    if getattr(out, "shape", None) != ():
        raise TypeError(f"lr= as a function of the step must return one number, got "
                        f"{getattr(out, 'shape', out)}")


def _not_optax(obj) -> str:
    """Why ``obj`` is not an optimizer a NumPyro fit takes, and what to pass."""
    kinds = [f"{getattr(c, '__module__', '')}" for c in
             (obj.__mro__ if isinstance(obj, type) else type(obj).__mro__)]
    if any(k.split(".")[0] in ("torch", "pyro") for k in kinds):
        return ("optimizer= got a torch (Pyro) optimizer, which trains models made with "
                "backend='pyro'; this model is a NumPyro one: pass an optax transformation "
                "(optimizer=optax.adamw(1e-3), its lr inside it) or a name that works on both "
                "backends with lr= (optimizer='adamw', lr=1e-3)")
    if any(k.startswith("numpyro.optim") for k in kinds):
        return ("optimizer= got a numpyro.optim optimizer: pass the optax transformation "
                "instead (optimizer=optax.adam(1e-3); NumPyro's own wrap the same), or a name "
                "with lr= (optimizer='adam', lr=1e-3)")
    from .base import OPTIMIZER_NAMES
    return (f"optimizer takes a name ({', '.join(map(repr, OPTIMIZER_NAMES))}), (name, "
            "{options}) or an optax GradientTransformation (optax.adamw(1e-3)) on NumPyro, got "
            f"{type(obj).__name__} {obj!r}"[:400])


def compilation_cache(path="default"):
    """Keep NumPyro's compiled programs on disk so a second run skips compilation (and, for
    the built-in models, tracing): the NumPyro backend's :class:`~.numpyro_cache.ProgramCache`.

    ``path="default"`` uses :func:`~.numpyro_cache.default_cache_dir`; ``None`` turns the cache
    off. Without a call, the cache switches on when a NumPyro fit first runs (never at import),
    unless ``PROBVAE_COMPILATION_CACHE=0`` is set or JAX's own ``jax_compilation_cache_dir``
    was configured. Process-wide. Returns the folder in use (None when off or not writable).

    Examples
    --------
    >>> import jax
    >>> saved = jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache
    >>> compilation_cache() == default_cache_dir()     # on, in the default folder
    True
    >>> compilation_cache(None) is None                # off
    True
    >>> jax.config.update("jax_compilation_cache_dir", saved[0])  # as it was (a doctest)
    >>> jax.config.update("jax_enable_compilation_cache", saved[1])
    """
    return BACKEND.program_cache.use(path)


def program_cache_dir():
    """Where traced programs are kept between runs (beside the compiled ones), or None when
    probvae's compilation cache is off or not started yet
    (``ProgramCache.programs_folder``).

    Examples
    --------
    >>> program_cache_dir() in (None, default_cache_dir().parent / "programs")
    True
    """
    return BACKEND.program_cache.programs_folder


class _Distributions(SimpleNamespace):
    """``numpyro.distributions`` plus probvae's own (ContinuousBernoulli, which NumPyro lacks; a
    table row, :class:`Columns`; the full-rank posterior's ``CholeskyNormal``)."""

    def __getattr__(self, name):
        return getattr(_nd, name)


class _ScaleSites(numpyro.primitives.Messenger):
    """``handlers.scale`` for the named sites only."""

    def __init__(self, fn=None, names=(), factor=1.0):
        self.names, self.factor = frozenset(names), factor
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.names:
            msg["scale"] = self.factor if msg.get("scale") is None else self.factor * msg["scale"]


#: NumPyro's ELBO for each objective kind (:data:`~.base.OBJECTIVE_KINDS`): its class in
#: ``numpyro.infer``, its settings beyond particles, all explicit, and whether it takes the
#: model's plate nesting (the others find the plates themselves). TraceEnum_ELBO imports
#: funsor on its first use only.
_ELBOS = {"elbo": ("Trace_ELBO", {"vectorize_particles": True}, False),
          "mean_field": ("TraceMeanField_ELBO", {"vectorize_particles": True}, False),
          "renyi": ("RenyiELBO", {"alpha": 0.0}, False),    # always vectorised
          "enum": ("TraceEnum_ELBO", {"vectorize_particles": True}, True),
          "dreg": (DReGELBO, {"vectorize_particles": True}, False)}   # probvae's own class


class NumPyroBackend:
    """NumPyro's primitives under the shared names, plus the few places NumPyro differs.

    Implements :class:`~probvae.backends.base.Backend`.
    """

    name = "numpyro"
    loop_module = "probvae.inference.numpyro_loop"  # its Loop, imported by fit on first use
    fixed_shapes = True          # jit compiles one shape: chunks are padded
    shared_param_store = False
    multi_process = False        # several devices from one process: fit(devices=N)
    #: held by every probvae call that traces or trains on this backend: the library's handler
    #: stack (and Pyro's param store) are global, so calls from several threads take turns
    lock = threading.RLock()
    #: what a NumPyro fit keeps between runs (compiled and traced programs), switched on by the
    #: first fit that needs it, and the scope in which NumPyro's ELBOs sum sites in one order
    program_cache = ProgramCache()
    sample = staticmethod(numpyro.sample)
    plate = staticmethod(numpyro.plate)
    factor = staticmethod(numpyro.factor)
    deterministic = staticmethod(numpyro.deterministic)
    dist = _Distributions(ContinuousBernoulli=ContinuousBernoulli, Columns=Columns,
                          DiagonalNormalMixture=DiagonalNormalMixture,
                          CholeskyNormal=CholeskyNormal)
    constraints = _nd.constraints
    infer = numpyro.infer

    # ---- model-facing helpers -------------------------------------------------------------
    @staticmethod
    def module(name, net):
        return eqx_module(name, net)

    @staticmethod
    def scale(factor):
        return handlers.scale(scale=factor)

    @staticmethod
    def scale_sites(names, factor):
        """A handler that scales the log densities of the sample sites named ``names`` (in
        model and guide alike: the KL weight of a warm-up, applied from outside the model)."""
        return _ScaleSites(names=names, factor=factor)

    @staticmethod
    def param(name, init=None, constraint=_nd.constraints.real):
        """``numpyro.param`` whose ``init`` may be a NumPy array."""
        if init is None:
            return numpyro.param(name)
        if isinstance(init, np.ndarray):
            arr = init
            init = lambda _key: jnp.asarray(arr, dtype=jnp.float32)  # noqa: E731
        return numpyro.param(name, init, constraint=constraint)

    @staticmethod
    def asarray(x):
        # device_put, not jnp.asarray: that compiles a small program per array shape, which
        # was a tenth of a second of each fit's start
        return jax.device_put(np.asarray(x, dtype=np.float32))

    @staticmethod
    def asarray_int(x):
        return jax.device_put(np.asarray(x, dtype=np.int32))

    @staticmethod
    def asarray_bool(x):
        return jax.device_put(np.asarray(x, dtype=bool))

    @staticmethod
    def to_numpy(x):
        return np.asarray(x)

    # ---- where training runs ------------------------------------------------------------
    @staticmethod
    def has_gpu() -> bool:
        """Whether JAX sees a GPU (the CUDA build of jaxlib is installed and finds one)."""
        try:
            return len(jax.devices("gpu")) > 0
        except RuntimeError:
            return False

    @staticmethod
    def placement(device):
        """Arrays and compiled computations go on ``device`` inside this block
        (``jax.default_device``); ``None`` keeps JAX's default (its GPU when it has one)."""
        if device is None:
            return contextlib.nullcontext()
        return jax.default_device(jax.devices(device)[0])

    # ---- networks and flows -------------------------------------------------------------
    @staticmethod
    def build_network(spec, seed):
        """An Equinox module for a network spec (MLP or conv), weights drawn from ``seed``."""
        return jax_nets.build(spec, seed)

    @staticmethod
    def build_flow(dim, hidden, num_layers, seed):
        """Autoregressive networks for NumPyro's ``InverseAutoregressiveTransform``.

        Weights are drawn when the parameters are initialised (from the fit's seed).
        """
        del seed
        return SimpleNamespace(dim=dim, num_layers=num_layers,
                               arn=AutoregressiveNN(dim, [hidden], permutation=jnp.arange(dim)))

    @staticmethod
    def flow_transforms(name, layers):
        """Register flow layers under ``name`` and return them as a transform list."""
        flip = T.PermuteTransform(jnp.arange(layers.dim - 1, -1, -1))
        out = []
        for i in range(layers.num_layers):
            init_fn, apply_fn = layers.arn
            params = numpyro.param(f"{name}_{i}$params",
                                   lambda key, f=init_fn: f(key, (layers.dim,))[1])
            arn = partial(apply_fn, params)
            out += ([] if i == 0 else [flip]) + [InverseAutoregressiveTransform(arn)]
        return out

    @staticmethod
    def autoregressive_step(net, context):
        """NumPyro's ``InverseAutoregressiveTransform`` (``y = mean + exp(log_scale) * z``,
        log-scale clipped to [-5, 3]) around a MADE network ``net(z, context)``."""
        return InverseAutoregressiveTransform(partial(net, context=context))

    # ---- parameters, randomness and tracing ---------------------------------------------
    @staticmethod
    def new_params():
        return {}

    @staticmethod
    def collect_params(state, traces):
        """The parameter dict from the param sites of ``traces`` (see ``base.init_params``)."""
        return {k: s["value"] for tr in traces for k, s in tr.items() if s["type"] == "param"}

    @staticmethod
    def params_to_numpy(params):
        """Flat ``{path: ndarray}`` of the (constrained) parameters, for checkpoints."""
        leaves = jax.tree_util.tree_leaves_with_path(params)
        return {jax.tree_util.keystr(path): np.asarray(v) for path, v in leaves}

    @staticmethod
    def params_from_numpy(template, flat):
        """Fill a template parameter tree (from a freshly initialised model) with saved values."""
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(template)]
        if set(paths) != set(flat):
            raise ValueError("checkpoint parameters do not match the model: "
                             f"{sorted(set(paths) ^ set(flat))}")
        treedef = jax.tree_util.tree_structure(template)
        return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(flat[p]) for p in paths])

    @staticmethod
    def with_params(fn, params):
        return handlers.substitute(fn, data=params)

    @staticmethod
    def seed(fn, seed):
        return handlers.seed(fn, rng_seed=seed)

    @staticmethod
    def get_trace(fn, *args, **kwargs):
        return dict(handlers.trace(fn).get_trace(*args, **kwargs))

    @staticmethod
    def site_log_prob(site):
        """log density of a traced sample site's value, from the intermediates its draw kept
        where there are some (a flow's: no inverse is computed)."""
        if site.get("intermediates"):
            return site["fn"].log_prob(site["value"], site["intermediates"])
        return site["fn"].log_prob(site["value"])

    @staticmethod
    def sample_sites(trace):
        """The sample sites of a trace from :meth:`get_trace`."""
        return {k: s for k, s in trace.items() if s["type"] == "sample"}

    @staticmethod
    def replay(fn, trace):
        return handlers.replay(fn, trace=trace)

    @staticmethod
    def condition(fn, data):
        return handlers.condition(fn, data=data)

    @staticmethod
    def compile(fn):
        return jax.jit(fn)

    @staticmethod
    def objective(kind, num_particles=1, max_plate_nesting=1, **options):
        """NumPyro's ELBO of ``kind`` (one of :data:`~.base.OBJECTIVE_KINDS`), with its
        defaults given explicitly (particles vectorised, as Pyro's are made to be) and the
        model's ``max_plate_nesting`` where the class takes it (``"enum"``); ``options``: the
        kind's own (``alpha`` for ``"renyi"``, default 0, the IWAE bound).

        Examples
        --------
        >>> elbo = NumPyroBackend.objective("enum", max_plate_nesting=2)
        >>> type(elbo).__name__, elbo.num_particles, elbo.max_plate_nesting
        ('TraceEnum_ELBO', 1, 2)
        """
        if kind not in _ELBOS:
            raise ValueError(f"unknown objective kind {kind!r}; numpyro builds "
                             f"{', '.join(_ELBOS)}")
        cls, own, plates = _ELBOS[kind]
        settings = dict(own, **options)
        if plates:
            settings["max_plate_nesting"] = int(max_plate_nesting)
        cls = cls if isinstance(cls, type) else getattr(numpyro.infer, cls)
        return cls(num_particles=int(num_particles), **settings)

    @staticmethod
    def nuts(fn, params, kwargs, chains, num_samples, num_warmup, seed):
        """NUTS on the latent sites of ``fn(**kwargs)`` with ``params`` fixed; chains run
        vectorised. Returns ``{site: ndarray (chain, draw, ...)}``."""
        from numpyro.infer import MCMC, NUTS
        model = handlers.substitute(fn, data=params)
        mcmc = MCMC(NUTS(model), num_warmup=num_warmup, num_samples=num_samples,
                    num_chains=chains, chain_method="vectorized", progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed), **kwargs)
        return {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}

    @staticmethod
    def run_svi(model, guide, params, kwargs, steps, lr, num_particles, seed):
        """Optimise ``guide``'s own parameters for ``model(**kwargs)`` by NumPyro's SVI (Adam,
        ``Trace_ELBO``) with the model's ``params`` held fixed; returns the guide's parameters
        as ``{name: ndarray}``."""
        import optax
        from numpyro.infer import SVI, Trace_ELBO
        fixed = handlers.block(handlers.substitute(model, data=params),
                               hide_fn=lambda site: site["type"] == "param")
        svi = SVI(fixed, guide, optax.adam(lr), Trace_ELBO(num_particles=num_particles))
        with ProgramCache.sorted_sets():       # the ELBO's terms in one order in every process
            out = svi.run(jax.random.PRNGKey(seed), steps, progress_bar=False, **kwargs)
        return {k: np.asarray(v) for k, v in out.params.items()}

    @staticmethod
    def optimizer(optimizer, lr, options=None):
        """The optax transformation a NumPyro fit steps with: optax's optimizer named by
        ``optimizer`` (a name of :data:`~.base.OPTIMIZER_NAMES`, with the defaults in which
        optax and torch differ set to torch's) at learning rate ``lr`` with optax's keyword
        ``options`` (``momentum``, ``weight_decay``, ...), or a user's ``GradientTransformation``
        as it is (it holds its rate: ``lr`` is None). ``lr`` is a number or a schedule, a
        function of the step count that JAX traces inside the compiled step (an optax
        schedule, or one written with ``jax.numpy``): checked here, with an error naming the
        fix.

        >>> import optax
        >>> opt = NumPyroBackend.optimizer("sgd", optax.exponential_decay(0.1, 100, 0.5),
        ...                                {"momentum": 0.9})
        >>> isinstance(opt, optax.GradientTransformation)
        True
        >>> NumPyroBackend.optimizer("sgd", lambda step: 0.1 if step < 100 else 0.01)
        Traceback (most recent call last):
        ...
        TypeError: lr=<lambda> is called inside NumPyro's compiled step, with the step count as a JAX integer, and fails there (...): write it with jax.numpy (jnp.where(step < 1000, 1e-3, 1e-4), not an if) or use an optax schedule (optax.exponential_decay(1e-3, 1000, 0.5))
        """
        import inspect
        import optax
        if not isinstance(optimizer, str):
            return optimizer
        if callable(lr):
            _check_schedule(lr)
        if optimizer == "adam" and not options:
            return optax.adam(lr)             # as fit always built it (same saved state)
        name, defaults = _OPTAX[optimizer]
        make = getattr(optax, name)
        accepted = [k for k in inspect.signature(make).parameters if k != "learning_rate"]
        unknown = [k for k in (options or {}) if k not in accepted]
        if unknown:
            raise ValueError(f"optimizer={optimizer!r} (optax.{name}) does not take the option "
                             f"{unknown[0]!r}; its options: {', '.join(accepted)}")
        try:
            return make(lr, **{**defaults, **(options or {})})
        except (TypeError, ValueError) as err:
            raise ValueError(f"optimizer={optimizer!r} (optax.{name}) refuses the options "
                             f"{options}: {err}") from None

    @staticmethod
    def optimizer_of(obj):
        """``(description, holds_lr)`` of a user's optimizer object: an optax
        ``GradientTransformation`` (``optax.adamw(1e-3)``, an ``optax.chain``), which holds
        its learning rate. Anything else raises a TypeError naming what a NumPyro fit takes
        (a torch optimizer: Pyro's).

        >>> import optax
        >>> NumPyroBackend.optimizer_of(optax.adamw(1e-3))
        ('optax.GradientTransformation', True)
        """
        import optax
        if isinstance(obj, optax.GradientTransformation):
            return "optax.GradientTransformation", True
        raise TypeError(_not_optax(obj))

    @staticmethod
    def mixture_logits(fn):
        """Mixing logits of a ``MixtureSameFamily`` (the attribute name differs by library)."""
        return fn.mixing_distribution.logits

    @staticmethod
    def logsumexp(x, axis):
        return jax.nn.logsumexp(x, axis=axis)

    @staticmethod
    def log_softmax(x):
        return jax.nn.log_softmax(x, axis=-1)


BACKEND = NumPyroBackend()
