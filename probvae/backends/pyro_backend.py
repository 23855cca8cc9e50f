"""The Pyro (torch) backend namespace."""
from __future__ import annotations

import contextlib
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

from ..networks import torch_mlp


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


class PyroBackend:
    """Pyro's primitives under the shared names, plus the few places Pyro differs."""

    name = "pyro"
    sample = staticmethod(pyro.sample)
    plate = staticmethod(pyro.plate)
    factor = staticmethod(pyro.factor)
    deterministic = staticmethod(pyro.deterministic)
    module = staticmethod(pyro.module)
    dist = dist
    constraints = dist.constraints
    infer = pyro.infer
    handlers = poutine

    # ---- model-facing helpers -------------------------------------------------------------
    @staticmethod
    def scale(factor):
        return poutine.scale(scale=factor)

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
    def to_numpy(x):
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    # ---- networks and flows -------------------------------------------------------------
    @staticmethod
    def build_mlp(spec, seed):
        return torch_mlp.build(spec, seed)

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

    # ---- parameters, randomness and tracing ---------------------------------------------
    @staticmethod
    def new_params():
        return {"params": {}, "constraints": {}}

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

    def init_params(self, model, args, kwargs, seed):
        """Create a model's parameters by tracing model and guide once; returns the state."""
        state = self.new_params()
        fn = self.with_params(model.guide, state)
        gtr = poutine.trace(poutine.seed(fn, seed)).get_trace(*args, **kwargs)
        mfn = self.with_params(model.model, state)
        poutine.trace(poutine.replay(poutine.seed(mfn, seed), trace=gtr)).get_trace(*args, **kwargs)
        return state

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

    def nuts(self, fn, params, args, kwargs, chains, num_samples, num_warmup, seed):
        """NUTS on the latent sites of ``fn(*args, **kwargs)`` with ``params`` fixed; Pyro runs
        the chains one after another. Returns ``{site: ndarray (chain, draw, ...)}``."""
        from pyro.infer import MCMC, NUTS
        out = []
        with param_scope(params), torch.random.fork_rng(devices=[]):
            for c in range(chains):
                torch.manual_seed(seed + c)
                mcmc = MCMC(NUTS(poutine.block(fn, hide_types=["param"])), num_samples=num_samples,
                            warmup_steps=num_warmup, num_chains=1, disable_progbar=True)
                mcmc.run(*args, **kwargs)
                out.append({k: v.detach().numpy() for k, v in mcmc.get_samples().items()})
        return {k: np.stack([o[k] for o in out]) for k in out[0]}

    def fit_local_gaussian(self, fn, params, x, init_loc, init_scale, steps, lr, num_particles,
                           seed, kwargs=None):
        """Optimise a per-example Gaussian q(z) for ``fn(x)`` with the model's parameters held
        fixed (Pyro's SVI); returns ``(loc, scale)`` as NumPy arrays."""
        from pyro.infer import SVI, Trace_ELBO
        scope = {"params": dict(params["params"]), "constraints": dict(params["constraints"])}
        if "values" in params:
            scope["values"] = params["values"]
        model = poutine.block(fn, hide_types=["param"])

        def guide(x, **_):
            loc = pyro.param("local_loc", lambda: self.asarray(init_loc))
            scale = pyro.param("local_scale", lambda: self.asarray(init_scale),
                               constraint=dist.constraints.positive)
            with pyro.plate("data", x.shape[0]):
                pyro.sample("z", dist.Normal(loc, scale).to_event(1))

        with param_scope(scope) as store, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            svi = SVI(model, guide, pyro.optim.Adam({"lr": lr}),
                      Trace_ELBO(num_particles=num_particles, vectorize_particles=True,
                                 max_plate_nesting=1))
            xt = self.asarray(x)
            for _ in range(steps):
                svi.step(xt, **(kwargs or {}))
            return (store["local_loc"].detach().numpy().copy(),
                    store["local_scale"].detach().numpy().copy())

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
