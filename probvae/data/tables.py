"""Tables: mixed-type columns with gaps, encoded for a VAE and decoded back to a DataFrame.

:func:`from_frame` infers a kind for every column (override with ``kinds=``), encodes the rows
into the float matrix ``x`` a model trains on (NaN where a cell is missing) and splits them.
Each :class:`Column` knows its own encoding:

============  ==============================  =====================================  ========
kind          in ``x``                        likelihood (``pv.likelihoods.Columns``) features
============  ==============================  =====================================  ========
real          (value - mean) / sd             Gaussian, learned scale                1
positive      (log value - mean) / sd         Gaussian on the log scale (log-normal)  1
count         the count                       negative binomial                      1
binary        0 / 1 (the two levels)          Bernoulli                              1
categorical   one-hot over the K levels       categorical, K logits                  K
constant      (not in x: one value)           none; restored on decoding             0
============  ==============================  =====================================  ========

How a kind is inferred (:func:`infer_kind`; ``kinds=`` overrides it, and :func:`from_frame`
prints what it chose and why, a line per column): one observed value is *constant*; two are
*binary*; text or categories are *categorical*; numbers are *counts* only when they are
non-negative integers that stay small (at most ``MAX_COUNT`` = 20: children, visits, faults)
or pile up at zero (at least ``ZERO_SHARE`` = 10% zeros: days in hospital, cigarettes a day),
since a negative binomial fits those; every other number is *real*, integer measurements with
many levels included (an age in years, a blood pressure in mmHg), which a count likelihood
would fit badly. *positive* (log-normal) is never inferred; give it with ``kinds=``.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"size": [1.5, 2.0, None, 3.1], "color": ["red", "blue", "red", None]})
>>> table = from_frame(df, test_fraction=0.25, valid_fraction=0.25)
from_frame: 2 columns, 4 rows
  size   real    numbers 1.5 to 3.1
  color  binary  two values: 'blue', 'red'
>>> table.kinds
{'size': 'real', 'color': 'binary'}
>>> table.encode(df).shape, table.decode(table.encode(df)).columns.tolist()
((4, 2), ['size', 'color'])
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from . import Split, _split_off

__all__ = ["Column", "Table", "from_frame", "infer_kind", "KINDS"]

KINDS = ("real", "positive", "count", "binary", "categorical", "constant")
#: most levels a text column may have to be taken as categorical
MAX_LEVELS = 50
#: largest value of non-negative integers taken as counts (larger: real, unless zeros pile up)
MAX_COUNT = 20
#: share of zeros that makes larger non-negative integers counts (days in hospital, ...)
ZERO_SHARE = 0.10


def _plain(v):
    """A level as a plain JSON value (numpy scalars become Python ones)."""
    return v.item() if isinstance(v, np.generic) else v


@dataclass(frozen=True)
class Column:
    """One column: its kind, its levels or scale, and how it maps to and from ``x``.

    Examples
    --------
    >>> import pandas as pd
    >>> c = Column("n", "count", dtype="int64")
    >>> c.encode(pd.Series([0, 3, None])).ravel().tolist()
    [0.0, 3.0, nan]
    """

    name: str
    kind: str
    levels: tuple = ()
    mean: float = 0.0
    sd: float = 1.0
    dtype: str = "float64"
    value: object = None          # the one value of a constant column

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: unknown kind {self.kind!r}; kinds: {KINDS}")
        object.__setattr__(self, "levels", tuple(_plain(v) for v in self.levels))

    @property
    def width(self) -> int:
        """Features of ``x`` this column takes."""
        return {"categorical": len(self.levels), "constant": 0}.get(self.kind, 1)

    def unseen(self, series) -> np.ndarray:
        """Which cells hold a level this (binary or categorical) column never saw."""
        import pandas as pd
        if self.kind not in ("binary", "categorical"):
            return np.zeros(len(series), bool)
        known = {_key(v) for v in self.levels}
        missing = pd.isna(series).to_numpy()
        return np.array([not m and _key(v) not in known
                         for v, m in zip(series.tolist(), missing)], bool)

    def encode(self, series, unseen="error") -> np.ndarray:
        """(N, width) float array; NaN rows where the cell is missing. A level never seen in
        training is an error, or with ``unseen="missing"`` a missing cell."""
        import pandas as pd
        n = len(series)
        missing = pd.isna(series).to_numpy()
        if unseen == "missing":
            gone = self.unseen(series)
            if gone.any():
                series = series.astype(object).where(~gone, None)
                missing = missing | gone
        if self.kind == "constant":
            return np.zeros((n, 0), np.float32)
        if self.kind in ("binary", "categorical"):
            codes = np.full(n, -1, np.int64)
            lookup = {_key(v): i for i, v in enumerate(self.levels)}
            unseen = sorted({str(v) for v, m in zip(series.tolist(), missing)
                             if not m and _key(v) not in lookup})
            if unseen:
                raise ValueError(f"column {self.name!r} has levels not seen in training: "
                                 f"{unseen[:5]}; known levels: {list(self.levels)[:10]}. Map "
                                 "them to a known level, or set them to NaN (missing)")
            for i, (v, m) in enumerate(zip(series.tolist(), missing)):
                if not m:
                    codes[i] = lookup[_key(v)]
            if self.kind == "binary":
                out = codes.astype(np.float32)[:, None]
            else:
                out = np.zeros((n, len(self.levels)), np.float32)
                out[codes >= 0, codes[codes >= 0]] = 1.0
            out[missing] = np.nan
            return out
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & ~missing
        if bad.any():
            raise ValueError(f"column {self.name!r} is {self.kind} but holds values that are not "
                             f"numbers: {series[bad].astype(str).unique()[:5].tolist()}")
        if self.kind == "positive":
            if (values[~missing] <= 0).any():
                raise ValueError(f"column {self.name!r} is positive but holds values <= 0; "
                                 "give it kinds={...: 'real'}")
            values = (np.log(values) - self.mean) / self.sd
        elif self.kind == "real":
            values = (values - self.mean) / self.sd
        elif self.kind == "count":
            obs = values[~missing]
            if (obs < 0).any() or (obs != np.round(obs)).any():
                raise ValueError(f"column {self.name!r} holds counts but has values that are not "
                                 "non-negative integers; give it kinds={...: 'real'}")
        return values.astype(np.float32)[:, None]

    def decode(self, block: np.ndarray):
        """The column's values (a pandas Series without index) from its block of ``x``:
        real/positive undone, counts rounded, binary at 0.5, categorical the likeliest level."""
        import pandas as pd
        n = len(block)
        if self.kind == "constant":
            values = [self.value] * n
        elif self.kind == "categorical":
            values = [self.levels[i] for i in np.asarray(block).argmax(axis=1)]
        elif self.kind == "binary":
            values = [self.levels[int(v >= 0.5)] for v in np.asarray(block)[:, 0]]
        else:
            v = np.asarray(block, np.float64)[:, 0]
            if self.kind == "real":
                v = v * self.sd + self.mean
            elif self.kind == "positive":
                v = np.exp(v * self.sd + self.mean)
            else:
                v = np.round(np.clip(v, 0, None))
            values = v
        series = pd.Series(values, name=self.name)
        return _as_dtype(series, self.dtype)


def _key(v):
    """How a level is looked up: numbers by value (1 == 1.0), others by their text."""
    if isinstance(v, (bool, np.bool_)):
        return ("b", bool(v))
    if isinstance(v, (int, float, np.integer, np.floating)):
        return ("n", float(v))
    return ("s", str(v))


def _as_dtype(series, dtype):
    import pandas as pd
    try:
        if dtype == "category":
            return series.astype("category")
        if dtype.startswith(("int", "uint")):
            return series.astype(dtype)
        if dtype in ("Int64", "Int32", "boolean", "string"):
            return series.astype(dtype)
        if dtype == "bool":
            return series.astype(bool)
        return series.astype(dtype)
    except (TypeError, ValueError):
        return pd.Series(series.to_numpy(), name=series.name)


def infer_kind(series) -> str:
    """The kind a column's values suggest (the rule is in this module's docstring).

    Examples
    --------
    >>> import pandas as pd
    >>> [infer_kind(pd.Series(v)) for v in ([1.5, -2.0, 0.1], [0, 1, 1], [3, 0, 7], ["a", "b", "c"])]
    ['real', 'binary', 'count', 'categorical']
    >>> infer_kind(pd.Series(range(18, 90)))         # ages in years: a measurement, not a count
    'real'
    """
    return _infer(series)[0]


def _infer(series) -> tuple:
    """``(kind, why)``: :func:`infer_kind`'s kind and the reason, in words."""
    import pandas as pd
    name = series.name
    observed = series.dropna()
    if len(observed) == 0:
        raise ValueError(f"column {name!r} has no observed value (every cell is missing); drop "
                         "it, e.g. df.drop(columns=[...])")
    uniques = observed.unique()
    if len(uniques) == 1:
        return "constant", f"one value, {_plain(uniques[0])!r}"
    if pd.api.types.is_bool_dtype(series) or len(uniques) == 2:
        return "binary", "two values: " + ", ".join(repr(_plain(u)) for u in sorted(uniques, key=_key))
    if pd.api.types.is_numeric_dtype(series):
        values = observed.to_numpy(dtype=np.float64)
        low, high = values.min(), values.max()
        if np.all(values == np.round(values)) and low >= 0:
            zeros = float(np.mean(values == 0))
            if high <= MAX_COUNT:
                return "count", f"non-negative integers up to {high:.0f}"
            if zeros >= ZERO_SHARE:
                return "count", f"non-negative integers up to {high:.0f}, {zeros:.0%} zeros"
            return "real", (f"integers {low:.0f} to {high:.0f}, {len(uniques)} levels, "
                            f"{zeros:.0%} zeros: a measurement, not a count")
        return "real", f"numbers {low:.4g} to {high:.4g}"
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        raise ValueError(f"column {name!r} holds dates or times, whose kind cannot be inferred; "
                         "convert it to numbers (e.g. days since a date) or drop it")
    if len(uniques) > MAX_LEVELS:
        raise ValueError(f"column {name!r} has {len(uniques)} distinct text values, too many for "
                         f"a categorical column (at most {MAX_LEVELS}); drop it, or give its kind "
                         "with kinds={...} after mapping it to fewer levels")
    return "categorical", f"{len(uniques)} levels"


