"""Generation from a fitted model: decode latents, interpolate, traverse, synthesize data.

Arrays in and out are NumPy. Every function works on both backends and on any model whose
``model(x=None, n=N)`` generates (VAE, SSVAE, ADGM and user pairs): the latent sites they
condition and the observed site they read come from the model's contract, whatever their
names. A latent code is an array for one latent site (by default the contract's principal
latent, ``contract.latent()``; ``site=`` names another) or a dict ``{site: array}`` for several,
as :func:`~probvae.inference.encode` returns for a model with several continuous latents.
"""
from __future__ import annotations

import numpy as np

from .inputs import check_condition, check_labels, check_seed, model_batch
from .predict import _check_count, _check_generated, encode, predict, sample
from .scoring import (CHUNK, _checked, _observed_width, _site_mean, example_batch, exclusive,
                      is_classifier, label_site, posterior_means)

__all__ = ["decode", "interpolate", "traverse", "synthesize"]


def _shape_text(shape) -> str:
    """``(N, 2)`` for event shape ``(2,)``, ``(N,)`` for a scalar site."""
    return "(" + ", ".join(["N", *map(str, shape)]) + ("," if not shape else "") + ")"


def _codes(res, z, site=None) -> dict:
    """``{latent site: array (N, *event_shape)}`` from ``z``: an array for ``site``
    (default: the contract's principal latent) or a dict by site name; one code (no N axis)
    becomes one row. A discrete site (a cluster) takes integer values."""
    contract = res.model.contract
    if isinstance(z, dict):
        if site is not None:
            raise ValueError("give z as an array with site=, or as a dict by site name, not both")
        if not z:
            raise ValueError("z is an empty dict; give at least one latent site's values")
        items = [(contract.latent(name), value) for name, value in z.items()]
    else:
        items = [(contract.latent(site), z)]
    codes, rows = {}, set()
    for s, value in items:
        value = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=np.float32)
        if value.ndim == len(s.event_shape):
            value = value[None]
        if value.shape[1:] != s.event_shape or len(value) == 0:
            what = "z" if not isinstance(z, dict) else f"z[{s.name!r}]"
            raise ValueError(f"{what} must have shape {_shape_text(s.event_shape)} with N >= 1, "
                             f"got {value.shape}")
        codes[s.name] = value
        rows.add(len(value))
    if len(rows) > 1:
        raise ValueError(f"the latent sites of z need the same number of rows, got "
                         f"{ {k: len(v) for k, v in codes.items()} }")
    return codes


def _continuous_width(res) -> int:
    """Values per example of the contract's continuous latents together."""
    return sum(s.size for s in res.model.contract.latents if not s.discrete)


def _decoded_bytes(res) -> int:
    """Bytes per decoded row that decode holds: its float32 chunks and their concatenation
    (the networks see one chunk of rows at a time)."""
    return 8 * _observed_width(res.model)


def _labels(res, y, n):
    return None if y is None else check_labels(res.model, y, n)


