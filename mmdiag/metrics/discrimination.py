"""Threshold-free discrimination: the AUROC of P(yes) between questions whose answer is yes and those whose answer is
no, with a bootstrap CI over clusters (scenes).

The AUROC is the Mann-Whitney statistic from average ranks (ties count one half), the number scikit-learn's
``roc_auc_score`` gives (tested against it); computed from ranks it costs one sort, which the bootstrap repeats
a thousand times."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP = 1000


def auroc(scores: Sequence[float], truth: Sequence[bool]) -> float | None:
    """P(a yes question's score > a no question's score), ties one half; ``None`` without both kinds."""
    truth = np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return None
    _, inverse, counts = np.unique(np.asarray(scores, dtype=float), return_inverse=True, return_counts=True)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])  # 0-based position of each distinct value's first copy
    ranks = (first + (counts + 1) / 2)[inverse]  # average 1-based rank of each score
    positives = int(truth.sum())
    negatives = len(truth) - positives
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def cluster_indices(clusters: Sequence[str]) -> list[np.ndarray]:
    """Row indices of each cluster, in order of first appearance."""
    order: dict[str, list[int]] = {}
    for i, cluster in enumerate(clusters):
        order.setdefault(cluster, []).append(i)
    return [np.asarray(rows) for rows in order.values()]


def auroc_ci(
    scores: Sequence[float], truth: Sequence[bool], clusters: Sequence[str], seed: int, n: int = BOOTSTRAP
) -> tuple[float | None, float | None, float | None]:
    """The AUROC and its 95% percentile CI, resampling whole clusters (the questions of one scene together)."""
    value = auroc(scores, truth)
    if value is None:
        return None, None, None
    scores, truth = np.asarray(scores, dtype=float), np.asarray(truth, dtype=bool)
    groups = cluster_indices(clusters)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n):
        rows = np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))])
        drawn = auroc(scores[rows], truth[rows])
        if drawn is not None:
            draws.append(drawn)
    if not draws:
        return value, None, None
    low, high = np.percentile(draws, [2.5, 97.5])
    return value, float(low), float(high)