def _make_column(series, kind) -> Column:
    import pandas as pd
    observed = series.dropna()
    name, dtype = series.name, str(series.dtype)
    if len(observed) == 0:
        raise ValueError(f"column {name!r} has no observed value (every cell is missing); drop it")
    if kind == "constant":
        return Column(name, kind, dtype=dtype, value=_plain(observed.iloc[0]))
    if kind in ("binary", "categorical"):
        levels = observed.unique().tolist()
        if isinstance(series.dtype, pd.CategoricalDtype):
            levels = [v for v in series.cat.categories.tolist() if v in set(levels)]
        else:
            try:
                levels = sorted(levels)
            except TypeError:
                levels = sorted(levels, key=str)
        if kind == "binary" and len(levels) != 2:
            raise ValueError(f"column {name!r} is binary but has {len(levels)} levels: "
                             f"{levels[:5]}; give it kinds={{{name!r}: 'categorical'}}")
        return Column(name, kind, levels=tuple(levels), dtype=dtype)
    values = pd.to_numeric(observed, errors="coerce")
    if values.isna().any():
        raise ValueError(f"column {name!r} is {kind} but holds text "
                         f"({observed[values.isna()].astype(str).unique()[:3].tolist()}); "
                         "give it kinds={...: 'categorical'}")
    values = values.to_numpy(np.float64)
    if kind == "positive":
        if (values <= 0).any():
            raise ValueError(f"column {name!r} cannot be positive: it holds values <= 0")
        values = np.log(values)
    if kind in ("real", "positive"):
        sd = float(values.std())
        if not sd > 0:
            raise ValueError(f"column {name!r} is constant; give it kinds={{{name!r}: "
                             "'constant'}} or drop it")
        return Column(name, kind, mean=float(values.mean()), sd=sd, dtype=dtype)
    return Column(name, kind, dtype=dtype)