@exclusive
def decode(res, z, y=None, mean=True, seed=0, site=None, condition=None):
    """Decode latent vectors: the likelihood's mean (or a draw) of p(x | z) for each row of z.

    Parameters
    ----------
    res : FitResult
    z : array, shape (N,) + event_shape, or dict of them
        Values of the latent ``site`` (default: the contract's principal latent,
        ``res.model.contract.latent()``: VAE's and SSVAE's ``z``), or ``{site: values}`` for
        several latent sites, as :func:`~probvae.inference.encode` returns them for a model
        with several continuous latents. Latent sites not given are drawn from the model.
    y : int or array (N,), optional
        Labels for models with labels (one label for all rows, or one per row). Without it a
        conditional model draws y from its prior.
    mean : bool
        Return E[x | z] (default); ``False`` returns a draw from p(x | z).
    seed : int
    site : str, optional
        The latent site an array ``z`` holds.
    condition : array (N, K) or (K,), optional
        For a conditional model: the condition to decode under, one row per row of ``z`` or
        one row for all.

    Returns
    -------
    numpy.ndarray, shape (N,) + the observed site's event_shape

    Examples
    --------
    >>> import numpy as np, probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> decode(res, np.zeros((3, 2))).shape
    (3, 64)
    """
    codes = _codes(res, z, site)
    n = len(next(iter(codes.values())))
    dim = sum(int(np.prod(v.shape[1:])) for v in codes.values())
    _check_generated(res, n, "pv.decode", per=_decoded_bytes(res) + 5 * dim, name="len(z)",
                     fix=lambda k: f"decode z in parts of {k} rows (z[:{k}], z[{k}:{2 * k}], "
                                   "...) and concatenate the results")
    if not all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in codes.values()):
        raise ValueError("z contains NaN or infinite values")
    sites = {s.name: s for s in res.model.contract.latents}
    codes = {name: np.asarray(v, dtype=np.int64 if sites[name].discrete else np.float32)
             for name, v in codes.items()}
    y, seed = _labels(res, y, n), check_seed(seed)
    condition = check_condition(res.model, condition, n, broadcast=True)
    bk = res.bk
    observed = res.model.contract.observed_names[0]
    out = []
    for i in range(0, n, CHUNK):
        rows = min(CHUNK, n - i)
        kw = {} if y is None else {"y": bk.asarray_int(y[i:i + CHUNK])}
        if condition is not None:
            kw["condition"] = bk.asarray(condition[i:i + CHUNK])
        fn = bk.condition(res.bound(res.model.model),
                          {name: bk.asarray_int(v[i:i + CHUNK]) if sites[name].discrete
                           else bk.asarray(v[i:i + CHUNK]) for name, v in codes.items()})
        site = _checked(bk.get_trace, bk.seed(fn, seed), None, n=rows, **kw)[observed]
        out.append(bk.to_numpy(_site_mean(site) if mean else site["value"]))
    return np.asarray(np.concatenate(out), dtype=np.float32)


def interpolate(res, x_start, x_end, steps=8, y=None, seed=0, condition=None):
    """Decode evenly spaced points on the line between two inputs' posterior means.

    Parameters
    ----------
    res : FitResult
    x_start, x_end : array (input_dim,)
        The two inputs; their codes are ``encode(res, x)``: every continuous latent of the
        model's contract moves along its own line (ADGM's ``a`` and ``z``, a hierarchy's
        levels).
    steps : int
        Number of points, both ends included.
    y : int, optional
        For models with labels: the class to decode under at every step (default: the
        classifier's guess for ``x_start``), so the path changes style, not class.
    seed : int
    condition : array (K,) or (1, K), optional
        For a conditional model: the one condition to encode both ends and decode the path
        under.

    Returns
    -------
    numpy.ndarray, shape (steps, input_dim)

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> interpolate(res, data.test.x[0], data.test.x[1], steps=5).shape
    (5, 64)
    """
    steps = int(steps)
    if steps < 2:
        raise ValueError(f"interpolate needs steps >= 2 (both ends), got {steps}")
    continuous = res.model.contract.continuous_names
    _check_generated(res, steps, "pv.interpolate", name="steps",
                     per=_decoded_bytes(res) + 12 * _continuous_width(res) + 4,
                     fix=lambda k: f"fewer steps, e.g. steps={max(k, 2)}")
    pair = np.stack([np.asarray(x_start, np.float32).ravel(),
                     np.asarray(x_end, np.float32).ravel()])
    given = check_condition(res.model, condition, 1, broadcast=True)
    pair = model_batch(res.model, pair, "x_start/x_end", res.options.get("missing"),
                       condition=None if given is None else np.repeat(given, 2, 0))["x"]
    if is_classifier(res.model) and y is None:
        y = int(predict(res, pair[:1]).argmax())
    y = None if y is None else int(check_labels(res.model, y, 1)[0])
    z = encode(res, pair, seed=seed, y=None if y is None else [y, y],
               condition=None if given is None else np.repeat(given, 2, 0))
    ends = z if isinstance(z, dict) else {continuous[0]: z}
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    path = {name: (1 - t.reshape(-1, *[1] * (v.ndim - 1))) * v[0]
            + t.reshape(-1, *[1] * (v.ndim - 1)) * v[1] for name, v in ends.items()}
    return decode(res, path, y=y, seed=seed, condition=given)


