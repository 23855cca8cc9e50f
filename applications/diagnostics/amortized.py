"""The amortized posterior q(z|x) as ArviZ data (``arviz.InferenceData`` or the new ArviZ's
``xarray.DataTree``), and what its weights say.

Every latent site of the model's contract is a posterior variable of its own (a VAE's ``z``,
M2's ``y`` and ``z``, a user's ``top`` and ``mid``), laid out by
:class:`~probvae.applications.diagnostics.common.Layout`, beside its draws from the prior and
q's parameters per example. Importance weights log p(x, z) - log q(z|x) give
PSIS k-hat per observation (Yao et al. 2018) and the IWAE bound; posterior means over x give
active units per latent site (Burda et al. 2016).
"""
from __future__ import annotations

import warnings

import numpy as np

from probvae import batch as batching
from probvae.data import Split
from probvae.inference import log_weights
from probvae.inference.inputs import model_batch
from probvae.inference.scoring import (CHUNK, active_units, check_samples, example_batch,
                                       log_mean_exp, missing_of)
from probvae.priors import unwrap

from .common import (KHAT_THRESHOLD, Layout, _contracted, _example_dim, _guide_moments, _inputs,
                     _moment, _unit_coords, importance_ess, pareto_khat)
from .containers import check_format, group, to_container
from .predictive import replicate

__all__ = ["latent_posterior", "khat", "iwae_log_likelihood", "collapse", "report",
           "format_report", "KHAT_THRESHOLD"]


