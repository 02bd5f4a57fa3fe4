"""The field's own POPE files read as they are and scored as their tools score them.

Every expected number comes from tests/golden/pope_files/goldens.json, made by running the peers' own code (POPE's
evaluate.py, lmms-eval's aggregations at v0.3.0, v0.6 and 0.7.3, VLMEvalKit's dump/load/YOrN_Extraction/POPE_rating)
on the same files with tests/golden/pope_files/make_goldens.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmdiag.cli import main
from mmdiag.errors import MmdiagError
from mmdiag.metrics.answer_formats import detect_format, read_answer_file
from mmdiag.metrics.pope_files import score_pope
from mmdiag.metrics.pope_io import read_pope_jsonl

FILES = Path(__file__).parent / "golden" / "pope_files"
GOLDENS = json.loads((FILES / "goldens.json").read_text())
OFFICIAL = FILES / "official"


def _peer(ours: float | None) -> float:
    """Ours as the peers print it: they print 0 where a denominator is zero, mmdiag gives None."""
    return 0.0 if ours is None else ours


def _matches_pope_evaluate(result: dict, golden: dict) -> None:
    assert result["unparsed"] == 0  # the official rule reads every answer
    for ours, theirs in (("accuracy", "Accuracy"), ("precision", "Precision"), ("recall", "Recall")):
        assert result[ours] == pytest.approx(golden[theirs], abs=1e-12), ours
    assert result["f1"] == pytest.approx(golden["F1 score"], abs=1e-12)
    assert result["yes_ratio"] == pytest.approx(golden["Yes ratio"], abs=1e-12)


@pytest.mark.parametrize(
    "answers, questions",
    [("example.json", "coco_pope_random_first.json"), ("answers_random.json", "coco_pope_random_head.json")],
)
def test_official_answer_files_are_matched_by_order_as_evaluate_py_does(answers, questions):
    assert detect_format(OFFICIAL / answers) == "pope-answers"
    (result,) = score_pope([OFFICIAL / questions], [OFFICIAL / answers]).values()
    assert result["format"] == "pope-answers" and result["rule"] == "pope"
    _matches_pope_evaluate(result, GOLDENS["official"][f"{answers}+{questions}"])


def test_official_answer_file_with_another_count_is_refused():
    with pytest.raises(MmdiagError, match="holds 1 answers and .* 24 questions"):
        score_pope([OFFICIAL / "coco_pope_random_head.json"], [OFFICIAL / "example.json"])


def test_question_files_as_published_crlf_and_pretty_json_arrays():
    popular = (OFFICIAL / "coco_pope_popular_head.json").read_bytes()
    assert b"\r\n" in popular  # the repository's popular and adversarial files end lines with CRLF
    assert [q.question_id for q in read_pope_jsonl(OFFICIAL / "coco_pope_popular_head.json")] == list(range(1, 25))
    seem = read_pope_jsonl(OFFICIAL / "gqa_pope_seem_random_head.json")
    assert len(seem) == 24 and seem[0].image == "2405722.jpg" and seem[0].label == "yes"


def test_three_splits_in_one_answers_file_are_kept_apart_by_split():
    heads = [OFFICIAL / f"coco_pope_{s}_head.json" for s in ("random", "popular", "adversarial")]
    results = score_pope(heads, [FILES / "three_splits" / "answers_all_splits.jsonl"])
    for head in heads:
        assert results[head.stem]["missing"] == 0
        _matches_pope_evaluate(results[head.stem], GOLDENS["three_splits"][head.stem])


def test_three_splits_without_a_split_are_refused_not_merged(capsys):
    heads = [str(OFFICIAL / f"coco_pope_{s}_head.json") for s in ("random", "popular", "adversarial")]
    answers = str(FILES / "three_splits" / "answers_no_split.jsonl")
    args = ["pope", *[a for h in heads for a in ("--questions", h)], "--answers", answers]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "split" in err and "Traceback" not in err


LMMS_EVAL = sorted((FILES / "lmms-eval").glob("*/*_samples_*.jsonl"))


@pytest.mark.parametrize("path", LMMS_EVAL, ids=lambda p: f"{p.parent.name}/{p.name.split('_samples_')[1]}")
def test_lmms_eval_sample_logs_of_every_layout_give_lmms_eval_numbers(path):
    golden = GOLDENS["lmms-eval"][f"{path.parent.name}/{path.name}"]
    assert detect_format(path) == "lmms-eval"
    results = score_pope([], [path])
    task = path.name.split("_samples_")[1].removesuffix(".jsonl")
    whole = results[task]
    assert whole["rule"] == "lmms-eval" and whole["format"] == "lmms-eval"
    assert whole["accuracy"] == pytest.approx(golden["pope_accuracy"], abs=1e-12)
    assert _peer(whole["precision"]) == pytest.approx(golden["pope_precision"], abs=1e-12)
    assert _peer(whole["recall"]) == pytest.approx(golden["pope_recall"], abs=1e-12)
    assert _peer(whole["f1"]) == pytest.approx(golden["pope_f1_score"], abs=1e-12)
    assert whole["peer_metrics"]["lmms_eval_yes_ratio_ground_truth"] == pytest.approx(golden["pope_yes_ratio"])
    if task == "pope" and path.parent.name == "v0.3.0":  # the doc (with its category) is logged up to 0.3.x
        assert {f"pope/{s}" for s in ("random", "popular", "adversarial")} <= set(results)
        assert sum(results[f"pope/{s}"]["n"] for s in ("random", "popular", "adversarial")) == whole["n"]
    elif task != "pope":
        assert whole["split"] == {"pope_random": "random", "pope_pop": "popular", "pope_adv": "adversarial"}[task]


def test_lmms_eval_log_scored_under_another_rule_reads_the_raw_response():
    path = FILES / "lmms-eval" / "0.7.3" / "20261207_101500_samples_pope_random.jsonl"
    native, official = score_pope([], [path])["pope_random"], score_pope([], [path], rule="pope")["pope_random"]
    assert native["unparsed"] > 0 and official["unparsed"] == 0  # "Yes." is unreadable to lmms-eval, yes to POPE


@pytest.mark.parametrize("suffix", ["xlsx", "tsv", "json"])
def test_vlmevalkit_prediction_files_give_pope_rating_numbers(suffix):
    path = FILES / "vlmevalkit" / f"llava_POPE.{suffix}"
    golden = GOLDENS["vlmevalkit"][path.name]
    results = score_pope([], [path])
    assert set(results) == {f"llava_POPE/{split}" for split in golden}
    for split, theirs in golden.items():
        ours = results[f"llava_POPE/{split}"]
        assert ours["rule"] == "vlmevalkit" and ours["format"] == "vlmevalkit"
        assert 100 * ours["accuracy"] == pytest.approx(theirs["acc"], abs=1e-9)
        assert 100 * _peer(ours["precision"]) == pytest.approx(theirs["precision"], abs=1e-9)
        assert 100 * _peer(ours["recall"]) == pytest.approx(theirs["recall"], abs=1e-9)
        assert 100 * _peer(ours["f1"]) == pytest.approx(theirs["Overall"], abs=1e-9)
    # a row in several categories answers each of them, and Overall counts it once per category
    rows = read_answer_file(path).answers
    assert results["llava_POPE/Overall"]["n"] == len(rows) > len({a.question_id for a in rows})


def test_cli_says_which_format_it_read_and_refuses_questions_for_self_labelled_files(capsys, tmp_path):
    path = FILES / "vlmevalkit" / "llava_POPE.xlsx"
    assert main(["pope", "--answers", str(path)]) == 0
    captured = capsys.readouterr()
    assert "as vlmevalkit" in captured.err and "vlmevalkit rule" in captured.err
    assert json.loads(captured.out)["llava_POPE/Overall"]["format"] == "vlmevalkit"
    assert main(["pope", "--answers", str(path), "--questions", str(OFFICIAL / "coco_pope_random_head.json")]) == 2
    assert "drop --questions" in capsys.readouterr().err


def test_broken_and_foreign_files_are_one_line_errors(tmp_path, capsys):
    broken = tmp_path / "model_POPE.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    other = tmp_path / "20260101_samples_mme.jsonl"
    other.write_text(json.dumps({"doc_id": 0, "filtered_resps": ["Yes"], "mme_score": {"score": 1}}) + "\n")
    unknown = tmp_path / "answers.jsonl"
    unknown.write_text(json.dumps({"id": 1, "response": "Yes"}) + "\n")
    twice = tmp_path / "twice.jsonl"
    shutil.copy(FILES / "lmms-eval" / "0.7.3" / "20261207_101500_samples_pope_adv.jsonl", twice)
    twice.write_text(twice.read_text() * 2)
    for path, words in (
        (OFFICIAL / "coco_pope_random_head.json", "pass it with --questions"),
        (broken, "not a readable xlsx workbook"),
        (other, "no pope_accuracy"),
        (unknown, "--format"),
        (twice, "both doc_id 0"),
    ):
        args = ["pope", "--answers", str(path)] + (["--format", "lmms-eval"] if path == twice else [])
        assert main(args) == 2, path
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err


def test_a_three_split_answers_file_serves_one_question_file_by_its_split():
    head = OFFICIAL / "coco_pope_popular_head.json"
    (result,) = score_pope([head], [FILES / "three_splits" / "answers_all_splits.jsonl"]).values()
    _matches_pope_evaluate(result, GOLDENS["three_splits"][head.stem])
