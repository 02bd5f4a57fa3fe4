"""Statistics of the information-flow probe: paired changes per condition with cluster-bootstrap CIs (scenes are the
clusters), simultaneous over a family of conditions (Bonferroni), and the layer indices they decide."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdiag.metrics.stats import resample_indices

DRAWS = 1000


@dataclass(frozen=True)
class Change:
    """The mean paired change of one condition, its CI and whether the CI excludes 0."""

    value: float
    ci_low: float
    ci_high: float

    @property
    def detectable(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def changes(deltas: list[np.ndarray], seed: int = 0, level: float = 0.95, family: int = 1) -> list[Change]:
    """Per condition (columns), the mean over every question of the per-question changes, with a percentile CI from
    one cluster bootstrap over scenes (``deltas[e]``: [questions of scene e, conditions]); ``family`` conditions
    share the error rate (Bonferroni: each CI at level ``1 - (1 - level) / family``)."""
    sums = np.stack([d.sum(axis=0) for d in deltas])  # [scenes, conditions]
    counts = np.array([len(d) for d in deltas], dtype=float)
    value = sums.sum(axis=0) / counts.sum()
    draws = resample_indices(seed, len(deltas), DRAWS)
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)[:, None]  # [draws, conditions]
    alpha = (1 - level) / family / 2
    low, high = np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)
    return [Change(float(v), float(lo), float(hi)) for v, lo, hi in zip(value, low, high)]


def read_until(windows: list[Change], starts: list[int], width: int) -> int:
    """The first layer from which no window (starting there or later) changes anything detectably: the end of the
    last detectable window, 0 when none is."""
    detectable = [start for start, change in zip(starts, windows) if change.detectable]
    return max(detectable) + width if detectable else 0


def first_safe(changes_by_layer: list[Change], layers: list[int]) -> int | None:
    """The first layer from which every later one's change is undetectable (``None``: even the last one's is)."""
    safe = None
    for layer, change in reversed(list(zip(layers, changes_by_layer))):
        if change.detectable:
            break
        safe = layer
    return safe