def traverse(res, x=None, z=None, dims=None, values=None, y=None, seed=0, site=None,
             condition=None):
    """Latent traversals: vary one latent dim at a time from an anchor and decode.

    Parameters
    ----------
    res : FitResult
    x : array (input_dim,), optional
        Anchor input; the anchor code is its posterior mean (of every continuous latent: the
        ones not traversed stay at theirs).
    z : array (latent_dim,), optional
        Anchor code of the traversed site given directly (default: zeros, the prior's centre
        for the usual priors); the model draws its other latents.
    dims : sequence of int, optional
        Dims to traverse (default: all), of the site's flattened values.
    values : array (steps,) or (len(dims), steps), optional
        Values the traversed dim takes (absolute, not offsets): one grid for every dim, or one
        row per dim, e.g. per-dim quantiles of the codes of a data set. Default
        ``linspace(-3, 3, 7)``.
    y : int, optional
        Class to decode under, for models with labels (default: the classifier's guess for
        ``x``, or class 0 when only ``z`` is given).
    seed : int
    site : str, optional
        The continuous latent site to traverse (default: the contract's principal latent,
        ``res.model.contract.latent()``).
    condition : array (K,) or (1, K), optional
        For a conditional model: the one condition to encode the anchor and decode under.

    Returns
    -------
    numpy.ndarray, shape (len(dims), steps, input_dim)

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=3, hidden=(32,)), data.train,
    ...              epochs=1, progress=False)
    >>> traverse(res, x=data.test.x[0], values=[-2, 0, 2]).shape
    (3, 3, 64)
    """
    target = res.model.contract.latent(site)
    if target.discrete:
        raise ValueError(f"traverse varies a continuous latent; {target.name!r} is discrete")
    dim = target.size
    if x is not None and z is not None:
        raise ValueError("traverse takes an anchor x or z, not both")
    if is_classifier(res.model) and y is None:
        y = 0 if x is None else int(predict(res, np.asarray(x, np.float32).reshape(1, -1)).argmax())
    y = None if y is None else int(check_labels(res.model, y, 1)[0])
    given = check_condition(res.model, condition, 1, broadcast=True)
    fixed = {}                                    # the other latents' anchors, given x
    if x is not None:
        x = np.asarray(x, np.float32).reshape(1, -1)
        batch = example_batch(res, x, "the anchor x", None if y is None else [y], given)
        fixed = posterior_means(res, batch, seed)
        anchor = fixed.pop(target.name)[0].ravel()
    else:
        anchor = np.zeros(dim, np.float32) if z is None else np.asarray(z, np.float32).ravel()
        if anchor.shape != (dim,):
            raise ValueError(f"z must have shape ({dim},), got {anchor.shape}")
    dims = list(range(dim)) if dims is None else [int(d) for d in np.atleast_1d(dims)]
    if not dims or min(dims) < 0 or max(dims) >= dim:
        raise ValueError(f"dims must be latent dims in 0..{dim - 1}, got {dims}")
    values = np.linspace(-3, 3, 7) if values is None else np.asarray(values, np.float32)
    if values.ndim == 1:
        values = np.broadcast_to(values, (len(dims), len(values)))
    if values.ndim != 2 or values.shape[0] != len(dims) or values.shape[1] < 1:
        raise ValueError(f"values must have shape (steps,) or ({len(dims)}, steps), "
                         f"got {values.shape}")
    steps = values.shape[1]
    codes = np.repeat(anchor[None, None], len(dims), 0).repeat(steps, 1)   # (dims, steps, latent)
    for row, d in enumerate(dims):
        codes[row, :, d] = values[row]
    codes_given = {name: np.repeat(v, len(dims) * steps, axis=0) for name, v in fixed.items()}
    codes_given[target.name] = codes.reshape(-1, *target.event_shape)
    out = decode(res, codes_given, y=y, seed=seed, condition=given)
    return out.reshape(len(dims), steps, -1)