def latent_posterior(res, x, num_samples=1000, seed=0, y=None, posterior_predictive=False,
                     format="inferencedata", image_shape=None):
    """Draws from the amortized posterior q(z|x) of every latent site, with draws from the
    prior, q's own parameters and the importance diagnostics, as ArviZ data.

    The draws from q are independent (each a fresh draw from the encoder's distribution for
    its example), so they form **one chain** of ``num_samples`` draws. Chain-based
    diagnostics have nothing to find in them: ``r_hat`` needs several chains (ArviZ reports
    NaN for one) and would be 1 by construction, and ``ess_bulk`` / ``ess_tail`` are about
    ``num_samples`` by construction. Neither says whether q is any good. What does: the Pareto
    k-hat of the importance weights p(x, z) / q(z|x) of each example (``sample_stats.khat``;
    above 0.7 q is too far from p(z|x) for that example, Yao et al. 2018) and their effective
    sample size (``sample_stats.importance_ess``: near ``num_samples`` when q matches p(z|x),
    near 1 when a single draw carries the weight). To check q against the exact posterior, run
    :func:`~probvae.applications.diagnostics.reference_posterior` (NUTS: there ``r_hat`` and
    ESS mean what they usually mean) and
    :func:`~probvae.applications.diagnostics.compare_posteriors`.

    Parameters
    ----------
    res : FitResult
    x : Split, array (N, D) or batch
        Observations; a Split's labels become the ``label`` coordinate of ``obs``, and its
        ``image_shape`` the pixel coordinates of the data.
    num_samples : int
        Draws from q per observation (and as many from the prior). Refused before any is
        drawn (:class:`~probvae.memory.TooLargeError`) when they would need more than half
        of the memory available.
    seed : int
    y : array (N,), optional
        Labels for the ``label`` coordinate.
    posterior_predictive : bool
        Also draw the data from p(x|z) at every draw (group ``posterior_predictive``, see
        :func:`~probvae.applications.diagnostics.posterior_predictive`).
    format : {"inferencedata", "datatree"}
        The container: ``arviz.InferenceData`` (ArviZ 0.x, default), or an
        ``xarray.DataTree`` as ``arviz_base`` builds it, for the new ArviZ (``arviz_base``,
        ``arviz_stats``, ``arviz_plots``; needs ``pip install arviz-base``). The same groups,
        variables, dims and coordinates either way.
    image_shape : tuple, optional
        ``(H, W)`` or ``(C, H, W)`` of the data (default: a Split's ``image_shape``, else the
        model's): the observed site's features get coordinates ``row`` and ``column`` (and
        ``channel`` for C > 1) along its ``feature`` dim.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        With these groups; ``obs`` is the dim over examples (the data plate's name for a
        model with a site called ``obs``), and every latent site is a variable of its own
        name, whatever the model calls it:

        ``posterior``
            Each latent site that q samples, dims ``(chain, draw, obs, *event dims)`` with
            one chain; a discrete latent is an integer variable. Event dims are named
            ``latent`` when a single latent site has them, in one dim (a VAE's ``z``: (chain,
            draw, obs, latent); M2's ``y``: (chain, draw, obs)), else after their site
            (``top_dim``, ``mid_dim``).
        ``prior``
            The same variables drawn from the model's prior p(z) (every latent in turn given
            the ones before, the data's conditions included), by running the model without
            the guide: ``az.plot_dist_comparison(idata, var_names=["z"])`` draws prior
            against posterior.
        ``guide``
            q's parameters per example (dims ``(obs, *event dims)``): ``<site>_loc`` and
            ``<site>_scale`` where q's family has them (a Normal guide's mean and sd; a
            Laplace's location and scale), else ``<site>_mean`` and ``<site>_sd`` (q's
            marginal moments: a full-rank Normal) where they have a closed form, and
            ``<site>_probs`` over ``<site>_value`` for a discrete latent. The group's attrs
            name each site's family (``family_<site>``) and what was given for it.
        ``sample_stats``
            ``log_weight`` (chain, draw, obs) = log p(x, z) - log q(z|x), ``log_lik`` =
            log p(x|z); per example (obs): ``khat`` (PSIS k-hat of the weights) and
            ``importance_ess``.
        ``observed_data``
            Each observed site, e.g. ``x`` (obs, feature), with ``row``/``column`` coordinates
            for images.
        ``posterior_predictive``
            With ``posterior_predictive=True``.

        There is no ``log_likelihood`` group on purpose: z is per example, so ``az.loo`` on
        these draws would estimate nothing meaningful; use
        :func:`~probvae.applications.diagnostics.compare`.

    References
    ----------
    Yao, Vehtari, Simpson & Gelman (2018), "Yes, but Did It Work?: Evaluating Variational
    Inference", ICML. Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto Smoothed
    Importance Sampling", JMLR.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> idata = latent_posterior(res, data.test[:5], num_samples=40)
    >>> idata.posterior["z"].dims, idata.posterior["z"].shape
    (('chain', 'draw', 'obs', 'latent'), (1, 40, 5, 2))
    >>> sorted(idata.guide.data_vars), idata.sample_stats["khat"].dims
    (['z_loc', 'z_scale'], ('obs',))
    >>> int(idata.observed_data["row"].sel(feature=10)), int(idata.observed_data["column"].sel(feature=10))
    (1, 2)
    """
    format = check_format(format)
    if int(num_samples) < 1:
        raise ValueError(f"need num_samples >= 1, got {num_samples}")
    draws = int(num_samples)
    shape = _image_shape(x, res, image_shape)
    data, xs, labels = _inputs(x, y)
    res = _contracted(res, data)
    layout = Layout.of(res.model.contract)
    names = tuple(s.name for s in layout.latents)
    n = xs.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"y has {len(labels)} labels for {n} observations")
    # beside log_weights' own: the (chain, draw, obs) copies of the kept draws and of the
    # prior's, log_w and log_lik, and with posterior_predictive the replicated data (float32,
    # and their chunks)
    kept = _site_bytes(layout.latents)
    check_samples(res.model, n, draws, "pv.diagnostics.latent_posterior", keep=names,
                  per_draw=2 * kept + 16
                  + (2 * _site_bytes(layout.observed) + kept if posterior_predictive else 0))
    image = _image_coords(layout, shape, strict=image_shape is not None)
    lw = log_weights(res, data, num_samples=draws, seed=seed, keep=names)

    def cd(a):                       # (obs, samples, ...) -> (chain=1, draw, obs, ...)
        return np.moveaxis(np.asarray(a), 1, 0)[None]

    sampled = [s for s in layout.latents if f"value_{s.name}" in lw]
    if not sampled:
        raise ValueError(f"the guide draws none of the model's latent sites {list(names)} for "
                         "these data; latent_posterior shows the latents q samples")
    sample = ("chain", "draw")
    posterior = {s.name: cd(lw[f"value_{s.name}"]) for s in sampled}
    posterior.update({s.name: posterior[s.name].astype(np.int64) for s in sampled if s.discrete})
    ex = layout.example
    groups = {
        "posterior": {k: ((*sample, *layout.dims[k]), v) for k, v in posterior.items()},
        "prior": {k: ((*sample, *layout.dims[k]), v)
                  for k, v in _prior_draws(res, data, sampled, draws, seed).items()},
        "sample_stats": {"log_weight": ((*sample, ex), cd(lw["log_w"])),
                         "log_lik": ((*sample, ex), cd(lw["log_lik"])),
                         "khat": ((ex,), pareto_khat(lw["log_w"])),
                         "importance_ess": ((ex,), importance_ess(lw["log_w"]))},
        "observed_data": {k: (layout.dims[k], v)
                          for k, v in _observed_data(res, data, xs, layout, seed).items()}}
    parameters, coords, described = _guide_parameters(res, _batch(res, data), sampled, layout,
                                                      seed)
    groups["guide"] = parameters
    if posterior_predictive:
        groups["posterior_predictive"] = {
            k: ((*sample, *layout.dims[k]), v)
            for k, v in replicate(res, layout, data, posterior, seed).items()}
    extra = dict(image)
    if labels is not None:
        extra["label"] = (ex, np.asarray(labels))
    return to_container(
        groups, {**layout.coords(n), **coords}, format, extra_coords=extra,
        attrs={"posterior": {"backend": res.backend, "model": type(res.model).__name__,
                             "objective": res.objective,
                             "draws": "independent draws from q(z|x), in one chain"},
               "guide": described})


