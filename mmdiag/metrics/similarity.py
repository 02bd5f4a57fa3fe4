"""Representation similarity between two stages over the same n images, each with its null.

* **Debiased linear CKA** (Kornblith et al. 2019, with the unbiased HSIC estimator of Song et al. 2012, as
  ``feature_space_linear_cka(..., debiased=True)`` in Kornblith's reference notebook computes it): biased CKA is
  far from 0 for independent features when n is small against the width (0.95 for two independent 1024-d
  matrices of 48 rows); the debiased one is near 0 there. CI: jackknife over images; null: the same statistic
  with the images of one side permuted (its mean, and a one-sided permutation p-value).
* **kNN overlap**: the mean share of each image's k nearest neighbours (cosine, centred features) kept between
  the two stages. Null: k / (n - 1), the overlap of unrelated neighbour sets; p-value from permuting the images
  of one side; CI: bootstrap over images of the per-image overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERMUTATIONS = 500
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Similarity:
    """A similarity, its 95% CI, its null value and p-value against that null, and the n behind it."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    null: float | None
    p_value: float | None
    n: int
    undefined: str | None = None


def _gram(features: np.ndarray) -> np.ndarray:
    x = features.reshape(len(features), -1).astype(np.float64)
    x = x - x.mean(0)
    return x @ x.T


def _hsic_parts(k: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """A Gram matrix with a zeroed diagonal, its row sums and its total (what unbiased HSIC needs)."""
    k = k.copy()
    np.fill_diagonal(k, 0.0)
    rows = k.sum(1)
    return k, rows, float(rows.sum())


def _hsic(kp: tuple[np.ndarray, np.ndarray, float], lp: tuple[np.ndarray, np.ndarray, float]) -> float:
    """Unbiased HSIC (Song et al. 2012, eq. 5) from the parts of two Gram matrices, in O(n^2)."""
    k, k_rows, k_sum = kp
    l, l_rows, l_sum = lp
    n = len(k)
    trace = float((k * l).sum())  # tr(K L) for symmetric K, L
    return (trace + k_sum * l_sum / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(k_rows @ l_rows)) / (n * (n - 3))


def _cka(k: np.ndarray, l: np.ndarray) -> float | None:
    kp, lp = _hsic_parts(k), _hsic_parts(l)
    denominator = _hsic(kp, kp) * _hsic(lp, lp)
    return _hsic(kp, lp) / float(np.sqrt(denominator)) if denominator > 0 else None


def _hsic_leave_one_out(
    kp: tuple[np.ndarray, np.ndarray, float], lp: tuple[np.ndarray, np.ndarray, float]
) -> np.ndarray:
    """Unbiased HSIC with each image left out in turn, [n], in O(n^2) in all (not n HSICs of n-1 images).

    For zero-diagonal symmetric K, L with row sums r, s and totals S_K, S_L, leaving image i out gives
    tr(KL) - 2 (K∘L 1)_i, totals S_K - 2 r_i and S_L - 2 s_i, and row sums r - K e_i, s - L e_i, so the
    product of the row sums is r·s - (K s)_i - (L r)_i + (K∘L 1)_i - r_i s_i (``tests/test_similarity.py``
    compares it with the direct computation)."""
    k, r, k_sum = kp
    l, s, l_sum = lp
    m = len(k) - 1  # images left
    cross = (k * l).sum(1)  # (K∘L 1)_i
    trace = float(cross.sum()) - 2.0 * cross
    sums = (k_sum - 2.0 * r) * (l_sum - 2.0 * s)
    rows = float(r @ s) - k @ s - l @ r + cross - r * s
    return (trace + sums / ((m - 1) * (m - 2)) - 2.0 / (m - 2) * rows) / (m * (m - 3))


def _cka_leave_one_out(
    kp: tuple[np.ndarray, np.ndarray, float], lp: tuple[np.ndarray, np.ndarray, float]
) -> np.ndarray:
    """Debiased CKA with each image left out in turn, [n] (NaN where a stage has no variance left)."""
    kl, kk, ll = _hsic_leave_one_out(kp, lp), _hsic_leave_one_out(kp, kp), _hsic_leave_one_out(lp, lp)
    scale = kk * ll
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, kl / np.sqrt(np.where(scale > 0, scale, 1.0)), np.nan)


