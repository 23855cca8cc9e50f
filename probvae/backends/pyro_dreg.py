"""DReG on Pyro: the doubly reparameterized gradient of the IWAE bound for any model/guide pair.

:class:`DReGELBO` is Pyro's :class:`~pyro.infer.RenyiELBO` with ``alpha=0`` (its value, and
its ``loss``, are the IWAE bound, so histories and validation compare with ``iwae``) and another
gradient: the model's parameters get IWAE's, ``sum_k w_k grad log w_k`` at fixed draws, while
everything the guide's draws depend on gets DReG's,
``sum_k w_k**2 (d log w_k / d z_k) (d z_k / d phi)``, with ``w`` the normalised importance
weights (Tucker et al. 2019). It is the same estimator as
:class:`probvae.backends.numpyro_dreg.DReGELBO`, computed the same way:

1. the guide runs once with its particles vectorised: the draws ``z_k`` (reparameterized; a
   discrete or score-function site raises, naming it);
2. guide and model run again conditioned on the draws, detached into leaves, to score
   ``log w_k``; ``G_k = w_k**2 d log w_k / d z_k`` comes from ``torch.autograd.grad``;
3. ``backward`` of the surrogate ``sum_k w_k [log p(x, z_k) - log q_obs]`` (the draws held
   fixed) plus ``sum_k G_k . z_k`` (through the guide) gives exactly the gradient above.

No parameter is detached or swapped (``pyro.module`` networks and ``pyro.param`` values alike),
and a guide whose later draws depend on earlier ones gets those paths too. Particles are always
vectorised (``vectorize_particles=True``).

References
----------
Tucker, G., Lawson, D., Gu, S. & Maddison, C. J. (2019). Doubly reparameterized gradient
estimators for Monte Carlo objectives. ICLR.

Examples
--------
>>> import pyro, pyro.distributions as dist, torch
>>> def model(x):
...     with pyro.plate("data", len(x)):
...         z = pyro.sample("z", dist.Normal(0.0, 1.0))
...         pyro.sample("x", dist.Normal(z, 1.0), obs=x)
>>> def guide(x):
...     loc = pyro.param("loc", torch.tensor(0.5))
...     with pyro.plate("data", len(x)):
...         pyro.sample("z", dist.Normal(loc, 1.0))
>>> pyro.clear_param_store(); _ = pyro.set_rng_seed(0)
>>> elbo = DReGELBO(num_particles=8, max_plate_nesting=1)
>>> loss = elbo.loss_and_grads(model, guide, torch.ones(3))
>>> loss > 0, pyro.param("loc").unconstrained().grad is not None
(True, True)
"""
from __future__ import annotations

import math

import pyro.infer
import pyro.poutine as poutine
import torch
from pyro.infer.util import get_dependent_plate_dims, is_validation_enabled, torch_sum
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_site_shape, warn_if_nan

__all__ = ["DReGELBO", "reparameterized_latents"]


def reparameterized_latents(guide_trace) -> dict:
    """The guide's latent draws ``{name: value}`` (its sample sites that are not observed),
    each checked to be reparameterized; a discrete or score-function site raises, naming it.

    Examples
    --------
    >>> import pyro, pyro.distributions as dist
    >>> def guide():
    ...     pyro.sample("c", dist.Categorical(logits=torch.zeros(3)))
    >>> reparameterized_latents(poutine.trace(guide).get_trace())
    Traceback (most recent call last):
    ...
    ValueError: objective 'dreg' needs reparameterized latents, but the guide draws 'c' from Categorical, which has no reparameterized sampler (it is discrete, or sampled by its score): train it with 'iwae', or 'enum' to sum discrete latents out
    """
    out = {}
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        if not site["fn"].has_rsample or site["infer"].get("enumerate"):
            raise ValueError(
                f"objective 'dreg' needs reparameterized latents, but the guide draws {name!r} "
                f"from {type(site['fn']).__name__}, which has no reparameterized sampler (it is "
                "discrete, or sampled by its score): train it with 'iwae', or 'enum' to sum "
                "discrete latents out")
        out[name] = site["value"]
    return out


