"""Scoring helpers shared by evaluation, prediction, generation, imputation and the diagnostics.

The central one is :func:`log_weights`: per-example importance weights
log p(x, z) - log q(z|x). The guide runs under a ``"particles"`` plate, the model is replayed
against it, and every site's log density is read off the traces; on a backend with
``fixed_shapes`` (NumPyro) the chunk function is compiled once and chunks are padded, on Pyro it
runs eagerly without autograd. Batches come from :mod:`probvae.inference.inputs`.
"""
from __future__ import annotations

import functools
import json
from collections import OrderedDict

import numpy as np
from scipy.special import logsumexp
from tqdm.auto import tqdm

from probvae import batch as batching
from probvae.memory import check_allocation, round_down
from probvae.priors import factorised_log_prob, unwrap

from . import sharding
from .compiling import keep_programs
from .inputs import check_labels, check_seed, model_batch

__all__ = ["exclusive", "log_weights", "weight_chunks", "log_mean_exp", "active_units", "class_probabilities",
           "posterior_means", "site_means", "labels_for", "example_batch", "missing_of", "CHUNK",
           "row_bytes", "kept_bytes", "weights_bytes", "check_samples", "is_classifier",
           "label_site", "split_sites"]

#: rows (particles x examples) pushed through the decoder in one call
_MAX_ROWS = 1 << 16
#: examples per call for single-pass functions (encode, reconstruct, classify, decode)
CHUNK = 4096
#: ``missing=`` default: whatever the result was trained with
_TRAINED = object()


def exclusive(fn):
    """Run ``fn(obj, ...)`` holding the lock of ``obj.bk`` (a FitResult or a model): Pyro and
    NumPyro keep their handler stacks (and Pyro its param store) in globals, so calls from
    several threads take turns, each with its own parameters.

    Examples
    --------
    >>> @exclusive
    ... def backend_name(res):
    ...     return res.bk.name
    >>> import probvae as pv
    >>> backend_name(pv.models.VAE(input_dim=2))
    'numpyro'
    """
    @functools.wraps(fn)
    def run(obj, *args, **kwargs):
        with obj.bk.lock:
            return fn(obj, *args, **kwargs)
    return run


def log_mean_exp(a, axis=-1):
    """log(mean(exp(a))) along ``axis``, computed stably: the IWAE bound from log weights.

    Examples
    --------
    >>> round(float(log_mean_exp(np.log([1.0, 3.0]))), 6)
    0.693147
    """
    a = np.asarray(a, dtype=np.float64)
    return logsumexp(a, axis=axis) - np.log(a.shape[axis])


def active_units(z, threshold=0.01):
    """Which latent dims are active: the variance over examples of the posterior mean
    E_q[z_d|x] exceeds ``threshold`` (Burda et al. 2016). Returns ``(variance, active)``.

    Examples
    --------
    >>> var, active = active_units(np.array([[0.0, 1.0], [0.0, -1.0]]))
    >>> active.tolist()
    [False, True]
    """
    var = np.asarray(z, dtype=np.float64).var(axis=0)
    return var, var > threshold


def missing_of(res, missing=_TRAINED):
    """The ``missing=`` setting to score with: the given one, else the one ``res`` was trained
    with (``None`` for results trained on complete data)."""
    return res.options.get("missing") if missing is _TRAINED else missing


def is_classifier(model) -> bool:
    """Whether ``model`` learns labels and has a public ``classify(x)`` giving q(y|x) (SSVAE,
    ADGM): a declared class attribute, not something the contract can tell.

    Examples
    --------
    >>> import probvae as pv
    >>> is_classifier(pv.models.SSVAE(input_dim=4)), is_classifier(pv.models.VAE(input_dim=4))
    (True, False)
    """
    return bool(model.is_classifier)


