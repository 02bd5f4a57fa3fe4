"""Clustered McNemar and the calibration errors against independent references (scipy, hand counts)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from mmdiag.metrics.calibration import (
    binary_calibration_error,
    expected_calibration_error,
)
from mmdiag.metrics.stats import mcnemar_clustered


@pytest.mark.parametrize("b, c", [(4, 0), (7, 2), (10, 1), (3, 3), (25, 12)])
def test_one_pair_per_image_is_the_exact_mcnemar_test(b, c):
    before = [True] * b + [False] * c + [True] * 5
    after = [False] * b + [True] * c + [True] * 5
    clusters = [f"img{i}" for i in range(len(before))]
    result = mcnemar_clustered(before, after, clusters, seed=0)
    exact = binomtest(b, b + c, 0.5).pvalue  # scipy's exact binomial test: McNemar's exact form
    tolerance = 0 if b + c <= 16 else 0.01  # Monte Carlo above 16 discordant clusters
    assert result["p_value"] == pytest.approx(exact, abs=tolerance + 1e-12)
    assert result["independent_p_value"] == pytest.approx(exact)


def test_repeated_questions_about_one_image_are_not_independent_evidence():
    """Five identical discordant pairs per image carry the evidence of one: the clustered p-value says so."""
    one = mcnemar_clustered([True] * 6 + [False], [False] * 6 + [True], [f"i{k}" for k in range(7)])
    before = [was for was in [True] * 6 + [False] for _ in range(5)]
    after = [now for now in [False] * 6 + [True] for _ in range(5)]
    clusters = [f"i{k}" for k in range(7) for _ in range(5)]
    five = mcnemar_clustered(before, after, clusters)
    assert five["p_value"] == pytest.approx(one["p_value"]) == pytest.approx(binomtest(6, 7, 0.5).pvalue)
    assert five["independent_p_value"] < five["p_value"] / 100  # what treating them as independent claims
    assert five["clusters"] == 7 and five["discordant_clusters"] == 7


def test_calibration_errors_by_hand():
    p_yes = np.array([0.05, 0.15, 0.95, 0.85, 0.55, 0.45])
    is_yes = np.array([False, True, True, True, False, False])
    # binary bins over [0, 1]: [0,.1] {0.05: no} |0 - .05|; (.1,.2] {0.15: yes} |1 - .15|; (.4,.5] {.45 no} .45;
    # (.5,.6] {.55 no} .55; (.8,.9] {.85 yes} .15; (.9,1] {.95 yes} .05 -> mean of the six
    assert binary_calibration_error(p_yes, is_yes) == pytest.approx((0.05 + 0.85 + 0.45 + 0.55 + 0.15 + 0.05) / 6)
    # top-label: confidence max(p, 1-p) = .95 .85 .95 .85 .55 .55, correct = T F T T F T
    # bins over [.5, 1]: (.5,.55] -> {.55 F, .55 T}: |.5 - .55|; (.8,.85] -> {.85 F, .85 T}: |.5 - .85|;
    # (.9,.95] -> {.95 T, .95 T}: |1 - .95|
    assert expected_calibration_error(p_yes, is_yes) == pytest.approx((2 * 0.05 + 2 * 0.35 + 2 * 0.05) / 6)
    assert binary_calibration_error(np.array([]), np.array([], dtype=bool)) is None


def test_bootstrap_of_all_draws_at_once_is_the_one_at_a_time_bootstrap():
    """``of_draws`` sees the very resamples the per-draw loop sees: the same CI, bit for bit (R² of a prediction)."""
    from mmdiag.metrics.stats import bootstrap_ci
    from mmdiag.probes.spatial.readouts import _r2_of_rows, scores_of_draws

    rng = np.random.default_rng(3)
    y = rng.normal(size=57)
    pred = y + rng.normal(scale=0.7, size=57)
    rows = np.stack([y, pred], axis=1)
    loop = bootstrap_ci(rows, _r2_of_rows, seed=11, n_boot=400)
    at_once = bootstrap_ci(
        rows, _r2_of_rows, seed=11, n_boot=400, of_draws=lambda draws: scores_of_draws(y, pred, True, draws)
    )
    np.testing.assert_allclose(at_once, loop, rtol=1e-12)
    assert loop[0] < loop[1]
