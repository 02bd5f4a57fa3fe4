"""Calibration of yes/no probabilities: the top-label expected calibration error of the decision, the binary
calibration error of P(yes), and the reliability bins both are read from."""

from __future__ import annotations

import numpy as np


def expected_calibration_error(p_yes: np.ndarray, is_yes: np.ndarray, bins: int = 10) -> float:
    """ECE (Guo et al., 2017) of binary decisions: confidence = max(p, 1 - p) in ``bins`` equal-width bins,
    ECE = sum_b (n_b / N) |accuracy_b - confidence_b|."""
    p_yes, is_yes = np.asarray(p_yes, dtype=float), np.asarray(is_yes, dtype=bool)
    if len(p_yes) == 0:
        return float("nan")
    confidence = np.maximum(p_yes, 1 - p_yes)
    correct = (p_yes > 0.5) == is_yes
    edges = np.linspace(0.5, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


def binary_calibration_error(p_yes: np.ndarray, is_yes: np.ndarray, bins: int = 10) -> float | None:
    """Calibration error of the probability of the positive class itself: P(yes) in ``bins`` equal-width bins
    over [0, 1] (those of :func:`reliability_bins`), sum_b (n_b / N) |share of yes_b - mean P(yes)_b|."""
    table = reliability_bins(p_yes, is_yes, bins)
    total = sum(row["count"] for row in table)
    if total == 0:
        return None
    return float(sum(row["count"] / total * abs(row["share_yes"] - row["mean_p_yes"]) for row in table))


def reliability_bins(p_yes: np.ndarray, is_yes: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Predicted P(yes) in equal-width bins against the observed share of yes: the reliability diagram."""
    p_yes, is_yes = np.asarray(p_yes, dtype=float), np.asarray(is_yes, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p_yes, edges[1:-1], right=True), 0, bins - 1)
    return [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "count": int((index == b).sum()),
            "mean_p_yes": float(p_yes[index == b].mean()),
            "share_yes": float(is_yes[index == b].mean()),
        }
        for b in range(bins)
        if (index == b).any()
    ]