def label_site(model):
    """The contract's label site (a :class:`~probvae.models.Site`): the discrete latent that
    model and guide also take as a batch key, observed where labels are given (M2's ``y``);
    ``None`` for a model without one.

    Examples
    --------
    >>> import probvae as pv
    >>> label_site(pv.models.SSVAE(input_dim=4, num_classes=3)).num_values
    3
    >>> label_site(pv.models.VAE(input_dim=4)) is None
    True
    """
    contract = model.contract
    keys = contract.batch_keys or ()
    return next((s for s in contract.latents if s.discrete and s.name in keys), None)


def split_sites(values, sites) -> dict:
    """Columns of ``values`` (..., sum of the sites' sizes), the sites' flattened values
    concatenated in order, back as ``{name: (..., size)}``: how ``kl_dim`` of several
    continuous latents splits by site.

    Examples
    --------
    >>> from probvae.models import Site
    >>> {k: v.tolist() for k, v in split_sites(np.arange(3), (Site("a", (1,)), Site("b", (2,)))).items()}
    {'a': [0], 'b': [1, 2]}
    """
    values = np.asarray(values)
    bounds = np.cumsum([0] + [s.size for s in sites])
    return {s.name: values[..., lo:hi] for s, lo, hi in zip(sites, bounds[:-1], bounds[1:])}


def _shared_draws(bk, fn, eps, name):
    """A draw loc + scale * eps of site ``name`` for a (diagonal) Normal guide: the same
    ``eps`` for every example."""
    fn = unwrap(bk, fn)
    if isinstance(fn, bk.dist.Independent):
        fn = unwrap(bk, fn.base_dist)
    if isinstance(fn, bk.dist.MultivariateNormal):      # a full-rank posterior
        return fn.loc + (fn.scale_tril @ eps[..., None])[..., 0]
    if not isinstance(fn, bk.dist.Normal):
        raise ValueError(f"common_noise=True needs a Normal guide for {name!r}, got "
                         f"{type(fn).__name__}; use common_noise=False")
    return fn.loc + fn.scale * eps


#: compiled scoring functions by model configuration (LRU): a refit of the same model, as the
#: scikit-learn estimators do, scores without tracing or compiling again
_FUNCTIONS: "OrderedDict[tuple, object]" = OrderedDict()


def _cached(model, name, make):
    """``make()`` once per model configuration (and seed) and ``name``; for a model without a
    config (a user's pair) or with a user's networks (code a config does not describe), and on
    a backend whose models hold their own modules (Pyro: the function calls this object's
    torch networks), once per model object."""
    try:
        config = model.config()
    except (AttributeError, ValueError):          # a user's (model, guide) pair
        config = None
    if config is None or model.bk.shared_param_store or model.user_networks:   # (code)
        cache = model.__dict__.setdefault("_functions", {})
        if name not in cache:
            cache[name] = make()
        return cache[name]
    key = (json.dumps(config, sort_keys=True, default=str), model.seed, name)
    if key not in _FUNCTIONS:
        _FUNCTIONS[key] = make()
        keep_programs(_FUNCTIONS, 32)
    _FUNCTIONS.move_to_end(key)
    return _FUNCTIONS[key]


def _make_chunk_fn(res, num_particles, keep=(), kl=True):
    """``(params, seed, batch, eps) -> dict`` of (particles, examples) arrays for one chunk;
    ``eps`` ``{site: (particles, 1, *event_shape)}`` fixes the guide's draws of the contract's
    continuous latents (None: draw them); ``kl``: also ``kl_dim/<site>`` for each continuous
    latent with per-dimension marginals (K times the rest's cost under a K-component mixture
    prior).

    Shared by every fitted model of the same configuration, so repeated calls and refits reuse
    NumPyro's compilation."""
    key = ("chunk", int(num_particles), tuple(keep), bool(kl))
    return _cached(res.model, key, lambda: _build_chunk_fn(res.bk, res.model, *key[1:]))