def debiased_cka(a: np.ndarray, b: np.ndarray) -> float | None:
    """Debiased linear CKA between [n, ...] and [n, ...] features of the same n images (None for n < 4)."""
    if len(a) < 4:
        return None
    return _cka(_gram(a), _gram(b))


def cka_with_null(a: np.ndarray, b: np.ndarray, seed: int = 0, permutations: int = PERMUTATIONS) -> Similarity:
    """Debiased linear CKA with a jackknife CI and a permutation null (images of ``b`` shuffled)."""
    n = len(a)
    if n < 6:
        return Similarity(None, None, None, None, None, n, f"{n} images: debiased CKA needs at least 6")
    k, l = _gram(a), _gram(b)
    kp, lp = _hsic_parts(k), _hsic_parts(l)
    scale = _hsic(kp, kp) * _hsic(lp, lp)
    if scale <= 0:
        return Similarity(None, None, None, None, None, n, "a stage has no variance across images")
    value = _hsic(kp, lp) / float(np.sqrt(scale))
    rng = np.random.default_rng(seed)
    null = np.empty(permutations)
    l_zero, l_rows, l_sum = lp
    for i in range(permutations):
        order = rng.permutation(n)
        # the images of b shuffled: L's rows and columns permuted together (its zero diagonal stays zero, its row
        # sums are permuted, its total is unchanged), so only the trace term needs the permuted matrix
        null[i] = _hsic(kp, (l_zero[np.ix_(order, order)], l_rows[order], l_sum)) / float(np.sqrt(scale))
    p_value = float((1 + np.sum(null >= value)) / (1 + permutations))
    jack = _cka_leave_one_out(kp, lp)
    jack = jack[np.isfinite(jack)]
    se = float(np.sqrt((n - 1) / n * np.sum((jack - jack.mean()) ** 2))) if len(jack) == n else None
    low, high = (value - Z95 * se, value + Z95 * se) if se is not None else (None, None)
    return Similarity(value, low, high, float(null.mean()), p_value, n)


def _neighbours(x: np.ndarray, k: int) -> np.ndarray:
    """Boolean [n, n]: row i marks the k nearest neighbours of image i (cosine of centred features)."""
    n = len(x)
    x = x.reshape(n, -1).astype(np.float64)
    x = x - x.mean(0)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    marks = np.zeros((n, n), dtype=bool)
    marks[np.arange(n)[:, None], nearest] = True
    return marks


def knn_overlap_with_null(
    a: np.ndarray, b: np.ndarray, k: int = 10, seed: int = 0, permutations: int = PERMUTATIONS
) -> Similarity:
    """Mean share of each image's k nearest neighbours kept between two stages, with its null k / (n - 1)."""
    n = len(a)
    if n <= k + 1:
        return Similarity(None, None, None, None, None, n, f"{n} images: {k}-NN overlap needs more than {k + 1}")
    na, nb = _neighbours(a, k), _neighbours(b, k)
    per_image = (na & nb).sum(1) / k
    value = float(per_image.mean())
    rng = np.random.default_rng(seed)
    null = np.array(
        [
            float((na & nb[np.ix_(order, order)]).sum()) / (n * k)
            for order in (rng.permutation(n) for _ in range(permutations))
        ]
    )
    p_value = float((1 + np.sum(null >= value)) / (1 + permutations))
    boot = np.array([per_image[rng.integers(0, n, n)].mean() for _ in range(1000)])
    low, high = (float(q) for q in np.quantile(boot, [0.025, 0.975]))
    return Similarity(value, low, high, k / (n - 1), p_value, n)