class DReGELBO(pyro.infer.RenyiELBO):
    """The IWAE bound with doubly reparameterized gradients (Tucker et al. 2019).

    ``loss`` is :class:`~pyro.infer.RenyiELBO`'s with ``alpha=0`` (the IWAE bound);
    ``loss_and_grads`` returns the same bound from its draws and leaves IWAE's gradient on the
    model's parameters and DReG's on the guide's (see the module docstring). Every latent the
    guide draws must be reparameterized.

    Parameters
    ----------
    num_particles : int
        Importance samples per example (``k``), drawn at once in a plate of their own.
    max_plate_nesting : int
        How many plates nest around the model's sites (found by an extra trace if left out).
    vectorize_particles : bool
        Must be True (the particles are drawn at once).
    strict_enumeration_warning : bool
        As for Pyro's ELBOs.

    References
    ----------
    Tucker, G., Lawson, D., Gu, S. & Maddison, C. J. (2019). Doubly reparameterized gradient
    estimators for Monte Carlo objectives. ICLR.

    Examples
    --------
    >>> elbo = DReGELBO(num_particles=4, max_plate_nesting=1)
    >>> elbo.num_particles, elbo.alpha, elbo.vectorize_particles
    (4, 0.0, True)
    """

    def __init__(self, num_particles=8, max_plate_nesting=float("inf"),
                 vectorize_particles=True, strict_enumeration_warning=True):
        if not vectorize_particles:
            raise ValueError("DReGELBO draws its particles at once: vectorize_particles=True")
        super().__init__(alpha=0.0, num_particles=num_particles,
                         max_plate_nesting=max_plate_nesting, vectorize_particles=True,
                         strict_enumeration_warning=strict_enumeration_warning)

    def _scored(self, model, guide, leaves, args, kwargs):
        """``(log w, direct)`` per particle and example, model and guide conditioned on the
        draws ``leaves``: ``direct`` is the part whose parameters' gradient is IWAE's (the
        model, and the guide's observed sites)."""
        guide_trace = poutine.trace(poutine.condition(guide, data=leaves)).get_trace(
            *args, **kwargs)
        model_trace = poutine.trace(poutine.condition(model, data=leaves)).get_trace(
            *args, **kwargs)
        guide_trace, model_trace = prune_subsample_sites(guide_trace), prune_subsample_sites(
            model_trace)
        model_trace.compute_log_prob()
        guide_trace.compute_log_prob()
        if is_validation_enabled():
            for tr in (model_trace, guide_trace):
                for site in tr.nodes.values():
                    if site["type"] == "sample":
                        check_site_shape(site, self.max_plate_nesting)
        sum_dims = get_dependent_plate_dims(model_trace.nodes.values())

        def total(trace, keep):
            return sum((torch_sum(site["log_prob"], sum_dims) for name, site in
                        trace.nodes.items() if site["type"] == "sample" and keep(name)), 0.0)

        model_lp = total(model_trace, lambda name: True)
        latent = total(guide_trace, lambda name: name in leaves)
        observed = total(guide_trace, lambda name: name not in leaves)
        log_w, direct = model_lp - latent - observed, model_lp - observed
        if self.num_particles == 1:                 # no particle plate: one particle
            log_w, direct = torch.as_tensor(log_w)[None], torch.as_tensor(direct)[None]
        return log_w, direct

    def loss_and_grads(self, model, guide, *args, **kwargs):
        if self.max_plate_nesting == float("inf"):
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        model = self._vectorized_num_particles(model)
        guide = self._vectorized_num_particles(guide)
        guide_trace = prune_subsample_sites(poutine.trace(guide).get_trace(*args, **kwargs))
        draws = reparameterized_latents(guide_trace)
        leaves = {name: value.detach().requires_grad_() for name, value in draws.items()}
        log_w, direct = self._scored(model, guide, leaves, args, kwargs)
        weights = torch.softmax(log_w.detach(), dim=0)
        bound = (torch.logsumexp(log_w.detach(), dim=0) - math.log(self.num_particles)).sum()
        names = [n for n in leaves if draws[n].requires_grad]
        surrogate = (weights * direct).sum() if getattr(direct, "requires_grad", False) else None
        if names and log_w.requires_grad:
            paths = torch.autograd.grad(log_w, [leaves[n] for n in names],
                                        grad_outputs=weights ** 2, retain_graph=True,
                                        allow_unused=True)
            for name, path in zip(names, paths):     # w_k^2 d log w_k / d z_k, held fixed
                if path is not None:
                    term = (path.detach() * draws[name]).sum()
                    surrogate = term if surrogate is None else surrogate + term
        if surrogate is not None:
            (-surrogate).backward()
        loss = -bound.item()
        warn_if_nan(loss, "loss")
        return loss