def _per_dim_log_prob(bk, prior, fn, value, scalar):
    """log density per dimension of one latent's value (..., size): factorised over its last
    dim, the whole log density of a scalar site, else the prior's marginals (a mixture prior;
    ``None`` without a closed form or a prior object)."""
    lp = factorised_log_prob(bk, fn, value)
    if lp is None and isinstance(unwrap(bk, fn), bk.dist.MultivariateNormal):
        mvn = unwrap(bk, fn)            # a full-rank posterior: its Gaussian marginals
        lp = bk.dist.Normal(mvn.loc, (mvn.scale_tril ** 2).sum(-1) ** 0.5).log_prob(value)
    if lp is None and scalar:
        lp = fn.log_prob(value)[..., None]
    if lp is None and prior is not None:
        try:
            lp = prior.marginal_log_prob(bk, fn, value)
        except (AttributeError, TypeError, ValueError):   # not the prior's distribution
            lp = None
    return lp


def _build_chunk_fn(bk, model, num_particles, keep, kl):
    dim = -(model.max_plate_nesting + 1)
    prior = model.prior        # a built-in model's prior object (per-dim KL)
    contract = model.contract
    continuous = [s for s in contract.latents if not s.discrete]

    def vectorized(fn):
        def run(**kwargs):
            with bk.plate("particles", num_particles, dim=dim):
                return fn(**kwargs)
        return run

    def chunk(params, seed, batch, eps=None):
        guide = bk.with_params(vectorized(model.guide), params)
        gtr = bk.get_trace(bk.seed(guide, seed), **batch)
        if eps is not None:                  # each continuous latent in turn, given the ones before
            fixed = {}
            for s in continuous:
                fixed[s.name] = _shared_draws(bk, gtr[s.name]["fn"], eps[s.name], s.name)
                gtr = bk.get_trace(bk.seed(bk.condition(guide, fixed), seed), **batch)
            for name in fixed:
                gtr[name] = {**gtr[name], "is_observed": False}     # a draw of q, for replay
        mdl = bk.with_params(vectorized(model.model), params)
        mtr = bk.get_trace(bk.replay(bk.seed(mdl, seed), gtr), **batch)
        out = {"log_q": 0.0, "log_prior": 0.0, "log_lik": 0.0}
        for tr, key in ((gtr, "log_q"), (mtr, None)):
            for name, site in bk.sample_sites(tr).items():
                if name in model.training_sites:       # e.g. M2's auxiliary classifier term
                    continue
                if model.data_plate not in {f.name for f in site["cond_indep_stack"]}:
                    raise ValueError(f"site {name!r} is outside plate {model.data_plate!r}; "
                                     "per-example scores need every sample site inside it")
                lp = bk.site_log_prob(site)
                k = key or ("log_lik" if site["is_observed"] else "log_prior")
                out[k] = out[k] + lp
        for name in keep:
            if name in gtr:
                out[f"value_{name}"] = gtr[name]["value"]
        for s in continuous if kl else ():
            if s.name in gtr and s.name in mtr:
                scalar = s.event_shape == ()
                q = _per_dim_log_prob(bk, None, gtr[s.name]["fn"], gtr[s.name]["value"], scalar)
                p = _per_dim_log_prob(bk, prior, mtr[s.name]["fn"], mtr[s.name]["value"], scalar)
                if q is not None and p is not None:
                    out[f"kl_dim/{s.name}"] = (q - p).mean(0)             # (examples, size)
        return out

    return bk.compile(chunk)


def _checked(fn, *args, **kwargs):
    """Run a scoring function; a distribution rejecting NaN/inf arguments becomes an error that
    says what it means."""
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        text = str(err)
        if "invalid" not in text and "Expected parameter" not in text:
            raise
        raise ValueError(f"the model's networks give NaN or infinite values for these data "
                         f"({text.splitlines()[0][:120]}); its parameters are not usable: "
                         "retrain it with a lower lr or with clip_norm") from None


