"""POPE metrics and parsing rules against hand-computed answers (the official formulas)."""

from __future__ import annotations

import pytest

from mmdiag.metrics.pope import parse_answer, pope_scores


@pytest.mark.parametrize(
    "answer, pope, vlmevalkit, lmms",
    [
        ("Yes", "yes", "yes", "yes"),
        ("Yes, there is a dog.", "yes", "yes", None),
        ("No, there is no dog.", "no", "no", None),
        ("Not really.", "yes", None, None),  # official rule: "Not" (capital) is not in {No, not, no}
        ("There is not a dog.", "no", None, None),
        ("", "yes", None, None),  # official rule: unparseable counts as yes
        ("I don't know", "yes", None, None),
        ("no", "no", "no", "no"),
        ("Yes. No.", "yes", None, None),  # only the first sentence counts for the official rule
        ("Yes.", "yes", "yes", None),  # lmms-eval: an exact match after lower/strip, so the period makes it wrong
        ("yes/no", "yes", None, None),  # VLMEvalKit: "/" becomes a space, so both words are there
    ],
)
def test_parsing_rules(answer, pope, vlmevalkit, lmms):
    assert parse_answer(answer, "pope") == pope
    assert parse_answer(answer, "vlmevalkit") == vlmevalkit
    assert parse_answer(answer, "lmms-eval") == lmms


def test_vcd_rule_is_substring_based():
    assert parse_answer("I know it", "vcd", label="no") == "no"  # "know" contains "no"
    assert parse_answer("nothing here", "vcd", label="no") == "no"
    assert parse_answer("yes", "vcd", label="no") == "yes"
    assert parse_answer("yes", "vcd", label="yes") == "yes"


def test_scores_by_hand():
    # labels:    y  y  y  n  n  n  n
    # decisions: y  n  y  y  n  n  None
    scores = pope_scores(["yes", "no", "yes", "yes", "no", "no", None], ["yes", "yes", "yes", "no", "no", "no", "no"])
    assert (scores.tp, scores.fn, scores.fp, scores.tn) == (2, 1, 1, 2)
    assert scores.unparsed == 1 and scores.unparsed_yes_label == 0
    assert scores.accuracy == pytest.approx(4 / 7)  # an unparsed answer is never correct, whatever its label
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(2 / 3)
    assert scores.f1 == pytest.approx(2 / 3)
    assert scores.yes_ratio == pytest.approx(3 / 7)  # predicted yes, not ground-truth yes (lmms-eval's bug)


def test_all_no_has_zero_f1_and_undefined_precision():
    scores = pope_scores(["no"] * 4, ["yes", "no", "yes", "no"])
    assert scores.f1 == 0.0 and scores.accuracy == 0.5 and scores.yes_ratio == 0.0 and scores.recall == 0.0
    assert scores.precision is None and "no answer was yes" in scores.undefined["precision"]


def test_empty_question_set_is_undefined_never_zero():
    scores = pope_scores([], [])
    for name in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
        assert getattr(scores, name) is None and scores.undefined[name]
    assert scores.n == 0


def test_f1_is_the_harmonic_mean_wherever_both_exist():
    import itertools

    for decisions in itertools.product(["yes", "no", None], repeat=4):
        labels = ["yes", "no", "yes", "no"]
        s = pope_scores(list(decisions), labels)
        if s.precision and s.recall:
            assert s.f1 == pytest.approx(2 * s.precision * s.recall / (s.precision + s.recall))
        assert s.f1 is not None  # two yes labels: F1 is always defined here


def test_ece_by_hand():
    from mmdiag.metrics.calibration import expected_calibration_error, reliability_bins

    # confidences 0.9 (correct), 0.9 (wrong), 0.6 (correct), 0.6 (correct): bins [0.85,0.9] and [0.55,0.6]
    p_yes = [0.9, 0.1, 0.6, 0.4]
    is_yes = [True, True, True, False]
    # bin of 0.9: accuracy 1/2, confidence 0.9 -> |0.5 - 0.9| = 0.4, weight 1/2; bin of 0.6: accuracy 1 -> 0.4,
    # weight 1/2
    assert expected_calibration_error(p_yes, is_yes) == pytest.approx(0.4)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0.0  # confident and right
    bins = reliability_bins(p_yes, is_yes)
    assert sum(b["count"] for b in bins) == 4
    assert next(b for b in bins if b["low"] <= 0.9 <= b["high"])["share_yes"] == 1.0


def test_unparsed_yes_questions_are_false_negatives_unless_the_rule_leaves_them_out():
    decisions, labels = ["yes", None, "no", None], ["yes", "yes", "yes", "no"]
    counted = pope_scores(decisions, labels)
    assert counted.recall == pytest.approx(1 / 3) and counted.f1 == pytest.approx(2 / (2 + 2))
    left_out = pope_scores(decisions, labels, recall_counts_unparsed=False)  # lmms-eval's recall
    assert left_out.recall == pytest.approx(1 / 2) and left_out.f1 == pytest.approx(2 / (2 + 1))
    assert counted.accuracy == left_out.accuracy == pytest.approx(1 / 4)
