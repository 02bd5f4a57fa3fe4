"""Bootstrap confidence intervals, resampling clusters (images) rather than rows when asked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    clusters: Sequence[object] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic(values)``; rows sharing a cluster id are resampled together.

    ``values`` may be 1-D or [n, ...]; ``statistic`` receives the resampled rows.
    """
    values = np.asarray(values)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    if clusters is None:
        groups = [np.array([i]) for i in range(len(values))]
    else:
        ids: dict[object, list[int]] = {}
        for i, c in enumerate(clusters):
            ids.setdefault(c, []).append(i)
        groups = [np.array(v) for v in ids.values()]
    stats = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, len(groups), size=len(groups))
        rows = np.concatenate([groups[g] for g in pick])
        stats[b] = statistic(values[rows])
    alpha = (1 - level) / 2
    return float(np.nanquantile(stats, alpha)), float(np.nanquantile(stats, 1 - alpha))


def bootstrap_ci_columns(matrix: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> np.ndarray:
    """Per-column CI of the mean of an [n, k] matrix, resampling rows jointly: returns [k, 2]."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape[0] == 0:
        return np.full((matrix.shape[1], 2), np.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, matrix.shape[0], size=(n_boot, matrix.shape[0]))
    means = matrix[picks].mean(axis=1)  # [n_boot, k]
    alpha = (1 - level) / 2
    return np.stack([np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)], axis=1)
