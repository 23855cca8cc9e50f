"""Train/test splits without importing scikit-learn (which takes 1-2 s to import): the same
indices as ``sklearn.model_selection.train_test_split`` with an integer ``random_state`` and a
float ``test_size``, stratified or not, so the splits (and every figure measured on them) stay
as they were. tests/test_data.py checks them against scikit-learn.

>>> import numpy as np
>>> keep, taken, stratified = split_off(np.arange(10), np.array([0, 1] * 5), 0.2, seed=0)
>>> sorted(keep.tolist() + taken.tolist()) == list(range(10)), len(taken), stratified
(True, 2, True)
"""
from __future__ import annotations

import math

import numpy as np


def _approximate_mode(counts: np.ndarray, draws: int, rng) -> np.ndarray:
    """How many of ``draws`` go to each class, in proportion to ``counts`` (the remainders go
    to the largest fractional parts, ties broken by ``rng``), as scikit-learn's
    ``utils.extmath._approximate_mode``."""
    continuous = counts / counts.sum() * draws
    floored = np.floor(continuous)
    need = int(draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add = min(len(inds), need)
            floored[rng.choice(inds, size=add, replace=False)] += 1
            need -= add
            if need == 0:
                break
    return floored.astype(int)


def _stratified(y: np.ndarray, n_test: int, rng):
    """(train, test) positions of one stratified shuffle split (``StratifiedShuffleSplit``'s
    draws, in its order), or a string saying why it cannot be stratified."""
    n_train = len(y) - n_test
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        return (f"class {classes[counts.argmin()].item()!r} has {counts.min()} example; "
                "each class needs 2")
    for side, n in (("kept", n_train), ("split-off", n_test)):
        if n < len(classes):
            return (f"the {side} part would hold {n} examples for {len(classes)} classes; "
                    f"give it at least {len(classes)} of the {len(y)}")
    by_class = np.split(np.argsort(codes, kind="stable"), np.cumsum(counts)[:-1])
    n_i = _approximate_mode(counts, n_train, rng)
    t_i = _approximate_mode(counts - n_i, n_test, rng)
    train, test = [], []
    for i in range(len(classes)):
        members = by_class[i].take(rng.permutation(counts[i]), mode="clip")
        train.extend(members[: n_i[i]])
        test.extend(members[n_i[i]: n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def split_off(idx: np.ndarray, y: np.ndarray | None, size: float, seed: int):
    """Split ``idx`` in two at random, stratified by ``y[idx]`` where every class can be.

    Parameters
    ----------
    idx : int array (N,)
        The positions to split.
    y : int array or None
        Labels indexed by ``idx`` (``y[idx]``); None for a plain split.
    size : float
        The fraction to split off: ``ceil(size * N)`` positions.
    seed : int
        As scikit-learn's ``random_state``.

    Returns
    -------
    keep, taken : int arrays
        The rest of ``idx``, and the part split off.
    stratified : True, or str
        True when stratified; else why not (the split is then plain).

    Examples
    --------
    >>> keep, taken, stratified = split_off(np.arange(6), np.array([0, 0, 0, 1, 1, 1]),
    ...                                     0.5, seed=1)
    >>> stratified, sorted(np.array([0, 0, 0, 1, 1, 1])[taken].tolist())
    (True, [0, 1, 1])
    >>> split_off(np.arange(4), np.array([0, 1, 2, 2]), 0.5, seed=0)[2]
    'class 0 has 1 example; each class needs 2'
    """
    n_test = math.ceil(size * len(idx))
    if not 0 < n_test < len(idx):
        raise ValueError(f"splitting off {size} of {len(idx)} examples leaves one part empty; "
                         f"pass a size between {1 / len(idx):.3g} and {1 - 1 / len(idx):.3g}")
    why = None
    if y is not None:
        parts = _stratified(np.asarray(y)[idx], n_test, np.random.RandomState(seed))
        if not isinstance(parts, str):
            return idx[parts[0]], idx[parts[1]], True
        why = parts
    perm = np.random.RandomState(seed).permutation(len(idx))
    return idx[perm[n_test:]], idx[perm[:n_test]], why