@dataclass(frozen=True, eq=False)
class Table:
    """A table's schema and splits: what :func:`from_frame` returns.

    Attributes
    ----------
    columns : tuple of Column
    train, valid, test : Split
        Encoded rows (NaN where a cell is missing), for ``pv.fit(..., missing="mask")``.
    frames : dict
        The original rows of each split as DataFrames (``"train"``, ``"valid"``, ``"test"``).
    why : dict
        Column name -> why it has its kind (inferred from what, or given by ``kinds=``).

    Examples
    --------
    >>> import pandas as pd
    >>> t = from_frame(pd.DataFrame({"age": range(20, 80), "kids": [0, 1, 2] * 20}),
    ...                split=False, verbose=False)
    >>> print(t)
    Table of 2 columns (2 features), 60 rows
      age   real   integers 20 to 79, 60 levels, 0% zeros: a measurement, not a count
      kids  count  non-negative integers up to 2
    """

    columns: tuple
    train: Split = None
    valid: Split = None
    test: Split = None
    frames: dict = field(default_factory=dict, repr=False)
    why: dict = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        """A line per column: its name, kind and why (what :func:`from_frame` prints)."""
        wide = max([len(str(c.name)) for c in self.columns] + [1])
        kind = max([len(c.kind) for c in self.columns] + [1])
        return "\n".join(f"  {str(c.name):<{wide}}  {c.kind:<{kind}}  "
                         f"{self.why.get(c.name, '')}".rstrip() for c in self.columns)

    def __repr__(self) -> str:
        rows = sum(len(s) for s in (self.train, self.valid, self.test) if s is not None)
        parts = [f"{len(s)} {k}" for k, s in (("train", self.train), ("valid", self.valid),
                                               ("test", self.test)) if s is not None]
        where = f"{rows} rows" + (f" ({', '.join(parts)})" if len(parts) > 1 else "")
        return (f"Table of {len(self.columns)} columns ({self.width} features), {where}\n"
                + self.summary())

    @property
    def kinds(self) -> dict:
        return {c.name: c.kind for c in self.columns}

    @property
    def width(self) -> int:
        """Features of ``x`` (one-hot categoricals count K)."""
        return sum(c.width for c in self.columns)

    def encode(self, df, unseen="error") -> np.ndarray:
        """Rows of a DataFrame with these columns as the float matrix ``x`` (NaN: missing).

        A level a column never saw in training is an error naming it, or with
        ``unseen="missing"`` a missing cell (see :meth:`unseen_rows`).

        Examples
        --------
        >>> import pandas as pd
        >>> t = from_frame(pd.DataFrame({"a": [1.5, 2.0, 3.0, 3.5]}), split=False, verbose=False)
        >>> t.encode(pd.DataFrame({"a": [2.5]})).round(3).tolist()
        [[0.0]]
        """
        import pandas as pd
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame with columns {self.names}, got "
                            f"{type(df).__name__}")
        missing = [c for c in self.names if c not in df.columns]
        if missing:
            raise ValueError(f"the DataFrame lacks the columns {missing} this model was "
                             "trained on")
        blocks = [c.encode(df[c.name], unseen=unseen) for c in self.columns]
        return np.concatenate(blocks, axis=1).astype(np.float32) if blocks else \
            np.zeros((len(df), 0), np.float32)

    def decode(self, x, index=None):
        """The float matrix ``x`` (means or draws) back to a DataFrame in the original units,
        levels and dtypes."""
        import pandas as pd
        x = np.asarray(x)
        out, start = {}, 0
        for c in self.columns:
            out[c.name] = c.decode(x[:, start:start + c.width]).values
            start += c.width
        frame = pd.DataFrame(out, index=index)
        for c in self.columns:
            frame[c.name] = _as_dtype(frame[c.name], c.dtype)
        return frame

    def unseen_rows(self, df) -> tuple:
        """``(rows, levels)``: which rows hold a level never seen in training, and the unseen
        levels per column.

        Examples
        --------
        >>> import pandas as pd
        >>> t = from_frame(pd.DataFrame({"c": ["a", "b", "a", "b"]}), split=False, verbose=False)
        >>> t.unseen_rows(pd.DataFrame({"c": ["a", "z"]}))
        (array([False,  True]), {'c': ['z']})
        """
        rows, levels = np.zeros(len(df), bool), {}
        for c in self.columns:
            if c.name in df.columns:
                gone = c.unseen(df[c.name])
                if gone.any():
                    rows |= gone
                    levels[c.name] = sorted({str(v) for v in df[c.name][gone].tolist()})
        return rows, levels

    @property
    def names(self) -> list:
        return [c.name for c in self.columns]