def _image_shape(x, res, given):
    """The data's image shape (C, H, W): given, else a Split's, else the built-in model's
    (None for a user's pair, which has no config)."""
    if given is None and isinstance(x, Split):
        given = x.image_shape
    if given is None:
        try:
            given = res.model.config().get("image_shape")
        except ValueError:                    # a user's (model, guide) pair
            given = None
    if given is None:
        return None
    shape = tuple(int(d) for d in given)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape takes (height, width) or (channels, height, width), "
                         f"got {given!r}")
    return shape


def _image_coords(layout, shape, strict=True) -> dict:
    """``{coordinate: (feature dim, values)}``: the ``row`` and ``column`` (and ``channel``
    when there are several) of each feature of the observed sites whose size is that of an
    image of ``shape`` (C, H, W), features flattened channel by channel, row by row. Named
    after the site's dim (``obs_dim_row``) when several sites are images or a dim already
    has the plain name. No site of that size: an error when ``strict`` (a shape given), else
    none."""
    if shape is None:
        return {}
    c, h, w = shape
    images = [s for s in layout.observed if len(s.event_shape) == 1 and s.size == c * h * w]
    if not images and not strict:
        return {}
    if not images:
        raise ValueError(f"image_shape {shape} has {c * h * w} values but no observed site has "
                         f"that many features ({ {s.name: s.event_shape for s in layout.observed} });"
                         " give the data's own image_shape, or None")
    taken = {d for dims in layout.dims.values() for d in dims} | set(layout.dims)
    plain = len(images) == 1 and not taken & {"row", "column", "channel"}
    idx = np.arange(c * h * w)
    out = {}
    for s in images:
        dim = layout.dims[s.name][1]
        name = (lambda k: k) if plain else (lambda k, dim=dim: f"{dim}_{k}")
        out[name("row")] = (dim, (idx // w) % h)
        out[name("column")] = (dim, idx % w)
        if c > 1:
            out[name("channel")] = (dim, idx // (h * w))
    return out


def _batch(res, data) -> dict:
    """What model and guide take for ``data`` (the model's batch keys), without a latent given
    as data (a label ``y`` in the batch), so that it is drawn as q and p draw it."""
    contract = res.model.contract
    batch = batching.with_keys(model_batch(res.model, data, "data", missing_of(res)),
                               contract.batch_keys)
    return {k: v for k, v in batch.items() if k not in contract.latent_names}


def _prior_draws(res, data, sites, num_samples, seed) -> dict:
    """``{site: (1, num_samples, N, *event)}``: each site of ``sites`` drawn from the model's
    prior for every example of ``data``, by running the model without the guide (the data
    observed, any latent given as data, such as a label, left out so that it is drawn too);
    a site the model does not sample is left out."""
    batch = _batch(res, data)
    n = batching.size(batch)
    total = int(num_samples) * n
    bk = res.bk
    out = {s.name: [] for s in sites}
    with bk.lock:
        for j, start in enumerate(range(0, total, CHUNK)):
            rows = np.arange(start, min(start + CHUNK, total))     # row r: draw r // n of r % n
            chunk_seed = int(np.random.SeedSequence([int(seed), 1, j]).generate_state(1)[0] >> 1)
            tr = bk.get_trace(bk.seed(res.bound(res.model.model), chunk_seed),
                              **batching.to_backend(bk, batching.take(batch, rows % n)))
            drawn = bk.sample_sites(tr)
            for s in sites:
                if s.name in drawn and not drawn[s.name]["is_observed"]:
                    out[s.name].append(np.asarray(bk.to_numpy(drawn[s.name]["value"])))
    return {s.name: np.concatenate(out[s.name]).reshape((1, int(num_samples), n)
                                                        + s.event_shape)
            .astype(np.int64 if s.discrete else np.float32)
            for s in sites if len(out[s.name]) == -(-total // CHUNK)}


def _family(bk, fn):
    """The distribution under the plate's, mask's and event's wrappers."""
    fn = unwrap(bk, fn)
    while isinstance(fn, bk.dist.Independent):
        fn = unwrap(bk, fn.base_dist)
    return fn


def _guide_parameters(res, batch, sites, layout, seed):
    """``({variable: (dims, (N, ...))}, {dim: coords}, attrs)``: q's parameters for every
    example of ``batch`` and each site of ``sites``, read off the guide's distributions (see
    :func:`latent_posterior`'s ``guide`` group), and attrs naming each site's family and what
    was given for it. The continuous latents' parameters are those given the discrete latents
    at their most probable values (M2's q(z|x, y) at the y that q(y|x) prefers)."""
    bk = res.bk
    discrete = [s for s in sites if s.discrete]
    parts, kinds = {}, {}

    def keep(s, key, v, shape=None):
        v = np.asarray(v if isinstance(v, np.ndarray) else bk.to_numpy(v), np.float32)
        parts.setdefault(f"{s.name}_{key}", []).append(
            v if shape is None else np.broadcast_to(v, shape))

    with bk.lock:
        for _, part, _ in batching.chunks(batch, CHUNK):
            part = batching.to_backend(bk, part)
            guide = res.bound(res.model.guide)
            tr = bk.get_trace(bk.seed(guide, seed), **part)
            fixed = {}
            for s in discrete:
                fn = _family(bk, tr[s.name]["fn"])
                kinds[s.name] = type(fn).__name__
                probs = np.asarray(bk.to_numpy(_probs(bk, fn)), np.float32)
                keep(s, "probs", probs)
                fixed[s.name] = bk.asarray_int(probs.argmax(-1))
            if fixed and len(discrete) < len(sites):
                tr = bk.get_trace(bk.seed(bk.condition(guide, fixed), seed), **part)
            for s in sites:
                if s.discrete:
                    continue
                site = tr[s.name]
                fn = _family(bk, site["fn"])
                kinds[s.name] = type(fn).__name__
                shape = np.shape(bk.to_numpy(site["value"]))
                loc, scale = getattr(fn, "loc", None), getattr(fn, "scale", None)
                if loc is not None and scale is not None:
                    keep(s, "loc", loc, shape)
                    keep(s, "scale", scale, shape)
                    continue
                mean, var = _moment(site, "mean"), _moment(site, "variance")
                if mean is not None and var is not None:
                    keep(s, "mean", mean, shape)
                    keep(s, "sd", np.sqrt(np.asarray(bk.to_numpy(var), np.float64)), shape)
    variables, coords, attrs = {}, {}, {}
    given_labels = (f" (given {', '.join(s.name for s in discrete)} at the most probable "
                    "value)") if discrete else ""
    for s in sites:
        attrs[f"family_{s.name}"] = kinds[s.name]
        keys = [k for k in ("loc", "scale", "mean", "sd", "probs") if f"{s.name}_{k}" in parts]
        attrs[f"given_{s.name}"] = (
            ", ".join(f"{s.name}_{k}" for k in keys) + ("" if s.discrete else given_labels)
            if keys else
            f"nothing: q's family {kinds[s.name]} has no loc/scale and no closed-form moments")
        for k in keys:
            values = np.concatenate(parts[f"{s.name}_{k}"])
            dims = layout.dims[s.name]
            if k == "probs":
                dims = (*dims, f"{s.name}_value")
                coords[f"{s.name}_value"] = np.arange(values.shape[-1])
            variables[f"{s.name}_{k}"] = (dims, values)
    return variables, coords, attrs


def _probs(bk, fn):
    """The probabilities of a discrete guide site (a Categorical's, per value)."""
    while getattr(fn, "probs", None) is None and getattr(fn, "base_dist", None) is not None:
        fn = _family(bk, fn.base_dist)
    return fn.probs


def _site_bytes(sites) -> int:
    """Bytes per example and draw of the sites' values: float32 per value, an int64 label."""
    return sum(8 if s.discrete else 4 * s.size for s in sites)


def _observed_data(res, data, xs, layout, seed):
    """``observed_data``: the data as given (NaN where missing) for a model with one observed
    site; each observed site's values from one trace of the model for a model with several."""
    if len(layout.observed) == 1:
        return {layout.observed[0].name: xs}
    batch = example_batch(res, data)
    names = [s.name for s in layout.observed]
    bk = res.bk
    parts = []
    with bk.lock:
        for _, part, _ in batching.chunks(batch, CHUNK):
            part = batching.to_backend(bk, part)
            gtr = bk.get_trace(bk.seed(res.bound(res.model.guide), seed), **part)
            mtr = bk.get_trace(bk.replay(bk.seed(res.bound(res.model.model), seed), gtr), **part)
            parts.append({k: np.asarray(bk.to_numpy(mtr[k]["value"])) for k in names})
    return {k: np.concatenate([p[k] for p in parts]) for k in names}


def _log_weights_matrix(idata):
    lw = group(idata, "sample_stats")["log_weight"].stack(sample=("chain", "draw"))
    return np.asarray(lw.transpose(_example_dim(idata), "sample").values, dtype=np.float64)


def _per_example(idata, values, name):
    """``values`` (obs,) as a DataArray over the examples' dim of ``idata``, with its
    ``label`` coordinate when it has one."""
    import xarray as xr

    ex = _example_dim(idata)
    stats = group(idata, "sample_stats")
    out = xr.DataArray(np.asarray(values), coords={ex: stats[ex].values}, dims=[ex], name=name)
    if "label" in stats.coords:
        out = out.assign_coords(label=(ex, stats["label"].values))
    return out


def khat(idata):
    """Pareto k-hat per observation from the importance weights (PSIS, Yao et al. 2018).

    Parameters
    ----------
    idata : arviz.InferenceData or xarray.DataTree
        From :func:`latent_posterior` (it holds the same values as ``sample_stats.khat``).

    Returns
    -------
    xarray.DataArray (obs,)
        Over the posterior's dim of examples; ``az.plot_khat(values)`` draws it; above
        :data:`KHAT_THRESHOLD` (0.7) q(z|x) is too far from p(z|x) for importance sampling to
        be reliable for that observation. Exactly constant weights (q equal to p) get k = 0.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> k = khat(latent_posterior(res, data.test.x[:5], num_samples=200))
    >>> k.dims
    ('obs',)
    """
    return _per_example(idata, pareto_khat(_log_weights_matrix(idata)), "khat")


def iwae_log_likelihood(idata):
    """Importance-weighted log-likelihood bound per observation, log mean_s w_s.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> iwae_log_likelihood(latent_posterior(res, data.test.x[:3], num_samples=40)).shape
    (3,)
    """
    return _per_example(idata, log_mean_exp(_log_weights_matrix(idata), axis=1),
                        "iwae_log_likelihood")


def collapse(res, x, num_samples=100, threshold=0.01, seed=0, warn=True):
    """Posterior collapse per latent site: KL per dim and active units; warns naming
    collapsed dims and their site.

    A dim of a continuous latent site is *active* when the variance over x of its posterior
    mean E_q[z_d|x] exceeds ``threshold`` (Burda et al. 2016); an inactive dim carries no
    information about x. Discrete latents (a label) are left out.

    Returns
    -------
    xarray.Dataset over ``latent``, one entry per dim of every continuous latent site (event
    dims flattened), with coordinates ``site`` (its site) and ``unit`` (its index within the
    site): ``kl`` (nats, per dim; NaN where the prior has no per-dim marginals),
    ``activity`` and ``active`` (bool). ``ds.groupby("site")`` gives per-site figures; attrs
    hold ``active_units`` (all sites), ``active_units_by_site``, ``collapsed_dims`` (entries
    of ``latent``) and ``collapsed_by_site`` (units per site).

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> col = collapse(res, data.test.x[:50], num_samples=10, warn=False)
    >>> sorted(col.data_vars), col["site"].values.tolist()
    (['active', 'activity', 'kl'], ['z', 'z'])
    """
    import xarray as xr

    data = _inputs(x, None)[0]
    res = _contracted(res, data)
    contract = res.model.contract
    sites = [s for s in contract.latents if not s.discrete]
    if not sites:
        raise ValueError(f"collapse looks at continuous latent sites; the model's latents "
                         f"{list(contract.latent_names)} are all discrete")
    lw = log_weights(res, data, num_samples=num_samples, seed=seed)
    means = _guide_moments(res, example_batch(res, data), [s.name for s in sites], seed)[0]
    kl = _kl_by_site(lw, sites)
    activity, active = active_units(np.concatenate(
        [means[s.name].reshape(len(means[s.name]), -1) for s in sites], axis=1), threshold)
    ds = xr.Dataset({"kl": ("latent", np.concatenate([kl[s.name] for s in sites])),
                     "activity": ("latent", activity), "active": ("latent", active)},
                    coords=_unit_coords({s.name: s.size for s in sites}))
    collapsed = [int(d) for d in np.flatnonzero(activity <= threshold)]
    by_site = {s.name: [int(u) for u in ds["unit"].values[collapsed][
        ds["site"].values[collapsed] == s.name]] for s in sites}
    ds.attrs.update(active_units=int(active.sum()), collapsed_dims=collapsed,
                    threshold=threshold,
                    active_units_by_site={s.name: int(active[ds["site"].values == s.name].sum())
                                          for s in sites},
                    collapsed_by_site=by_site)
    if warn and collapsed:
        where = "; ".join(f"latent dims {units} are inactive in {name!r}"
                          for name, units in by_site.items() if units)
        warnings.warn(f"posterior collapse: {where} (variance of E_q[z_d|x] over x <= "
                      f"{threshold}); they carry no information about x",
                      UserWarning, stacklevel=2)
    return ds


def _kl_by_site(lw, sites) -> dict:
    """KL(q || p) per dim of each continuous site (``{site: (size,)}``, mean over examples)
    from :func:`log_weights`' ``kl_dim``: the continuous latents' per-dim KL, flattened and
    concatenated in contract order; NaN for every site when it is absent or of another
    width."""
    kl = lw.get("kl_dim")
    sizes = [s.size for s in sites]
    if kl is None or np.size(kl) != len(kl) * sum(sizes):
        return {s.name: np.full(s.size, np.nan) for s in sites}
    kl = np.asarray(kl, np.float64).reshape(len(kl), -1).mean(axis=0)
    return dict(zip([s.name for s in sites], np.split(kl, np.cumsum(sizes)[:-1])))


def report(res, data, num_samples=1000, seed=0):
    """One table of the amortized-posterior diagnostics for ``data``.

    Returns
    -------
    xarray.Dataset
        Per observation: ``khat`` and ``iwae_log_likelihood``; per dim of each continuous
        latent site (:func:`collapse`'s ``latent`` axis, with its ``site`` and ``unit``
        coordinates): ``kl``, ``activity``, ``active``; scalars: ``mean_iwae_log_likelihood``,
        ``khat_max``, ``khat_above_0.7`` (count) and ``fraction_khat_above_0.7``,
        ``active_units``; attrs: ``collapsed_dims``, ``active_units_by_site`` and
        ``collapsed_by_site``. Print it (:func:`format_report`), or ``.to_dataframe()`` parts
        of it.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,)), data.train,
    ...              epochs=1, progress=False)
    >>> rep = report(res, data.test.x[:20], num_samples=100)
    >>> int(rep["khat_above_0.7"]) <= 20
    True
    """
    import xarray as xr

    idata = latent_posterior(res, data, num_samples=num_samples, seed=seed)
    k = khat(idata)
    ll = iwae_log_likelihood(idata)
    col = collapse(res, data, num_samples=min(num_samples, 100), seed=seed, warn=True)
    above = int((k > KHAT_THRESHOLD).sum())
    ds = xr.Dataset({"khat": k, "iwae_log_likelihood": ll, "kl": col["kl"],
                     "activity": col["activity"], "active": col["active"],
                     "mean_iwae_log_likelihood": float(ll.mean()),
                     "khat_max": float(k.max()), "khat_above_0.7": above,
                     "fraction_khat_above_0.7": above / k.size,
                     "active_units": col.attrs["active_units"]})
    ds.attrs.update(model=type(res.model).__name__, backend=res.backend,
                    num_samples=num_samples, collapsed_dims=col.attrs["collapsed_dims"],
                    active_units_by_site=col.attrs["active_units_by_site"],
                    collapsed_by_site=col.attrs["collapsed_by_site"])
    return ds


def format_report(rep) -> str:
    """A short human-readable summary of :func:`report`'s Dataset.

    Examples
    --------
    >>> import xarray as xr, numpy as np
    >>> rep = xr.Dataset({"khat": ("obs", [0.2, 0.9]), "iwae_log_likelihood": ("obs", [1.0, 2.0]),
    ...     "kl": ("latent", [0.5, 0.0]), "activity": ("latent", [1.0, 0.0]),
    ...     "active": ("latent", [True, False]), "mean_iwae_log_likelihood": 1.5,
    ...     "khat_max": 0.9, "khat_above_0.7": 1, "fraction_khat_above_0.7": 0.5,
    ...     "active_units": 1})
    >>> print(format_report(rep).splitlines()[0])
    observations                 2
    """
    n = rep["khat"].size
    units = ([f"{site}{int(u)}" for site, u in zip(rep["site"].values, rep["unit"].values)]
             if "site" in rep.coords else [str(int(d)) for d in rep["latent"].values])
    lines = [f"{'observations':<28} {n}",
             f"{'mean IWAE log-likelihood':<28} {float(rep['mean_iwae_log_likelihood']):.3f} nats",
             f"{'k-hat > 0.7':<28} {int(rep['khat_above_0.7'])} of {n} "
             f"({100 * float(rep['fraction_khat_above_0.7']):.1f}%), max {float(rep['khat_max']):.2f}",
             f"{'active units':<28} {int(rep['active_units'])} of {rep.sizes['latent']}",
             "per latent dim:   " + "  ".join(u.rjust(6) for u in units),
             "  KL (nats)       " + "  ".join(f"{v:6.2f}" for v in rep["kl"].values),
             "  activity        " + "  ".join(f"{v:6.2f}" for v in rep["activity"].values)]
    if "site" in rep.coords and len(set(rep["site"].values)) > 1:     # per latent site
        site, active = rep["site"].values, rep["active"].values
        lines.insert(4, f"{'  by site':<28} " + ", ".join(
            f"{name} {int(active[site == name].sum())} of {int((site == name).sum())}"
            for name in dict.fromkeys(site)))
    verdict = ("q(z|x) looks trustworthy for importance sampling"
               if float(rep["fraction_khat_above_0.7"]) < 0.1 else
               "q(z|x) is too narrow or misplaced for many observations (k-hat > 0.7): treat its "
               "uncertainty with care, or compare with reference_posterior")
    return "\n".join(lines + [verdict])
