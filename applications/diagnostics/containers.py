"""The two ArviZ containers the diagnostics return, built from the same ``{group: {variable:
ndarray}}`` dict: today's ``arviz.InferenceData`` (ArviZ 0.x) and the ``xarray.DataTree`` of
the new ArviZ (``arviz_base``, read by ``arviz_stats`` and ``arviz_plots``), chosen by name
(:data:`FORMATS`).

Each group's variables are converted by the library's own dict converter
(``arviz.dict_to_dataset``, ``arviz_base.dict_to_dataset``) with every dim named explicitly
(``chain`` and ``draw`` included), so a group may hold per-draw and per-example variables
side by side (``sample_stats``: ``log_weight`` (chain, draw, obs) beside ``khat`` (obs)).
Coordinates that are not dims of their own (an example's ``label``, a pixel's ``row`` and
``column``) are added to every group that has their dim.

Examples
--------
>>> import numpy as np
>>> groups = {"posterior": {"z": (("chain", "draw", "obs"), np.zeros((1, 3, 2)))},
...           "observed_data": {"x": (("obs", "feature"), np.ones((2, 4)))}}
>>> idata = to_container(groups, {"obs": np.arange(2)}, "inferencedata")
>>> group_names(idata), group(idata, "posterior")["z"].dims
(['posterior', 'observed_data'], ('chain', 'draw', 'obs'))
"""
from __future__ import annotations

__all__ = ["FORMATS", "to_container", "group_names", "group", "with_group", "check_format"]


def _inferencedata(datasets: dict):
    import arviz as az

    return az.InferenceData(**datasets)


def _datatree(datasets: dict):
    import xarray as xr

    return xr.DataTree.from_dict(datasets)


def _az_dataset(data, dims, coords, attrs):
    import arviz as az

    return az.dict_to_dataset(data, attrs=attrs, coords=coords, dims=dims, default_dims=[])


def _azb_dataset(data, dims, coords, attrs):
    import arviz_base as azb

    return azb.dict_to_dataset(data, attrs=attrs, coords=coords, dims=dims, sample_dims=[])


#: container name -> (how one group's dict becomes a Dataset, how the groups become one
#: object, the module it needs and what to install for it)
FORMATS = {
    "inferencedata": (_az_dataset, _inferencedata, "arviz", "arviz"),
    "datatree": (_azb_dataset, _datatree, "arviz_base",
                 "the new ArviZ's base package: pip install 'arviz-base>=0.8' (Python >= 3.11), "
                 "or pip install 'probvae[datatree]'"),
}


def check_format(format: str) -> str:
    """``format`` if it names a container in :data:`FORMATS` and its library imports; else a
    ValueError listing the names, or an ImportError saying what to install.

    Examples
    --------
    >>> check_format("InferenceData")
    'inferencedata'
    >>> check_format("netcdf")
    Traceback (most recent call last):
    ...
    ValueError: format='netcdf' is not a container the diagnostics make; use one of ['inferencedata', 'datatree']
    """
    import importlib

    name = str(format).lower()
    if name not in FORMATS:
        raise ValueError(f"format={format!r} is not a container the diagnostics make; use one "
                         f"of {list(FORMATS)}")
    module, install = FORMATS[name][2:]
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"format={name!r} needs {module}, which does not import here "
                          f"({err}); install {install}") from None
    return name


def to_container(groups: dict, coords: dict, format: str = "inferencedata",
                 extra_coords: dict | None = None, attrs: dict | None = None):
    """One ArviZ container from ``{group: {variable: (dims, ndarray)}}``.

    Parameters
    ----------
    groups : dict
        Group name -> its variables, each ``(dims, values)`` with every axis named
        (``(("chain", "draw", "obs", "latent"), array)``). Empty groups are left out.
    coords : dict
        Dim name -> its index values (dims not given count 0, 1, ...).
    format : {"inferencedata", "datatree"}
    extra_coords : dict, optional
        Coordinate name -> ``(dim, values)``: coordinates along a dim (``label`` along
        ``obs``), added to every group that has the dim.
    attrs : dict, optional
        Group name -> attributes of that group.
    """
    to_dataset, combine = FORMATS[check_format(format)][:2]
    attrs = attrs or {}
    datasets = {}
    for name, variables in groups.items():
        if not variables:
            continue
        dims = {k: list(d) for k, (d, _) in variables.items()}
        used = {d for ds in dims.values() for d in ds}
        ds = to_dataset({k: v for k, (_, v) in variables.items()}, dims,
                        {d: v for d, v in coords.items() if d in used}, attrs.get(name))
        extra = {k: v for k, v in (extra_coords or {}).items() if v[0] in ds.dims}
        datasets[name] = ds.assign_coords(extra) if extra else ds
    return combine(datasets)


def _is_tree(obj) -> bool:
    import xarray as xr

    return isinstance(obj, xr.DataTree)


def group_names(obj) -> list:
    """The groups of an InferenceData, or of a DataTree (its children)."""
    return list(obj.children) if _is_tree(obj) else list(obj.groups())


def group(obj, name: str):
    """Group ``name`` of an InferenceData or a DataTree, as an ``xarray.Dataset``."""
    if name not in group_names(obj):
        raise ValueError(f"no group {name!r}; there are {group_names(obj)}")
    return obj[name].to_dataset() if _is_tree(obj) else obj[name]


def with_group(obj, name: str, ds):
    """``obj`` with group ``name`` set to the Dataset ``ds`` (added, or replaced)."""
    if _is_tree(obj) or name in obj.groups():
        obj[name] = ds
    else:
        obj.add_groups({name: ds})
    return obj