def synthesize(res, n, y=None, seed=0, mean=None, condition=None):
    """Synthetic examples for data augmentation or release: the latents from the prior, the
    data from the decoder.

    Parameters
    ----------
    res : FitResult
    n : int
    y : int or array (n,), optional
        Models with labels only: the classes to generate. Default: balanced classes
        (``0, 1, ..., K-1, 0, 1, ...``).
    seed : int
    mean : bool, optional
        E[x | z] or a draw from p(x | z). Default: the mean, except for a model of a table
        (``VAE.for_table``), which draws every cell and returns a DataFrame with the table's
        columns, levels and dtypes.
    condition : array or DataFrame, optional
        For a conditional model: the condition of the rows to make, one row for all ``n`` or
        ``n`` rows. For a table model conditioned on some of its columns
        (``VAE.for_table(table, condition=[...])``), a DataFrame with those columns: the rows
        made have exactly these values there (the modelled columns come first, then the
        condition columns).

    Returns
    -------
    numpy.ndarray (n, input_dim)
        For models without labels.
    (numpy.ndarray (n, input_dim), numpy.ndarray (n,) of int)
        For models with labels: the examples and their classes.

    Raises
    ------
    probvae.memory.TooLargeError
        Before drawing anything, when ``n`` rows would not fit in half of the memory
        available: synthesize in chunks of a smaller ``n``.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(32,))
    >>> res = pv.fit(ss, data.train, labels=data.train.label_subset(n_per_class=2),
    ...              objective="enum", epochs=1, progress=False)
    >>> x, y = synthesize(res, 20)
    >>> x.shape, y[:12].tolist()
    ((20, 64), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])

    Rows of a table for given values of some of its columns (a conditional VAE):

    >>> import pandas as pd
    >>> df = pd.DataFrame({"size": np.linspace(1, 5, 60), "kind": ["a", "b", "c"] * 20})
    >>> table = pv.data.from_frame(df, split=False, verbose=False)
    >>> cvae = pv.models.VAE.for_table(table, latent_dim=2, hidden=(16,), condition=["kind"])
    >>> res = pv.fit(cvae, df, epochs=1, progress=False)
    >>> rows = synthesize(res, 4, condition=pd.DataFrame({"kind": ["b"]}))
    >>> list(rows.columns), rows["kind"].tolist()
    (['size', 'kind'], ['b', 'b', 'b', 'b'])
    """
    n = _check_count(n)
    label = label_site(res.model)
    k = None if label is None else label.num_values
    lik = res.model.likelihood                   # a table's likelihood decodes rows to a frame
    # beside sample's own: a table's DataFrame (a value and a temporary per cell), or labels
    extra = (16 * len(lik.table().names) if k is None and hasattr(lik, "decode") else
             24 if k is not None else 0)
    _check_generated(res, n, "pv.synthesize", extra=extra)
    given = check_condition(res.model, condition, n, broadcast=True)
    kw = {} if given is None else {"condition": given}
    if k is None:
        if y is not None:
            raise ValueError(f"{type(res.model).__name__} has no labels; drop y=")
        if hasattr(lik, "decode"):                        # a table: rows as a DataFrame
            rows = lik.decode(sample(res, n=n, seed=seed, mean=bool(mean), **kw))
            return rows if given is None else _with_condition(res.model, rows, condition)
        return sample(res, n=n, seed=seed, mean=True if mean is None else mean, **kw)
    mean = True if mean is None else mean
    y = np.resize(np.arange(k), n) if y is None else check_labels(res.model, y, n)
    return sample(res, n=n, seed=seed, mean=mean, y=y, **kw), np.asarray(y, dtype=np.int64)


def _with_condition(model, rows, condition):
    """A table's synthesized ``rows`` beside the condition columns they were made for: the
    given DataFrame's values (one row repeated, or one per row), else the condition array
    decoded by the model's condition columns."""
    import pandas as pd
    table = model.condition_table
    if table is None:
        return rows
    if isinstance(condition, pd.DataFrame):
        given = condition[table.names].reset_index(drop=True)
        if len(given) == 1:
            given = given.iloc[np.zeros(len(rows), np.int64)].reset_index(drop=True)
    else:
        given = table.decode(check_condition(model, condition, len(rows), broadcast=True))
    return pd.concat([rows.reset_index(drop=True), given], axis=1)
