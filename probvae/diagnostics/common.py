"""What the diagnostics share: the k-hat threshold and how their inputs are read.

Examples
--------
>>> KHAT_THRESHOLD
0.7
"""
from __future__ import annotations

import numpy as np

from probvae.data import as_split

__all__ = ["KHAT_THRESHOLD"]

#: k-hat above this: importance sampling from q is unreliable for that observation
KHAT_THRESHOLD = 0.7


def _inputs(x, y):
    """``(data, x, labels)``: what to score (an array, NaN for missing cells, or a batch), its
    feature array, and the labels for the ``label`` coordinate (given, else the Split's)."""
    if isinstance(x, dict):                     # a batch (probvae.batch)
        return x, x["x"], (x.get("y") if y is None else np.asarray(y))
    split = as_split(x, allow_missing=True)
    return split.x, split.x, (split.y if y is None else np.asarray(y))
