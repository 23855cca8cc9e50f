"""DReG on NumPyro: the doubly reparameterized gradient of the IWAE bound for any model/guide pair.

:class:`DReGELBO` is NumPyro's :class:`~numpyro.infer.RenyiELBO` with ``alpha=0`` (its value
is the IWAE bound, so histories and validation compare with ``iwae``) and another gradient: the
model's parameters get IWAE's, ``sum_k w_k grad log w_k`` at fixed draws, while everything the
guide's draws depend on gets DReG's, ``sum_k w_k**2 (d log w_k / d z_k) (d z_k / d phi)``, with
``w`` the normalised importance weights (Tucker et al. 2019). The guide's score term, whose
variance grows with the number of particles, is gone: the encoder's signal-to-noise ratio no
longer falls as ``num_particles`` grows (Rainforth et al. 2018).

How, for any pair (no site is named here):

1. the guide is traced once per particle: its latent draws ``z_k`` (which must be
   reparameterized: a discrete or score-function site raises, naming it);
2. ``log w_k = log p(x, z_k) - log q(z_k | x)`` is computed again as a function of the draws
   alone (guide and model conditioned on them), and its vector-Jacobian product with the
   weights ``w**2`` gives ``G_k = w_k**2 d log w_k / d z_k``, held fixed;
3. the surrogate ``sum_k w_k [log p(x, z_k) - log q_obs]`` (draws held fixed: the model's own
   parameters, and a guide's observed sites) plus ``sum_k G_k . z_k`` (the draws, through the
   guide) has exactly the gradient above. Parameters the model shares with the guide (the
   VampPrior's encoder) get both parts, each where it belongs.

The guide is run twice per particle (drawing, then scoring its draws), the model once.

References
----------
Tucker, G., Lawson, D., Gu, S. & Maddison, C. J. (2019). Doubly reparameterized gradient
estimators for Monte Carlo objectives. ICLR.
Rainforth, T. et al. (2018). Tighter variational bounds are not necessarily better. ICML.

Examples
--------
>>> import jax, numpyro, numpyro.distributions as dist
>>> def model(x):
...     z = numpyro.sample("z", dist.Normal(0.0, 1.0))
...     numpyro.sample("x", dist.Normal(z, 1.0), obs=x)
>>> def guide(x):
...     loc = numpyro.param("loc", 0.0)
...     numpyro.sample("z", dist.Normal(loc, 1.0))
>>> elbo = DReGELBO(num_particles=8)
>>> loss = elbo.loss(jax.random.PRNGKey(0), {"loc": 0.5}, model, guide, 1.0)
>>> bool(loss > 0), elbo.alpha
(True, 0.0)
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import random
from jax.lax import stop_gradient
from jax.scipy.special import logsumexp
from numpyro.handlers import condition, seed, substitute, trace
from numpyro.infer import RenyiELBO

__all__ = ["DReGELBO", "reparameterized_latents"]


def reparameterized_latents(guide_trace) -> dict:
    """The guide's latent draws ``{name: value}`` (its sample sites that are not observed),
    each checked to be reparameterized; a discrete or score-function site raises, naming it.

    Examples
    --------
    >>> import numpyro, numpyro.distributions as dist
    >>> def guide():
    ...     numpyro.sample("c", dist.Categorical(logits=jnp.zeros(3)))
    >>> reparameterized_latents(trace(seed(guide, 0)).get_trace())
    Traceback (most recent call last):
    ...
    ValueError: objective 'dreg' needs reparameterized latents, but the guide draws 'c' from Categorical...
    """
    out = {}
    for name, site in guide_trace.items():
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


def _site_log_prob(site):
    value, scale = site["value"], site["scale"]
    log_prob = site["fn"].log_prob(value)
    return log_prob if scale is None else scale * log_prob


def _log_weights(model_trace, guide_trace, latent_names):
    """``(log w, direct, plate_scale)`` of one particle, reduced to the plates every site sits
    in (one weight per example), as NumPyro's ``RenyiELBO`` does: ``direct`` is the part whose
    parameters' gradient is IWAE's (the model, and the guide's observed sites)."""
    site_plates = {name: set(site["cond_indep_stack"])
                   for name, site in model_trace.items() if site["type"] == "sample"}
    indep = set.intersection(*site_plates.values()) if site_plates else set()
    for frame in set.union(*site_plates.values()) if site_plates else set():
        if frame not in indep and model_trace[frame.name]["args"][0] > frame.size:
            raise ValueError("objective 'dreg' only supports subsampling in plates that are "
                             "common to all sample sites, e.g. a data plate that encloses the "
                             "entire model")
    scale = 1.0
    for frame in indep:
        size = model_trace[frame.name]["args"][0]
        if size > frame.size:
            scale = scale * size / frame.size
    dims = {frame.dim for frame in indep}

    def reduced(site):
        log_prob = _site_log_prob(site)
        axes = tuple(d for d in range(log_prob.ndim) if d - log_prob.ndim not in dims)
        return jnp.sum(log_prob, axis=axes)

    model = sum((reduced(s) for s in model_trace.values() if s["type"] == "sample"),
                jnp.array(0.0))
    latent = sum((reduced(s) for n, s in guide_trace.items()
                  if s["type"] == "sample" and n in latent_names), jnp.array(0.0))
    observed = sum((reduced(s) for n, s in guide_trace.items()
                    if s["type"] == "sample" and n not in latent_names), jnp.array(0.0))
    return (model - latent - observed) / scale, (model - observed) / scale, scale


class DReGELBO(RenyiELBO):
    """The IWAE bound with doubly reparameterized gradients (Tucker et al. 2019).

    Its value (the loss, as reported) is the IWAE bound of
    :class:`~numpyro.infer.RenyiELBO` with ``alpha=0`` from the same draws; its gradient is
    IWAE's for the model's parameters and DReG's for the guide's (see the module docstring).
    Every latent the guide draws must be reparameterized.

    Parameters
    ----------
    num_particles : int
        Importance samples per example (``k``).
    vectorize_particles : bool
        Draw the particles at once (``jax.vmap``) or one after another (``jax.lax.map``).

    References
    ----------
    Tucker, G., Lawson, D., Gu, S. & Maddison, C. J. (2019). Doubly reparameterized gradient
    estimators for Monte Carlo objectives. ICLR.

    Examples
    --------
    >>> DReGELBO(num_particles=4).num_particles
    4
    """

    def __init__(self, num_particles: int = 8, vectorize_particles: bool = True):
        super().__init__(alpha=0.0, num_particles=num_particles)
        self.vectorize_particles = vectorize_particles
        self.vectorize_particles_fn = self._assign_vectorize_particles_fn(vectorize_particles)

    def loss(self, rng_key, param_map, model, guide, *args, **kwargs):
        # the same keys as RenyiELBO: one plate key, then (model, guide) keys per particle
        plate_key, rng_key = random.split(rng_key)
        hide = ["sample", "prng_key", "control_flow"]
        model, guide = seed(model, plate_key, hide_types=hide), seed(guide, plate_key,
                                                                     hide_types=hide)
        keys = random.split(rng_key, self.num_particles)

        def draw(key):
            _, guide_key = random.split(key)
            tr = trace(substitute(seed(guide, guide_key), data=param_map)).get_trace(
                *args, **kwargs)
            return reparameterized_latents(tr)

        draws = self.vectorize_particles_fn(draw, keys)
        names = frozenset(draws)

        def scored(values):
            """log w (and its direct part) of every particle as a function of its draws."""
            def one(inputs):
                value, key = inputs
                model_key, guide_key = random.split(key)
                guide_trace = trace(substitute(condition(seed(guide, guide_key), data=value),
                                               data=param_map)).get_trace(*args, **kwargs)
                model_trace = trace(substitute(condition(seed(model, model_key), data=value),
                                               data=param_map)).get_trace(*args, **kwargs)
                log_w, direct, scale = _log_weights(model_trace, guide_trace, names)
                return log_w, (direct, jnp.asarray(scale, jnp.result_type(float)))
            return self.vectorize_particles_fn(one, (values, keys))

        log_w, pullback, (direct, scale) = jax.vjp(scored, stop_gradient(draws), has_aux=True)
        weights = stop_gradient(jax.nn.softmax(log_w, axis=0))
        (path,) = pullback(weights ** 2)        # w_k^2 d log w_k / d z_k, held fixed
        surrogate = jnp.sum(weights * direct) + sum(
            jnp.sum(stop_gradient(path[name]) * draws[name]) for name in draws)
        bound = jnp.sum(logsumexp(log_w, axis=0) - math.log(self.num_particles))
        return -(stop_gradient(bound - surrogate) + surrogate) * scale[0]