#: bytes per (example, draw) in one block of weight_chunks, beside the kept sites: the chunks'
#: float32 log_q, log_prior, log_lik (12), their float64 copies and log_w (32), a float64
#: temporary (8) and a float32 concatenation in flight (4)
_BLOCK_BYTES = 56
#: bytes per (example, draw) that log_weights returns: log_q, log_prior, log_lik, log_w (float64)
_KEPT_BYTES = 32


def _num_rows(x) -> int:
    """Examples in ``x`` (a batch dict, Split, array or DataFrame), before it is converted."""
    if isinstance(x, dict):
        return batching.size(x)
    if getattr(x, "ndim", 2) == 1:
        return 1
    try:
        return len(x)
    except TypeError:
        return 1


def _latent_width(model) -> int:
    """Latent values per example, from the contract: each continuous latent's size and each
    discrete one's values one-hot (at least 1)."""
    sizes = [s.size if not s.discrete else (s.num_values or 1) * s.size
             for s in model.contract.latents]
    return max(1, sum(sizes))


def _observed_width(model) -> int:
    """Values per example of the model's (first) observed site, from the contract."""
    observed = model.contract.observed
    return max(1, observed[0].size if observed else 1)


def kept_bytes(model, keep=None) -> int:
    """Bytes per example and draw of the guide sites kept by ``keep=`` (default: every latent
    of the contract): float32 values of a continuous latent's event size, an int64 value per
    element of a discrete one (a label), nothing for a name that is no latent of the model
    (the site is absent).

    Examples
    --------
    >>> import probvae as pv
    >>> kept_bytes(pv.models.VAE(input_dim=64, latent_dim=2), ("z", "y"))
    8
    >>> kept_bytes(pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2))
    16
    """
    sites = {s.name: s for s in model.contract.latents}
    names = sites if keep is None else keep
    return sum((8 if sites[n].discrete else 4) * sites[n].size for n in names if n in sites)


def row_bytes(model) -> int:
    """Bytes one generated example takes on its way through a model (``sample``,
    ``synthesize``), float32 throughout: its latents twice (value and network input), every
    network layer's output before and after its activation, and four arrays of the observed
    site's size (the likelihood's parameters, the draw, the mean and the NumPy copy); the sizes
    of latents and data from the model's contract (a user's pair's networks, which it does not
    declare, count nothing).

    Examples
    --------
    >>> import probvae as pv
    >>> row_bytes(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))) > 4 * 64
    True
    """
    widths = [getattr(spec, "max_width", 0) for name, spec in vars(model).items()
              if name.endswith("_spec")]
    acts = sum(model.hidden) + max(widths + [0])
    return 4 * (2 * _latent_width(model) + 2 * acts + 4 * _observed_width(model))


