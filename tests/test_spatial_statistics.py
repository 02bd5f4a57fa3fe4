"""Spatial statistics: permutation nulls through the same cross-validation, paired differences, and retention
only where there is something to retain."""

from __future__ import annotations

import numpy as np
import pytest

from mmdiag.probes.spatial import _mean_retention, _paired
from mmdiag.probes.spatial.readouts import out_of_fold, summarise


def tokens_with_signal(n: int, signal: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 4, 16)).astype(np.float32)
    x[:, :, 0] += signal * (2 * labels[:, None] - 1)
    return x, labels


def test_label_shuffled_data_does_not_beat_its_null_and_the_chance_is_measured():
    x, labels = tokens_with_signal(48, 0.0, seed=0)
    row = summarise(out_of_fold(x, labels, False, "attention", seed=0, permutations=39), False, 0)
    assert row["null_p"] > 0.05 and row["chance_from"].startswith("label-permutation")
    assert abs(row["chance"] - 0.5) < 0.1


def test_a_regression_null_is_measured_not_assumed_zero():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((48, 4, 16)).astype(np.float32)
    row = summarise(out_of_fold(x, rng.random(48), True, "attention", seed=0, permutations=39), True, 0)
    assert row["chance"] < -0.05  # cross-validated R² of an unrelated target sits below 0, not at 0
    assert row["null_p"] > 0.05


def test_strong_signal_beats_its_null_at_the_smallest_p():
    x, labels = tokens_with_signal(48, 3.0, seed=2)
    row = summarise(out_of_fold(x, labels, False, "attention", seed=0, permutations=39), False, 0)
    assert row["score"] > 0.9 and row["null_p"] == pytest.approx(1 / 40)


def test_retention_is_not_measurable_when_the_pre_score_is_noise():
    x, labels = tokens_with_signal(48, 0.0, seed=3)
    pre_oof = out_of_fold(x, labels, False, "attention", seed=0, permutations=39)
    post_oof = out_of_fold(x[:, :, ::-1].copy(), labels, False, "attention", seed=0, permutations=39)
    pre, post = summarise(pre_oof, False, 0), summarise(post_oof, False, 0)
    out, draws = _paired(pre_oof, post_oof, pre, post, seed=0)
    assert draws is None
    assert out["retention"] is None and "does not beat its permutation null" in out["retention_undefined"]
    assert out["difference_ci"][0] <= 0 <= out["difference_ci"][1]  # the paired difference is still reported


def test_retention_and_paired_difference_when_the_projector_loses_the_signal():
    x, labels = tokens_with_signal(60, 3.0, seed=4)
    lost = x.copy()
    lost[:, :, 0] = np.random.default_rng(5).standard_normal(lost.shape[:2])  # the projector drops the feature
    pre_oof = out_of_fold(x, labels, False, "attention", seed=0, permutations=39)
    post_oof = out_of_fold(lost, labels, False, "attention", seed=0, permutations=39)
    pre, post = summarise(pre_oof, False, 0), summarise(post_oof, False, 0)
    out, draws = _paired(pre_oof, post_oof, pre, post, seed=0)
    assert out["retention"] is not None and out["retention"] < 0.3
    assert out["retention_ci"][0] <= out["retention"] <= out["retention_ci"][1]
    assert out["difference"] < -0.3 and out["difference_ci"][1] < 0 and out["difference_p"] < 0.01
    same, _ = _paired(pre_oof, pre_oof, pre, pre, seed=0)
    assert same["retention"] == pytest.approx(1.0) and same["difference"] == 0.0


def test_mean_retention_has_a_joint_ci_from_the_same_scene_draws():
    """Two tasks on the same scenes: one kept by the projector, one lost. The mean's CI comes from averaging the
    two tasks' retentions draw by draw (the same scene indices), so it is narrower than the spread of the two
    tasks' own intervals put together, contains the mean, and excludes 1 (something was lost)."""
    rows, draws = {}, {}
    for task, seed in (("a", 6), ("b", 7)):
        x, labels = tokens_with_signal(60, 3.0, seed=6)
        post_x = x.copy()
        if task == "b":
            post_x[:, :, 0] = np.random.default_rng(seed).standard_normal(post_x.shape[:2])
        pre_oof = out_of_fold(x, labels, False, "attention", seed=0, permutations=39)
        post_oof = out_of_fold(post_x, labels, False, "attention", seed=0, permutations=39)
        pre, post = summarise(pre_oof, False, 0), summarise(post_oof, False, 0)
        out, draws[task] = _paired(pre_oof, post_oof, pre, post, seed=0)
        rows[task] = {**post, **out}
    metric = _mean_retention(rows, ("a", "b"), "test", draws)
    assert metric.value == pytest.approx((rows["a"]["retention"] + rows["b"]["retention"]) / 2)
    assert metric.ci_low <= metric.value <= metric.ci_high
    assert metric.ci_high < 1 and metric.p_value < 0.05 and metric.n == 60
    # a task with no draws (not measurable) is named and left out of the mean and of its CI
    rows["c"] = {"retention": None, "retention_undefined": "the pre-projector score does not beat its permutation null"}
    partial = _mean_retention(rows, ("a", "b", "c"), "test", draws)
    assert partial.value == pytest.approx(metric.value) and (partial.ci_low, partial.ci_high) == (
        metric.ci_low,
        metric.ci_high,
    )
    assert "c: the pre-projector score does not beat" in partial.description


def test_rounds_keep_the_jobs_in_order_and_bound_the_columns_held():
    """One round at the release suite's size; at 1,600 scenes a few feature columns at a time."""
    from mmdiag.probes.spatial import ROUND_BYTES, _column_key, _rounds

    jobs = [(r, f"stage{k}", task, 39 if k < 2 else 0) for r in ("attention", "flattened") for k in range(8)
            for task in ("grid_cell", "left_of")]  # fmt: skip
    jobs.sort(key=_column_key)
    keys = {_column_key(job) for job in jobs}

    def sizes(n_scenes: int) -> dict[str, int]:
        return dict.fromkeys(keys, n_scenes * 64 * 16 * 4)

    assert _rounds(jobs, sizes(48)) == [jobs]
    rounds = _rounds(jobs, sizes(1600))
    assert [job for part in rounds for job in part] == jobs and len(rounds) > 3
    for part in rounds:
        columns = {_column_key(job) for job in part}
        assert len(columns) == 1 or len(columns) * 1600 * 64 * 16 * 4 <= ROUND_BYTES
