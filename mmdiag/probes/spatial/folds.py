"""Shuffled K-fold splits, stratified or not: scikit-learn's ``StratifiedKFold`` / ``KFold`` splits, written out.

The spatial probe cuts thousands of fold splits per audit (every task, stage and label permutation). Here they
are the very index arrays scikit-learn 1.x returns for ``(n_splits, shuffle=True, random_state=seed)`` (the
same ``RandomState`` draws, in the same order; ``tests/test_spatial_folds.py`` compares them with scikit-learn
itself), without its per-call input validation and without importing scikit-learn (a second of an audit's
start). Pinning the algorithm here also keeps the folds, and so the spatial scores, fixed across scikit-learn
releases.
"""

from __future__ import annotations

import numpy as np


def stratified_kfold(labels: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays of ``StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(x, labels)``.

    Each class's members are dealt to the folds round-robin over the sorted labels, the fold numbers of each
    class shuffled (classes in order of first appearance); every class needs at least ``n_splits`` members.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    _, first_seen, inverse = np.unique(labels, return_index=True, return_inverse=True)
    _, class_order = np.unique(first_seen, return_inverse=True)
    encoded = class_order[inverse.reshape(-1)]
    n_classes = len(first_seen)
    if np.bincount(encoded).min() < n_splits:
        raise ValueError(f"every class needs at least {n_splits} members for stratified {n_splits}-fold splits")
    in_order = np.sort(encoded)
    allocation = np.asarray([np.bincount(in_order[i::n_splits], minlength=n_classes) for i in range(n_splits)])
    test_folds = np.empty(len(labels), dtype="i")
    for k in range(n_classes):
        folds_for_class = np.arange(n_splits).repeat(allocation[:, k])
        rng.shuffle(folds_for_class)
        test_folds[encoded == k] = folds_for_class
    indices = np.arange(len(labels))
    return [(indices[test_folds != i], indices[test_folds == i]) for i in range(n_splits)]


def kfold(n_samples: int, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays of ``KFold(n_splits, shuffle=True, random_state=seed).split(x)``: a shuffled
    order cut into consecutive folds, the first ``n_samples % n_splits`` one larger; indices ascending."""
    order = np.arange(n_samples)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(n_splits, n_samples // n_splits, dtype=int)
    sizes[: n_samples % n_splits] += 1
    indices = np.arange(n_samples)
    out = []
    start = 0
    for size in sizes:
        test = np.zeros(n_samples, dtype=bool)
        test[order[start : start + size]] = True
        out.append((indices[~test], indices[test]))
        start += size
    return out
