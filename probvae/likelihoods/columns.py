"""The table likelihood: one registered likelihood per column, over that column's slice of x."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import Column, Table
from ..networks import Head
from .base import Likelihood, register

__all__ = ["Columns"]


@register("columns")
@dataclass(frozen=True)
class Columns(Likelihood):
    """A table row: one likelihood per column, over that column's slice of ``x``.

    Made from a table's schema (``pv.data.from_frame(df).columns``, or
    ``pv.models.VAE.for_table(table)`` does it): real and positive columns get a Gaussian
    with a learned scale per column (on standardised values; the log scale for positive
    ones), counts a negative binomial, binary columns a Bernoulli and categorical ones a
    categorical over their K one-hot features. A missing cell leaves its whole column out of
    the bound. The columns also turn ``x`` back into a DataFrame (:meth:`decode`).

    Parameters
    ----------
    columns : tuple of Column (or their config dicts)
    min_scale : float
        Floor of the learned scales (in standard deviations of the column).

    Examples
    --------
    >>> import pandas as pd
    >>> from probvae.data import from_frame
    >>> table = from_frame(pd.DataFrame({"v": [0.5, 1.5, 2.5, 4.0], "c": ["a", "b", "c", "a"]}),
    ...                    split=False, verbose=False)
    >>> lik = Columns(table.columns)
    >>> [h.name for h in lik.heads(table.width)]
    ['v:loc', 'c:logits']
    """

    columns: tuple = ()
    min_scale: float = 0.05
    support = "table"

    def __post_init__(self):
        cols = tuple(c if isinstance(c, Column) else Column(**c) for c in self.columns)
        object.__setattr__(self, "columns", cols)
        if not cols:
            raise ValueError("Columns needs at least one column (a table's schema)")
        if not self.min_scale > 0:
            raise ValueError(f"columns needs min_scale > 0, got {self.min_scale}")

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)

    def heads(self, dim):
        if dim != self.width:
            raise ValueError(f"the table's columns take {self.width} features, the model has "
                             f"{dim}")
        heads = []
        for c in self.columns:
            if c.kind in ("real", "positive"):
                heads.append(Head(f"{c.name}:loc", 1))
            elif c.kind == "count":
                heads += [Head(f"{c.name}:total_count", 1, "positive"),
                          Head(f"{c.name}:logits", 1)]
            elif c.kind in ("binary", "categorical"):
                heads.append(Head(f"{c.name}:logits", c.width))
        return tuple(heads)

    def base(self, bk, params, prefix="likelihood"):
        raise TypeError("a table's likelihood is not one distribution per feature; use "
                        "distribution()")

    def distribution(self, bk, params, mask=None, prefix="likelihood"):
        real = [c for c in self.columns if c.kind in ("real", "positive")]
        scale = None
        if real:
            scale = bk.param(f"{prefix}_scale", np.ones(len(real), np.float32),
                             constraint=bk.constraints.greater_than(float(self.min_scale)))
        parts, masks, start, j, r = [], [], 0, 0, 0
        for c in self.columns:
            if c.kind == "constant":
                continue
            if c.kind in ("real", "positive"):
                parts.append((1, "value", bk.dist.Normal(params[j][..., 0], scale[r])))
                j, r = j + 1, r + 1
            elif c.kind == "count":
                parts.append((1, "value", bk.dist.NegativeBinomial(
                    params[j][..., 0], logits=params[j + 1][..., 0])))
                j += 2
            elif c.kind == "binary":
                parts.append((1, "value", bk.dist.Bernoulli(logits=params[j][..., 0])))
                j += 1
            else:
                parts.append((c.width, "category", bk.dist.Categorical(logits=params[j])))
                j += 1
            masks.append(None if mask is None else mask[..., start])
            start += c.width
        return bk.dist.Columns(parts, masks if mask is not None else None)

    def check(self, x, mask=None):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"x must be (rows, {self.width}) encoded table rows, got {x.shape}; "
                             "encode a DataFrame with the table (table.encode(df))")
        if mask is not None:
            x = np.where(mask, x, np.float32(self.fill))
        if not np.isfinite(x).all():
            raise ValueError("the table has missing cells (NaN); pass missing='mask' to leave "
                             "them out of the bound")
        start = 0
        for c in self.columns:
            block = x[:, start:start + c.width]
            if c.kind == "binary" and not np.isin(block, (0.0, 1.0)).all():
                raise ValueError(f"column {c.name!r} is binary: values must be 0 or 1")
            if c.kind == "count" and ((block < 0) | (block != np.round(block))).any():
                raise ValueError(f"column {c.name!r} holds counts: values must be integers >= 0")
            if c.kind == "categorical":
                sums = block.sum(axis=1)
                if not np.isin(block, (0.0, 1.0)).all() or not np.isin(sums, (0.0, 1.0)).all():
                    raise ValueError(f"column {c.name!r} is categorical: its {c.width} features "
                                     "must be one-hot")
            start += c.width
        return x

    def table(self):
        """The schema as a :class:`~probvae.data.Table` (encode and decode DataFrames)."""
        return Table(self.columns)

    def decode(self, x, index=None):
        """Encoded rows (means or draws) back to a DataFrame in the original units."""
        return self.table().decode(x, index=index)

    def encode(self, df):
        """A DataFrame with these columns as encoded rows (NaN where missing)."""
        return self.table().encode(df)
