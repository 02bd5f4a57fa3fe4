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


GRAM_BLOCK = 1024  # features turned to float64 at a time when a Gram matrix is formed


def centred_gram(features: np.ndarray) -> np.ndarray:
    """[n, n] Gram matrix of n images' features ([n, ...], any float dtype) after centring each feature, in float64,
    formed a block of ``GRAM_BLOCK`` features at a time: the memory beyond the features is the [n, n] result and
    one [n, GRAM_BLOCK] block, whatever the width. Both similarity measures read only this matrix, so a caller
    forms it once per stage and drops the features."""
    x = features.reshape(len(features), -1)
    gram = np.zeros((len(x), len(x)))
    for start in range(0, x.shape[1], GRAM_BLOCK):
        block = x[:, start : start + GRAM_BLOCK].astype(np.float64)
        block -= block.mean(0)
        gram += block @ block.T
    return gram


def _hsic_parts(k: np.ndarray, copy: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """A Gram matrix with a zeroed diagonal, its row sums and its total (what unbiased HSIC needs); in place when
    ``copy`` is False."""
    k = k.copy() if copy else k
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
    return _cka(centred_gram(a), centred_gram(b))


def cka_with_null(a: np.ndarray, b: np.ndarray, seed: int = 0, permutations: int = PERMUTATIONS) -> Similarity:
    """Debiased linear CKA with a jackknife CI and a permutation null (images of ``b`` shuffled)."""
    return cka_of_grams(centred_gram(a), centred_gram(b), seed, permutations)


def cka_of_grams(k: np.ndarray, l: np.ndarray, seed: int = 0, permutations: int = PERMUTATIONS) -> Similarity:
    """:func:`cka_with_null` from the two stages' :func:`centred_gram` matrices (zeroed on the diagonal in place)."""
    n = len(k)
    if n < 6:
        return Similarity(None, None, None, None, None, n, f"{n} images: debiased CKA needs at least 6")
    kp, lp = _hsic_parts(k, copy=False), _hsic_parts(l, copy=False)
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


def _neighbours(gram: np.ndarray, k: int) -> np.ndarray:
    """[n, k]: the k nearest neighbours of each image (cosine of centred features, from their
    :func:`centred_gram`: ``K_ij / sqrt(K_ii K_jj)``), nearest first, ties to the lower index."""
    n = len(gram)
    norms = np.sqrt(np.clip(np.diagonal(gram), 0.0, None)) + 1e-12
    nearest = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, 256):  # a block of rows at a time: no [n, n] sort
        sims = gram[start : start + 256] / norms[start : start + 256, None] / norms[None, :]
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        nearest[start : start + len(sims)] = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return nearest


def knn_overlap_with_null(
    a: np.ndarray, b: np.ndarray, k: int = 10, seed: int = 0, permutations: int = PERMUTATIONS
) -> Similarity:
    """Mean share of each image's k nearest neighbours kept between two stages, with its null k / (n - 1)."""
    return knn_of_grams(centred_gram(a), centred_gram(b), k, seed, permutations)


def knn_of_grams(
    k_a: np.ndarray, k_b: np.ndarray, k: int = 10, seed: int = 0, permutations: int = PERMUTATIONS
) -> Similarity:
    """:func:`knn_overlap_with_null` from the two stages' :func:`centred_gram` matrices (read only).

    The permutation null counts, for each image ``i`` and each of its neighbours ``j`` in ``a``, whether ``π(j)`` is
    a neighbour of ``π(i)`` in ``b`` (the images of ``b`` shuffled): n·k look-ups per permutation."""
    n = len(k_a)
    if n <= k + 1:
        return Similarity(None, None, None, None, None, n, f"{n} images: {k}-NN overlap needs more than {k + 1}")
    na, nb = _neighbours(k_a, k), _neighbours(k_b, k)
    marks_b = np.zeros((n, n), dtype=bool)
    marks_b[np.arange(n)[:, None], nb] = True
    per_image = marks_b[np.arange(n)[:, None], na].sum(1) / k
    value = float(per_image.mean())
    rng = np.random.default_rng(seed)
    null = np.array(
        [
            float(marks_b[order[:, None], order[na]].sum()) / (n * k)
            for order in (rng.permutation(n) for _ in range(permutations))
        ]
    )
    p_value = float((1 + np.sum(null >= value)) / (1 + permutations))
    boot = np.array([per_image[rng.integers(0, n, n)].mean() for _ in range(1000)])
    low, high = (float(q) for q in np.quantile(boot, [0.025, 0.975]))
    return Similarity(value, low, high, k / (n - 1), p_value, n)
