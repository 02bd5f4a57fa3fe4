"""Each POPE rule named after a peer gives that peer's numbers on the same answers, to 1e-6.

The expected values are golden files made by running the peers' own code (pinned; the generator is
tests/golden/pope/make_goldens.py). Where a peer prints 0 for a metric whose denominator is zero, or crashes
(ZeroDivisionError), mmdiag reports the metric as undefined with the reason instead; that is the one
deliberate difference, and it is checked too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdiag.metrics.pope import parse_answer, score_answers

GOLDEN = json.loads((Path(__file__).parent / "golden" / "pope" / "goldens.json").read_text())
SETS = sorted(GOLDEN["sets"])

# rule -> (peer's printed name -> (mmdiag's field, scale the peer prints at))
PEER_NAMES = {
    "pope": {
        "Accuracy": "accuracy",
        "Precision": "precision",
        "Recall": "recall",
        "F1 score": "f1",
        "Yes ratio": "yes_ratio",
    },
    "vcd": {"Accuracy": "accuracy", "Precision": "precision", "Recall": "recall", "F1": "f1", "yes": "yes_ratio"},
    "lmms-eval": {
        "pope_accuracy": "accuracy",
        "pope_precision": "precision",
        "pope_recall": "recall",
        "pope_f1_score": "f1",
        "pope_yes_ratio": "peer_metrics.lmms_eval_yes_ratio_ground_truth",
    },
    "vlmevalkit": {"acc": "accuracy", "precision": "precision", "recall": "recall", "Overall": "f1"},
}
SCALE = {"pope": 1.0, "vcd": 1.0, "lmms-eval": 1.0, "vlmevalkit": 100.0}


def _ours(rule: str, name: str):  # noqa: ANN202
    questions = GOLDEN["sets"][name]["questions"]
    return questions, score_answers([q["answer"] for q in questions], [q["label"] for q in questions], rule).to_dict()


def _field(scores: dict, path: str):  # noqa: ANN202
    value = scores
    for part in path.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("rule", sorted(PEER_NAMES))
@pytest.mark.parametrize("name", SETS)
def test_every_metric_the_peer_prints_is_reproduced(rule, name):
    peer = GOLDEN["sets"][name][rule]
    _, ours = _ours(rule, name)
    for printed, field in PEER_NAMES[rule].items():
        mine = _field(ours, field)
        if peer["error"] is not None:  # the peer's script crashed (division by zero): ours must say undefined
            assert "ZeroDivisionError" in peer["error"]
            assert ours["undefined"], f"{rule}/{name}: the peer could not compute, mmdiag must name what is undefined"
            continue
        expected = peer[printed] / SCALE[rule]
        if mine is None:
            assert expected == 0, f"{rule}/{name}/{printed}: undefined here, {expected} there"
            assert field in ours["undefined"], f"{field} is None without a reason"
        else:
            assert mine == pytest.approx(expected, abs=1e-6), f"{rule}/{name}/{printed}"


@pytest.mark.parametrize("name", SETS)
def test_per_answer_decisions_match_the_peers(name):
    questions = GOLDEN["sets"][name]["questions"]
    sets = GOLDEN["sets"][name]
    official = [parse_answer(q["answer"], "pope") for q in questions]
    if sets["pope"]["decisions"]:
        assert official == sets["pope"]["decisions"]
    vlmeval = [{"yes": "Yes", "no": "No", None: "Unknown"}[parse_answer(q["answer"], "vlmevalkit")] for q in questions]
    assert vlmeval == sets["vlmevalkit"]["extracted"]
    lmms_correct = [float(parse_answer(q["answer"], "lmms-eval") == q["label"]) for q in questions]
    assert lmms_correct == sets["lmms-eval"]["scores"]


@pytest.mark.parametrize("name", SETS)
def test_unparsed_is_its_own_count_and_never_correct(name):
    questions = GOLDEN["sets"][name]["questions"]
    _, vlmeval = _ours("vlmevalkit", name)
    assert vlmeval["unparsed"] == GOLDEN["sets"][name]["vlmevalkit"]["extracted"].count("Unknown")
    _, lmms = _ours("lmms-eval", name)
    assert lmms["unparsed"] == sum(q["answer"].lower().strip() not in ("yes", "no") for q in questions)
    for scores in (vlmeval, lmms):
        if scores["accuracy"] is not None:
            assert scores["accuracy"] * scores["n"] == pytest.approx(scores["tp"] + scores["tn"])
            assert scores["tp"] + scores["fp"] + scores["tn"] + scores["fn"] + scores["unparsed"] == scores["n"]


def test_the_goldens_cover_the_awkward_answers():
    answers = {q["answer"] for q in GOLDEN["sets"]["awkward"]["questions"]}
    assert {"Yes.", "yes, there is", "Not really", "", "I don't know", "(yes)"} <= answers
    assert GOLDEN["pins"]["lmms-eval"] == "0.7.3"
    assert any(GOLDEN["sets"][s]["pope"]["error"] for s in SETS), "a set where the official script divides by zero"
