"""`mmdiag pope` scores hand-built answer files exactly as the official formula does."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from mmdiag.cli import main

QUESTIONS = [  # (id, label, answer)
    (1, "yes", "Yes"),
    (2, "yes", "Not really."),  # official rule: "Not" is no match -> yes
    (3, "yes", "No, there is no dog."),  # -> no
    (4, "no", "No"),
    (5, "no", ""),  # empty -> yes under the official rule
    (6, "no", "I don't know"),  # -> yes under the official rule
]


def write(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def files(tmp_path):
    q = write(
        tmp_path,
        "pope_random.jsonl",
        [
            {"question_id": i, "image": f"{i}.jpg", "text": "Is there a dog in the image?", "label": lab}
            for i, lab, _ in QUESTIONS
        ],
    )
    a = write(tmp_path, "answers.jsonl", [{"question_id": i, "text": ans} for i, _, ans in QUESTIONS])
    return q, a


def test_official_rule_by_hand(files, tmp_path, capsys):
    q, a = files
    assert main(["pope", "--questions", str(q), "--answers", str(a), "--out", str(tmp_path / "out.json")]) == 0
    result = json.loads(capsys.readouterr().out)["pope_random"]
    # decisions: yes, yes, no, no, yes, yes -> TP 2, FN 1, TN 1, FP 2
    assert result["accuracy"] == pytest.approx(3 / 6)
    assert result["precision"] == pytest.approx(2 / 4)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert result["yes_ratio"] == pytest.approx(4 / 6)
    assert result["n"] == 6 and result["unparsed"] == 0
    assert json.loads((tmp_path / "out.json").read_text())["pope_random"] == result


def test_vlmevalkit_counts_unknowns_and_splits_are_keyed_by_stem(files, tmp_path, capsys):
    q, a = files
    q2 = write(tmp_path, "pope_adversarial.jsonl", [{"question_id": 1, "image": "1.jpg", "text": "?", "label": "yes"}])
    a2 = write(tmp_path, "answers_adversarial.jsonl", [{"question_id": 1, "text": "Yes"}])
    pairs = ["--questions", str(q), "--questions", str(q2), "--answers", str(a), "--answers", str(a2)]
    assert main(["pope", *pairs, "--rule", "vlmevalkit"]) == 0
    out = json.loads(capsys.readouterr().out)
    # vlmevalkit: Yes -> yes; "Not really." / "" / "I don't know" -> unknown; the two "No..." -> no
    assert out["pope_random"]["unparsed"] == 3
    # VLMEvalKit without a judge scores extracted == label: an unknown is wrong whatever the label, so only
    # ids 1 and 4 are right; for recall an unknown on a yes question is a false negative
    assert out["pope_random"]["accuracy"] == pytest.approx(2 / 6)
    assert out["pope_random"]["recall"] == pytest.approx(1 / 3) and out["pope_random"]["precision"] == 1.0
    assert out["pope_random"]["yes_ratio"] == pytest.approx(1 / 6)
    assert out["pope_adversarial"]["n"] == 1 and out["pope_adversarial"]["accuracy"] == 1.0


def test_missing_answers_and_bad_files_are_named(files, tmp_path, capsys):
    q, _ = files
    partial = write(tmp_path, "partial.jsonl", [{"question_id": 1, "answer": "yes"}])
    assert main(["pope", "--questions", str(q), "--answers", str(partial)]) == 0
    result = json.loads(capsys.readouterr().out)["pope_random"]
    assert result["missing"] == 5 and result["unparsed"] == 5
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question_id": 1}\n')
    assert main(["pope", "--questions", str(q), "--answers", str(broken)]) == 2
    assert "broken.jsonl:1 needs question_id and an 'answer'" in capsys.readouterr().err
    assert main(["pope", "--questions", str(q), "--answers", str(partial), "--rule", "gpt-judge"]) == 2
    assert "unknown parsing rule 'gpt-judge'" in capsys.readouterr().err


def test_pope_with_a_model_answers_scores_and_resumes(tmp_path, tiny_paths, capsys):
    """--model answers every question (logit decisions, KV cache shared per image), then scores them;
    a second run finds every answer written and adds none."""
    assert main(["scenes", "--n", "4", "--out", str(tmp_path / "set")]) == 0
    questions = sorted((tmp_path / "set").glob("pope_*.jsonl"))
    assert [q.stem for q in questions] == ["pope_adversarial", "pope_popular", "pope_random"]
    capsys.readouterr()
    args = [
        "pope",
        "--model",
        str(tiny_paths["llava"]),
        *[a for q in questions for a in ("--questions", str(q))],
        "--answers",
        str(tmp_path / "answers"),
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {q.stem for q in questions}
    answers = [
        line for q in questions for line in (tmp_path / "answers" / f"{q.stem}.answers.jsonl").read_text().splitlines()
    ]
    n_questions = sum(len(q.read_text().splitlines()) for q in questions)
    assert len(answers) == n_questions and all(json.loads(a)["answer"] in ("Yes", "No") for a in answers)
    for result in out.values():
        assert result["missing"] == 0 and result["unparsed"] == 0 and result["n"] > 0
    assert main(args) == 0
    assert (
        sum(len((tmp_path / "answers" / f"{q.stem}.answers.jsonl").read_text().splitlines()) for q in questions)
        == n_questions
    )


def test_pope_with_a_model_batches_images_with_the_decisions_of_one_at_a_time(tmp_path, tiny_paths, capsys):
    """--batch-size 8 and auto give every question the decision it gets one image at a time (probabilities to
    float summation order); a bad --batch-size is one line."""
    assert main(["scenes", "--n", "12", "--out", str(tmp_path / "set")]) == 0
    question = tmp_path / "set" / "pope_random.jsonl"
    answers = {}
    for size in ("1", "8", "auto"):
        out = tmp_path / f"answers-{size}"
        args = ["pope", "--model", str(tiny_paths["llava"]), "--questions", str(question), "--answers", str(out)]
        assert main([*args, "--batch-size", size]) == 0
        rows = [json.loads(line) for line in (out / "pope_random.answers.jsonl").read_text().splitlines()]
        answers[size] = {r["question_id"]: r for r in rows}
    capsys.readouterr()
    assert answers["1"].keys() == answers["8"].keys() == answers["auto"].keys()
    for size in ("8", "auto"):
        for qid, row in answers["1"].items():
            assert answers[size][qid]["answer"] == row["answer"]
            assert abs(answers[size][qid]["p_yes"] - row["p_yes"]) < 1e-5
    bad = ["pope", "--model", str(tiny_paths["llava"]), "--questions", str(question), "--batch-size", "0"]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "--batch-size 0 must be a positive count" in err and err.count("\n") == 1


class _CountingAdapter:
    """Answers every question "yes" and records how many images each scoring call held (``device``: its type)."""

    def __init__(self, device: str, fits: int = 1_000) -> None:
        import torch

        self.device, self.fits, self.calls = torch.device(device), fits, []

    def answer_scores_batch(self, requests):
        import numpy as np
        import torch

        self.calls.append(len(requests))
        if len(requests) > self.fits:
            raise torch.OutOfMemoryError("too many images")
        return [SimpleNamespace(p_yes=np.ones(len(r.questions)), p_no=np.zeros(len(r.questions))) for r in requests]


@pytest.mark.parametrize(
    ("device", "fits", "calls"),
    [
        ("cpu", 1_000, [8, 8, 4]),  # memory does not limit a CPU batch: auto keeps the default, no trial of 64
        ("cuda", 1_000, [20]),  # on CUDA: the largest that fits (capped at the images there are)
        ("cuda", 12, [20, 10, 10]),  # halved on out-of-memory, then that size throughout
    ],
)
def test_batch_size_auto_trials_only_where_memory_limits_a_batch(tmp_path, device, fits, calls):
    from PIL import Image

    from mmdiag.run.pope_answers import answer_pope

    rows = []
    for i in range(20):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i}.png")
        rows += [{"question_id": 2 * i + k, "image": f"{i}.png", "text": f"Is there a q{k}?", "label": "yes"}
                 for k in range(2)]  # fmt: skip
    questions = write(tmp_path, "pope.jsonl", rows)
    adapter = _CountingAdapter(device, fits)
    out = answer_pope(adapter, questions, tmp_path / "answers.jsonl", progress=False, batch_size="auto")
    assert adapter.calls == calls
    assert len(out.read_text().splitlines()) == 40