def from_frame(df, kinds=None, seed=0, valid_fraction=0.1, test_fraction=0.2, split=True,
               stratify=None, verbose=True) -> Table:
    """A :class:`Table` from a pandas DataFrame: kinds inferred, rows encoded and split.

    Parameters
    ----------
    df : pandas.DataFrame
        Numbers, text, booleans and categories side by side; NaN/None are missing cells.
    kinds : dict, optional
        Column name -> kind, overriding the inferred one (e.g. ``{"year": "categorical"}``).
    seed : int
        Seeds the split.
    valid_fraction, test_fraction : float
        Shares of rows for validation and test (``split=False``: all rows in ``train``).
    stratify : str, optional
        A column to stratify the split by (e.g. the class).
    verbose : bool
        Print each column's kind and why, a line per column (the rule is in
        :mod:`probvae.data.tables`); ``kinds=`` fixes one that is wrong.

    Returns
    -------
    Table

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"n": [1, 2, 3, 4] * 5, "g": ["x", "y", "z", "x"] * 5})
    >>> t = from_frame(df, kinds={"n": "categorical"})
    from_frame: 2 columns, 20 rows
      n  categorical  given by kinds=
      g  categorical  3 levels
    >>> t.kinds, t.width, len(t.train) + len(t.valid) + len(t.test)
    ({'n': 'categorical', 'g': 'categorical'}, 7, 20)
    """
    import pandas as pd
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"from_frame takes a pandas DataFrame, got {type(df).__name__}")
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise ValueError(f"duplicate column names {dup}: rename them so each is unique")
    if len(df) < 2:
        raise ValueError(f"the table has {len(df)} row(s); it needs at least 2")
    kinds = dict(kinds or {})
    unknown = sorted(set(kinds) - set(df.columns))
    if unknown:
        raise ValueError(f"kinds= names columns that are not in the table: {unknown}")
    bad = {k: v for k, v in kinds.items() if v not in KINDS}
    if bad:
        raise ValueError(f"unknown kinds {bad}; kinds are {KINDS}")
    columns, why = [], {}
    for name in df.columns:
        series = df[name]
        kind, why[name] = (kinds[name], "given by kinds=") if kinds.get(name) else _infer(series)
        if kind == "constant" and name not in kinds:
            warnings.warn(f"column {name!r} holds one value ({series.dropna().iloc[0]!r}); it "
                          "is kept out of the model and restored as that value on decoding",
                          UserWarning, stacklevel=2)
        columns.append(_make_column(series, kind))
    columns = tuple(columns)
    table = Table(columns, why=why)
    if verbose:
        print(f"from_frame: {len(columns)} columns, {len(df)} rows\n{table.summary()}")
    x = table.encode(df)
    if not split:
        return Table(columns, Split(x), frames={"train": df}, why=why)
    idx = np.arange(len(df))
    strat = (df[stratify].astype(str).to_numpy() if stratify is not None
             else np.zeros(len(df), int))
    rest, test = _split_off(idx, strat, test_fraction, seed)
    train, valid = _split_off(rest, strat, valid_fraction / (1 - test_fraction), seed)
    parts = {k: np.sort(v) for k, v in (("train", train), ("valid", valid), ("test", test))}
    return Table(columns, *(Split(x[parts[k]]) for k in ("train", "valid", "test")),
                 frames={k: df.iloc[v] for k, v in parts.items()}, why=why)