def _block_rows(model, n, num_samples) -> int:
    """Examples per block of :func:`weight_chunks` for ``n`` examples."""
    s_chunk = min(int(num_samples), 100)
    width = max(_observed_width(model), _widest(model))
    return max(1, min(n, _MAX_ROWS * 64 // (s_chunk * width)))


def weights_bytes(model, n, num_samples, keep=(), hold=True) -> int:
    """Bytes :func:`log_weights` holds at its peak for ``n`` examples x ``num_samples`` draws
    (``hold=True``: every example's weights, plus the larger of the block being scored and
    their concatenation), or one block of :func:`weight_chunks` (``hold=False``, a caller
    that reduces each block, like ``evaluate``).

    Examples
    --------
    >>> import probvae as pv
    >>> vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))
    >>> weights_bytes(vae, 10, 1000) > 10 * 1000 * 4 * 8
    True
    """
    s = int(num_samples)
    kept = kept_bytes(model, keep)
    block = _block_rows(model, n, s) * s * (_BLOCK_BYTES + 2 * kept)
    held = n * s * (_KEPT_BYTES + kept)
    return held + max(block, held) if hold else block


def check_samples(model, n, num_samples, what="pv.log_weights", keep=(), hold=True,
                  per_draw=0) -> int:
    """``num_samples`` as an integer >= 1 whose draws for ``n`` examples fit in memory (see
    :func:`weights_bytes`; ``per_draw`` adds the caller's own bytes per example and draw, of
    every example with ``hold``, else of one block),
    checked before anything is scored; else a :class:`~probvae.memory.TooLargeError` that
    names it and a smaller value that fits.

    Examples
    --------
    >>> import probvae as pv
    >>> vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))
    >>> check_samples(vae, 16, 100)
    100
    >>> check_samples(vae, 16, 10**15, what="pv.evaluate", hold=False)
    Traceback (most recent call last):
    ...
    probvae.memory.TooLargeError: pv.evaluate: num_samples=1000000000000000 needs about ... of memory (...), more than half of the ... available on this machine; a smaller num_samples, e.g. num_samples=...
    """
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or int(num_samples) < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    s, n = int(num_samples), max(int(n), 1)
    rows = n if hold else _block_rows(model, n, s)
    nbytes = weights_bytes(model, n, s, keep, hold) + rows * s * int(per_draw)

    def fix(budget):
        text = f"a smaller num_samples, e.g. num_samples={round_down(budget * s // nbytes)}"
        part = budget * n // nbytes
        if hold and n > 1 and part >= 1:
            text += f", or the {n} examples in parts (x[:{round_down(part)}], ...)"
        return text
    examples = f"{rows} example{'s' if rows > 1 else ''}"
    check_allocation(nbytes, f"num_samples={s}", fix, what=what,
                     detail=f"{examples} x {s} draws" if hold else f"blocks of {examples} x {s} draws")
    return s


@exclusive
def log_weights(res, x, num_samples=1000, seed=0, keep=(), y=None, common_noise=False,
                missing=_TRAINED, condition=None):
    """Log importance weights log p(x, z) - log q(z|x) for each example and draw.

    Parameters
    ----------
    res : FitResult
    x : Split or array (N, D)
        With NaN for missing cells when the model was trained with ``missing="mask"``: only
        the observed cells are scored.
    num_samples : int
        Draws of the latents z ~ q(z|x) per example.
    seed : int
    keep : tuple of str
        Guide sites whose draws to return as well (e.g. ``res.model.contract.latent_names``).
    y : array (N,), optional
        Labels to condition on, for models with labels (``log_w`` is then that of p(x, y, z)).
    common_noise : bool
        Draw each continuous latent as loc(x) + scale(x) * eps with the same standard-normal
        ``eps`` (from ``seed``) for every example (common random numbers; needs a Normal guide
        for each, given the latents before it). Each
        example's weights then depend only on that example and ``seed``, not on which other
        examples share the call, so a score for one row matches its score in a batch.
    missing : None or "mask"
        Default: as the model was trained (``res.options["missing"]``).
    condition : array (N, K), optional
        For a conditional model: each example's condition (``log_w`` is then that of
        p(x, z | c) / q(z | x, c)).

    Returns
    -------
    dict of NumPy arrays
        ``log_w``, ``log_lik``, ``log_prior``, ``log_q``: shape (N, num_samples);
        ``kl_dim`` (N, D): KL per dimension of every continuous latent of the model's
        contract, flattened and concatenated in contract order (D = the sum of their sizes;
        one latent: its dims; :func:`split_sites` splits it by site), NaN for a latent whose
        marginals have no closed form, absent when none has; from the first 100 draws of each
        example (it costs K times the rest under a K-component mixture prior); and
        ``value_<site>`` (N, num_samples, ...) for each kept site.

    Raises
    ------
    probvae.memory.TooLargeError
        Before scoring anything, when ``num_samples`` draws for every example of ``x`` would
        not fit in half of the memory available (see :func:`weights_bytes`).

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> log_weights(res, data.test.x[:5], num_samples=10)["log_w"].shape
    (5, 10)
    """
    check_samples(res.model, _num_rows(x), num_samples, "pv.log_weights", keep)
    rows = list(weight_chunks(res, x, num_samples, seed, keep, y, common_noise, missing,
                              condition=condition))
    return {k: np.concatenate([r[k] for r in rows], axis=0) for k in rows[0]}


def weight_chunks(res, x, num_samples=1000, seed=0, keep=(), y=None, common_noise=False,
                  missing=_TRAINED, progress=False, condition=None):
    """:func:`log_weights` one block of examples at a time (the same numbers), so that a
    caller reducing each block (as :func:`~probvae.inference.evaluate` does) holds only
    ``rows x num_samples`` values at once; ``progress`` shows a bar over the blocks.
    A block too large for this machine's memory is refused before any is scored."""
    check_samples(res.model, _num_rows(x), num_samples, "pv.inference.weight_chunks", keep,
                  hold=False)
    seed = check_seed(seed)
    batch = model_batch(res.model, x, "evaluation data", missing_of(res, missing),
                        condition=condition)
    if y is not None:                 # labels under the batch's label key (probvae.batch)
        n = batching.size(batch)
        batch["y"] = (check_labels(res.model, y, n) if label_site(res.model) is not None
                      else batching.make(y=y)["y"])
    bk = res.bk
    continuous = [site for site in res.model.contract.latents if not site.discrete]
    x = batch["x"]
    s_chunk = min(int(num_samples), 100)
    width = max(x.shape[1], _widest(res.model))
    n_chunk = max(1, min(len(x), _MAX_ROWS * 64 // (s_chunk * width)))
    first = _make_chunk_fn(res, s_chunk, tuple(keep))                 # with kl_dim
    rest = (_make_chunk_fn(res, s_chunk, tuple(keep), kl=False)
            if int(num_samples) > s_chunk else None)
    if common_noise and not continuous:
        raise ValueError("common_noise=True needs a model with a continuous latent site (its "
                         f"latent sites: {list(res.model.contract.latent_names)}); use "
                         "common_noise=False for this model")
    blocks = batching.chunks(batch, n_chunk, padded=bk.fixed_shapes)
    bar = tqdm(blocks, total=-(-len(x) // n_chunk), disable=not progress, unit="block",
               desc=f"scoring {len(x)} examples x {int(num_samples)} samples", leave=False)
    # the units (a block of examples x a block of draws, each seeded on its own) are dealt
    # out over the devices and processes (inference/sharding.py); a group of blocks at a
    # time when one block has fewer draw blocks than there are devices
    draws = -(-int(num_samples) // s_chunk)
    where = sharding.workers(bk, res.param_state)
    params = sharding.placed(res.param_state)
    group = 1 if where.count == 1 else -(-where.count // draws)

    def unit(blocks, placed_parts):
        def compute(u, device):
            b, j = divmod(u, draws)
            chunk_seed = int(np.random.SeedSequence([int(seed), blocks[b][0], j])
                             .generate_state(1)[0] >> 1)
            eps = None
            if common_noise:              # one standard-normal eps per continuous latent, in order
                rng = np.random.default_rng([int(seed), j])
                eps = sharding.placed({site.name: bk.asarray(
                    rng.standard_normal((s_chunk, 1, *site.event_shape)).astype(np.float32))
                    for site in continuous}).on(device)
            with bk.lock:
                return _checked(rest if j else first, params.on(device), chunk_seed,
                                placed_parts[b].on(device), eps)
        return compute

    for blocks in _groups(bar, group):
        placed_parts = [sharding.placed(batching.to_backend(bk, part)) for _, part, _ in blocks]
        outs = sharding.run_units(bk, where, len(blocks) * draws, unit(blocks, placed_parts))
        for b, (start, part, n_keep) in enumerate(blocks):
            yield _block_scores(outs[b * draws:(b + 1) * draws], num_samples, n_keep, continuous)


def _groups(blocks, size):
    """``blocks`` in lists of ``size`` (the last one shorter)."""
    group = []
    for block in blocks:
        group.append(block)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _block_scores(parts, num_samples, n_keep, continuous) -> dict:
    """One block's scores (examples x draws, float64) from its draw blocks' outputs."""
    chunk = {k: np.concatenate([np.broadcast_to(p[k], p["log_lik"].shape) for p in parts],
                               axis=0)[:num_samples, :n_keep].T.astype(np.float64)
             for k in ("log_q", "log_prior", "log_lik")}
    chunk["log_w"] = chunk["log_lik"] + chunk["log_prior"] - chunk["log_q"]
    for k in parts[0]:
        if k.startswith("value_"):
            vals = np.concatenate([np.broadcast_to(p[k], p["log_lik"].shape + p[k].shape[2:])
                                   for p in parts], axis=0)[:num_samples, :n_keep]
            chunk[k] = np.swapaxes(vals, 0, 1)
    kl = [parts[0].get(f"kl_dim/{site.name}") for site in continuous]
    if any(v is not None for v in kl):  # the continuous latents' in contract order, NaN where
        chunk["kl_dim"] = np.concatenate(  # a site's marginals have no closed form
            [v.reshape(v.shape[0], -1)[:n_keep] if v is not None
             else np.full((n_keep, site.size), np.nan, np.float32)
             for v, site in zip(kl, continuous)], axis=1)
    return chunk


def _widest(model) -> int:
    """The widest activation per example among a model's networks (sizes the blocks)."""
    widths = [getattr(spec, "max_width", 0) for name, spec in vars(model).items()
              if name.endswith("_spec")]
    return max(widths + list(model.hidden) + [256])


def _site_mean(site):
    fn = site["fn"]
    try:
        return fn.mean
    except NotImplementedError:
        return site["value"]


@exclusive
def class_probabilities(model, params, x):
    """q(y|x) for a built model with a classifier and given parameters (used during training).

    Examples
    --------
    >>> import numpy as np
    >>> from probvae import backends
    >>> from probvae.models import SSVAE
    >>> ss = SSVAE(input_dim=4, num_classes=3, latent_dim=2, hidden=(8,)).build(0)
    >>> params = backends.init_params(ss.bk, ss, {"x": ss.bk.asarray(np.full((2, 4), .5))}, 0)
    >>> class_probabilities(ss, params, np.full((5, 4), 0.5)).shape
    (5, 3)
    """
    def make():
        bk = model.bk

        def probs(params, xb):
            return bk.with_params(lambda v: model.classify(v).probs, params)(xb)
        return bk.compile(probs)
    fn = _cached(model, "class_probs", make)
    bk = model.bk
    return np.concatenate([np.asarray(bk.to_numpy(fn(params, bk.asarray(x[i:i + CHUNK]))))
                           for i in range(0, len(x), CHUNK)])


def labels_for(res, batch, y=None):
    """Labels to condition on, for models with labels: given ones (checked), else the
    classifier's best guess; ``None`` for models without labels."""
    if not is_classifier(res.model):
        return None
    n = batching.size(batch)
    if y is None:
        return class_probabilities(res.model, res.param_state, batch["x"]).argmax(axis=1)
    return check_labels(res.model, y, n)


def _site_probs(bk, site):
    """The probabilities of a discrete guide site's distribution (a Categorical's per class)."""
    fn = unwrap(bk, site["fn"])
    while not hasattr(fn, "probs") and hasattr(fn, "base_dist"):
        fn = unwrap(bk, fn.base_dist)
    return fn.probs


@exclusive
def posterior_means(res, batch, seed=0, sites=None) -> dict:
    """``{site: E_q[site|x]}`` for every example of ``batch`` (its ``y`` conditions models with
    labels), one guide pass per chunk: each named latent (default: every continuous latent of
    the contract) that the guide samples; a discrete one gives its probabilities
    (N, ..., values) instead of a mean.

    Examples
    --------
    >>> import probvae as pv
    >>> res = pv.fit(pv.models.VAE(input_dim=4, latent_dim=1, hidden=(4,)),
    ...              np.full((8, 4), 0.5), epochs=1, progress=False)
    >>> {k: v.shape for k, v in posterior_means(res, {"x": np.full((3, 4), 0.5)}).items()}
    {'z': (3, 1)}
    """
    bk, seed = res.bk, check_seed(seed)
    contract = res.model.contract
    wanted = [s for s in contract.latents if not s.discrete] if sites is None else [
        contract.latent(name) for name in sites]
    out = {}
    for _, part, _ in batching.chunks(batch, CHUNK):
        tr = _checked(bk.get_trace, bk.seed(res.bound(res.model.guide), seed),
                      **batching.to_backend(bk, part))
        for s in wanted:
            if s.name in tr:
                value = _site_probs(bk, tr[s.name]) if s.discrete else _site_mean(tr[s.name])
                out.setdefault(s.name, []).append(bk.to_numpy(value))
    return {name: np.asarray(np.concatenate(v), dtype=np.float32) for name, v in out.items()}


@exclusive
def site_means(res, batch, values: dict, site=None, seed=0):
    """The mean of model site ``site`` (default: the contract's first observed site) for each
    example of ``batch`` with the latents fixed at ``values`` (``{latent: (N, ...)}``, e.g. their
    posterior means: reconstructions), chunked.

    Examples
    --------
    >>> import probvae as pv
    >>> res = pv.fit(pv.models.VAE(input_dim=4, latent_dim=1, hidden=(4,)),
    ...              np.full((8, 4), 0.5), epochs=1, progress=False)
    >>> site_means(res, {"x": np.full((3, 4), 0.5)}, {"z": np.zeros((3, 1))}).shape
    (3, 4)
    """
    bk, seed = res.bk, check_seed(seed)
    site = res.model.contract.observed_names[0] if site is None else site
    out = []
    for start, part, _ in batching.chunks(batch, CHUNK):
        stop = start + batching.size(part)
        fn = bk.condition(res.bound(res.model.model),
                          {name: bk.asarray(v[start:stop]) for name, v in values.items()})
        tr = _checked(bk.get_trace, bk.seed(fn, seed), **batching.to_backend(bk, part))
        out.append(bk.to_numpy(_site_mean(tr[site])))
    return np.asarray(np.concatenate(out), dtype=np.float32)


def example_batch(res, data, what="data", y=None, condition=None) -> dict:
    """The batch for per-example calls (encode, reconstruct, the diagnostics): ``data`` checked
    as the model was trained (missing values included), and ``y`` for models with labels
    (given, else the classifier's best guess), and ``condition`` for a conditional model.

    Examples
    --------
    >>> import probvae as pv
    >>> res = pv.fit(pv.models.VAE(input_dim=4, latent_dim=1, hidden=(4,)),
    ...              np.full((8, 4), 0.5), epochs=1, progress=False)
    >>> example_batch(res, np.full((1, 4), 0.5))["x"].shape
    (1, 4)
    >>> example_batch(res, np.full(4, 0.5), "data to encode")
    Traceback (most recent call last):
    ...
    ValueError: data to encode is one 1-D row of 4 values; pass a 2-D array (examples, features): x.reshape(1, -1) for one example
    """
    if isinstance(data, np.ndarray) and data.ndim == 1:
        raise ValueError(f"{what} is one 1-D row of {data.shape[0]} values; pass a 2-D array "
                         "(examples, features): x.reshape(1, -1) for one example")
    batch = model_batch(res.model, data, what, missing_of(res), condition=condition)
    labels = labels_for(res, batch, batch.get("y") if y is None else y)
    if labels is not None:
        batch["y"] = labels
    return batch
