"""Debiased CKA and kNN overlap: the authors' own numbers, the nulls, and what biased CKA gets wrong."""

from __future__ import annotations

import numpy as np
import pytest

from mmdiag.metrics.similarity import cka_with_null, debiased_cka, knn_overlap_with_null


def kornblith_inputs() -> tuple[np.ndarray, np.ndarray]:
    """The inputs of the reference notebook (google-research representation_similarity/Demo.ipynb)."""
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    return x, y


def test_debiased_cka_gives_the_reference_notebooks_printed_value():
    # "Linear CKA from Features (Debiased): 0.51346", printed by Kornblith et al.'s own code on these inputs
    x, y = kornblith_inputs()
    assert round(debiased_cka(x, y), 5) == 0.51346


def biased_cka(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(0), b - b.mean(0)
    return float(np.linalg.norm(a.T @ b) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


def test_independent_wide_features_are_near_zero_and_not_significant():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((48, 1024)), rng.standard_normal((48, 1024))
    assert biased_cka(a, b) > 0.9  # the inflation the debiased estimator removes
    result = cka_with_null(a, b, seed=1)
    assert abs(result.value) < 0.05 and result.ci_low < 0 < result.ci_high
    assert abs(result.null) < 0.02 and result.p_value > 0.05 and result.n == 48


def test_shared_structure_is_found_and_beats_its_null():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((48, 32))
    b = np.concatenate([a @ rng.standard_normal((32, 32)), 0.1 * rng.standard_normal((48, 8))], axis=1)
    result = cka_with_null(a, b, seed=2)
    assert result.value > 0.5 and result.ci_low > result.null and result.p_value < 0.01
    same = cka_with_null(a, a, seed=2)
    assert same.value == pytest.approx(1.0)


def test_knn_overlap_null_is_k_over_n_minus_one_and_its_p_value_is_calibrated():
    values, significant = [], 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        a, b = rng.standard_normal((60, 20)), rng.standard_normal((60, 20))
        unrelated = knn_overlap_with_null(a, b, k=10, seed=seed, permutations=200)
        assert unrelated.null == pytest.approx(10 / 59)
        values.append(unrelated.value)
        significant += unrelated.p_value < 0.05
    assert abs(np.mean(values) - 10 / 59) < 0.01
    assert significant <= 6  # about 5% of 40 under the null (binomial 95th percentile is 4)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((60, 20))
    same = knn_overlap_with_null(a, 2 * a, k=10, seed=4)
    assert same.value == 1.0 and same.p_value < 0.01


def test_too_few_images_are_undefined_with_a_reason():
    a = np.zeros((5, 3))
    assert cka_with_null(a, a).value is None and "at least 6" in cka_with_null(a, a).undefined
    assert knn_overlap_with_null(a, a).value is None and knn_overlap_with_null(a, a).undefined


def test_leave_one_out_cka_equals_recomputing_without_each_image():
    """The jackknife's O(n^2) leave-one-out CKA against n direct CKAs of n-1 images."""
    from mmdiag.metrics.similarity import _cka, _cka_leave_one_out, _hsic_parts, centred_gram

    rng = np.random.default_rng(5)
    a = rng.normal(size=(23, 7, 5))
    b = a.reshape(23, -1)[:, :20] + rng.normal(size=(23, 20))
    k, l = centred_gram(a), centred_gram(b)
    fast = _cka_leave_one_out(_hsic_parts(k), _hsic_parts(l))
    keep = np.ones(23, dtype=bool)
    for i in range(23):
        keep[i] = False
        np.testing.assert_allclose(fast[i], _cka(k[np.ix_(keep, keep)], l[np.ix_(keep, keep)]), rtol=1e-10)
        keep[i] = True
