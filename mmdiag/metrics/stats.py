"""Bootstrap confidence intervals, resampling clusters (images) rather than rows when asked."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    clusters: Sequence[object] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    of_draws: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic(values)``; rows sharing a cluster id are resampled together.

    ``values`` may be 1-D or [n, ...]; ``statistic`` receives the resampled rows. ``of_draws`` (rows resampled
    independently only) computes the statistic of every draw at once from the [n_boot, n] row indices; it must
    agree with ``statistic`` and replaces it (same draws, same CI, without a Python call per draw).
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
    if clusters is None and statistic is np.mean and of_draws is None:  # the same draws, the same means, at once
        stats = values[rng.integers(0, len(values), size=(n_boot, len(values)))].reshape(n_boot, -1).mean(axis=1)
    elif clusters is None and of_draws is not None:
        stats = np.asarray(of_draws(resample_indices(seed, len(values), n_boot)), dtype=float)
    else:
        stats = np.empty(n_boot)
        for b in range(n_boot):
            pick = rng.integers(0, len(groups), size=len(groups))
            rows = np.concatenate([groups[g] for g in pick])
            stats[b] = statistic(values[rows])
    alpha = (1 - level) / 2
    return float(np.nanquantile(stats, alpha)), float(np.nanquantile(stats, 1 - alpha))


GATHERED = 2**20  # resampled values gathered at once (8 MiB of float64), whatever the number of rows


def over_draw_blocks(
    draws: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], values_per_draw: int
) -> np.ndarray:
    """``statistic`` of bootstrap draws ([n_draws, n] row indices), a block of draws at a time so that about
    ``GATHERED`` resampled values are held at once: the same values as one call on all draws (each draw's statistic
    reads its own row only), with memory that does not grow with the number of rows."""
    block = max(1, GATHERED // max(1, values_per_draw))
    parts = [statistic(draws[start : start + block]) for start in range(0, len(draws), block)]
    return np.concatenate(parts) if parts else statistic(draws)


CACHED_DRAWS = 2**20  # resample indices kept for reuse up to this many entries (8 MiB) per (seed, n, n_boot)


def resample_indices(seed: int, n: int, n_boot: int) -> np.ndarray:
    """[n_boot, n] bootstrap row indices from ``default_rng(seed)``, drawn one resample at a time exactly as a
    loop of ``rng.integers(0, n, size=n)`` draws them (one [n_boot, n] call draws a different stream when n is
    odd). They depend on (seed, n, n_boot) only, so small ones are drawn once and shared (read-only); large ones
    (thousands of scenes) are drawn again rather than kept."""
    if n * n_boot <= CACHED_DRAWS:
        return _cached_resample_indices(seed, n, n_boot)
    return _draw_resample_indices(seed, n, n_boot)


@functools.lru_cache(maxsize=32)
def _cached_resample_indices(seed: int, n: int, n_boot: int) -> np.ndarray:
    return _draw_resample_indices(seed, n, n_boot)


def _draw_resample_indices(seed: int, n: int, n_boot: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.integers(0, n, size=n) for _ in range(n_boot)])
    draws.setflags(write=False)
    return draws


def bootstrap_ci_columns(matrix: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> np.ndarray:
    """Per-column CI of the mean of an [n, k] matrix, resampling rows jointly: returns [k, 2]."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape[0] == 0:
        return np.full((matrix.shape[1], 2), np.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, matrix.shape[0], size=(n_boot, matrix.shape[0]))
    means = over_draw_blocks(picks, lambda rows: matrix[rows].mean(axis=1), matrix.size)  # [n_boot, k]
    alpha = (1 - level) / 2
    return np.stack([np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)], axis=1)


def mcnemar(before: Sequence[bool], after: Sequence[bool]) -> dict[str, float | int]:
    """Exact McNemar test on paired binary outcomes (e.g. correct on the original vs on the edited image).

    ``b`` counts pairs right before and wrong after, ``c`` the reverse; the two-sided p-value is the exact
    binomial probability of a split at least as uneven as (b, c) under p = 1/2 (McNemar 1947, exact form).
    """
    before_a, after_a = np.asarray(before, dtype=bool), np.asarray(after, dtype=bool)
    if before_a.shape != after_a.shape:
        raise ValueError("paired outcomes differ in length")
    b = int((before_a & ~after_a).sum())
    c = int((~before_a & after_a).sum())
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "p_value": 1.0}
    k = min(b, c)
    log_terms = [_log_binom(n, i) - n * np.log(2.0) for i in range(k + 1)]
    tail = float(np.exp(np.logaddexp.reduce(log_terms)))
    return {"b": b, "c": c, "p_value": min(1.0, 2 * tail)}


CLUSTER_FLIPS = 20_000  # Monte Carlo sign flips when there are too many clusters to enumerate
EXACT_CLUSTERS = 16


def mcnemar_clustered(
    before: Sequence[bool], after: Sequence[bool], clusters: Sequence[str], seed: int = 0
) -> dict[str, Any]:
    """McNemar's test for paired binary outcomes that come in clusters (several questions about one image).

    Per cluster, d = (pairs right before and wrong after) - (wrong before and right after). Under the null of
    no change the before/after labels are exchangeable within a pair, so each cluster's d is equally likely
    to carry either sign, whatever the dependence inside the cluster: the two-sided p-value is the share of
    sign flips of the clusters whose |sum| reaches the observed one (exact for up to ``EXACT_CLUSTERS``
    clusters with a non-zero d, else ``CLUSTER_FLIPS`` seeded Monte Carlo flips, p = (1 + hits) / (1 + flips)).
    With one pair per cluster it is the exact McNemar test. ``independent_p_value`` is McNemar treating every
    pair as independent, for comparison.
    """
    before_a, after_a = np.asarray(before, dtype=bool), np.asarray(after, dtype=bool)
    if before_a.shape != after_a.shape or len(clusters) != len(before_a):
        raise ValueError("paired outcomes and clusters differ in length")
    plain = mcnemar(before_a, after_a)
    per_cluster: dict[str, int] = {}
    for cluster, was, now in zip(clusters, before_a, after_a):
        per_cluster[cluster] = per_cluster.get(cluster, 0) + int(was and not now) - int(now and not was)
    d = np.array([v for v in per_cluster.values() if v != 0], dtype=float)
    out = {
        "b": plain["b"],
        "c": plain["c"],
        "clusters": len(per_cluster),
        "discordant_clusters": int(len(d)),
        "independent_p_value": plain["p_value"],
    }
    if len(d) == 0:
        return {**out, "p_value": 1.0, "method": "no discordant cluster"}
    observed = abs(d.sum())
    if len(d) <= EXACT_CLUSTERS:
        signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)
        totals = np.abs(signs @ d)
        return {**out, "p_value": float(np.mean(totals >= observed - 1e-9)), "method": "exact cluster sign flips"}
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(CLUSTER_FLIPS, len(d)))
    hits = int(np.sum(np.abs(signs @ d) >= observed - 1e-9))
    return {**out, "p_value": (1 + hits) / (1 + CLUSTER_FLIPS), "method": f"{CLUSTER_FLIPS} seeded cluster sign flips"}


def _log_binom(n: int, k: int) -> float:
    from math import lgamma

    return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)
