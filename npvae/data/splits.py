"""Train / test splits: a seeded (and, with labels, class-stratified) random split, and an in-order one.

A split holds out round(n * test_fraction) items, with Python's round (halves go to the even
number); test_fraction must lie in [0, 1) and leave at least one training item.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def _check_test_fraction(test_fraction: float) -> float:
    """Validate 0 <= test_fraction < 1."""
    tf = float(test_fraction)
    if not 0.0 <= tf < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    return tf


def _stratified_counts(counts: np.ndarray, test_fraction: float, n_test: int) -> np.ndarray:
    """How many of each class to hold out so that the total is exactly n_test.

    Largest-remainder rounding: every class gets floor(count * test_fraction); the n_test - sum
    left over go one each to the classes with the largest fractional parts (ties: first class first).
    """
    quota = counts * test_fraction  # (K,)
    k = np.floor(quota).astype(np.int64)
    short = n_test - int(k.sum())
    order = np.argsort(-(quota - k), kind="stable")
    k[order[:short]] += 1
    return k


def split_indices(n: int, test_fraction: float, seed: int = 0, labels=None):
    """Seeded random split of range(n) into (train_idx, test_idx).

    round(n * test_fraction) items are held out (Python's round: halves go to the even number).
    With labels that are all known (>= 0) the split is stratified: each class gives about
    test_fraction of its members (see _stratified_counts); otherwise it is a plain permutation.
    Same seed -> same split.
    """
    tf = _check_test_fraction(test_fraction)
    rng = np.random.default_rng(seed)
    n_test = int(round(n * tf))
    if labels is not None and len(labels) == n and n > 0 and np.all(np.asarray(labels) >= 0):
        labels = np.asarray(labels)
        classes, counts = np.unique(labels, return_counts=True)
        per_class = _stratified_counts(counts, tf, n_test)
        train_parts, test_parts = [], []
        for cls, k in zip(classes, per_class):
            members = rng.permutation(np.flatnonzero(labels == cls))
            test_parts.append(members[:k])
            train_parts.append(members[k:])
        train_idx = rng.permutation(np.concatenate(train_parts))
        test_idx = rng.permutation(np.concatenate(test_parts))
    else:
        order = rng.permutation(n)
        train_idx, test_idx = order[n_test:], order[:n_test]
    if len(train_idx) == 0:
        raise ValueError(f"test_fraction={test_fraction} leaves no training examples out of {n}")
    return train_idx, test_idx


def ordered_split(n: int, test_fraction: float) -> Tuple[slice, slice]:
    """Split range(n) in order: the last round(n * test_fraction) items are the test part."""
    tf = _check_test_fraction(test_fraction)
    n_test = int(round(n * tf))
    if n - n_test <= 0:
        raise ValueError(f"test_fraction={test_fraction} leaves no training examples out of {n}")
    return slice(0, n - n_test), slice(n - n_test, n)
