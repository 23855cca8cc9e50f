"""What the two backends' ``Columns`` distributions share: parts laid over slices of ``x``.

Each part is ``(width, kind, distribution)``: a column taking ``width`` consecutive features of
``x`` (``kind="category"``: a one-hot block scored by its argmax; ``"value"``: one feature),
with an optional mask per column (False where the cell is missing).

Examples
--------
>>> class Row(ColumnParts):
...     def __init__(self, parts):
...         self.width = self._set_parts(parts, None)
>>> r = Row([(1, "value", "d0"), (3, "category", "d1")])
>>> r.width, [(start, width, kind) for start, width, kind, _, _ in r._slices()]
(4, [(0, 1, 'value'), (1, 3, 'category')])
"""
from __future__ import annotations

__all__ = ["ColumnParts"]


class ColumnParts:
    """Mixin: the parts and masks of a row of columns, and their slices of ``x``."""

    def _set_parts(self, parts, masks) -> int:
        """Keep ``parts`` and ``masks`` (None: every cell observed); return the total width."""
        self.parts = list(parts)
        self.masks = list(masks) if masks is not None else [None] * len(self.parts)
        return sum(w for w, _, _ in self.parts)

    def _slices(self):
        """Yield ``(start, width, kind, distribution, mask)`` for every column."""
        start = 0
        for (width, kind, d), mask in zip(self.parts, self.masks):
            yield start, width, kind, d, mask
            start += width
