"""CHAIR on COCO against the original CHAIR code's own output (tests/golden/chair/goldens.json, made by
tests/golden/chair/make_goldens.py running LisaAnne/Hallucination@6e4d33c utils/chair.py under Python 2.7 with
nltk 3.2.5 and pattern 3.6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdiag.cli import main
from mmdiag.errors import ConfigError, MmdiagError
from mmdiag.metrics.chair_text import sentence_splitter
from mmdiag.metrics.coco_chair import ChairRules2018, chair_on_coco
from mmdiag.metrics.vendored.pattern_singularize import singularize

GOLDEN = Path(__file__).parent / "golden" / "chair"


@pytest.fixture(scope="module")
def goldens() -> dict:
    return json.loads((GOLDEN / "goldens.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rules() -> ChairRules2018:
    # the goldens were made with the untrained Punkt splitter (the trained model is data not available here)
    return ChairRules2018(splitter="untrained")


@pytest.fixture()
def captions_file(goldens: dict, tmp_path: Path) -> Path:
    path = tmp_path / "caps.json"
    path.write_text(json.dumps(goldens["captions"]))
    return path


def test_golden_is_the_original_run_with_its_pinned_versions(goldens: dict):
    assert goldens["peer"].startswith("LisaAnne/Hallucination@6e4d33c utils/chair.py, run under Python 2.7")
    assert goldens["versions"]["nltk"] == "3.2.5"
    assert "untrained" in goldens["sentence_splitter"]


def test_singularize_is_patterns(goldens: dict):
    # includes pattern's own oddities the original inherits: glass -> glas, bus -> bu, ties -> ty, his -> hi
    assert {w: singularize(w) for w in goldens["singularize"]} == goldens["singularize"]


def test_caption_to_words_matches_the_original_on_every_caption(goldens: dict, rules: ChairRules2018):
    # plurals, irregular plurals, two-word objects, baby/adult/passenger rules, toilet seat, repeats, quotes,
    # parentheses, dashes, several sentences, upper case, an empty caption: 120 captions in all
    assert len(goldens["caption_to_words"]) == 120
    for text, want in goldens["caption_to_words"].items():
        got = rules.caption_to_words(text)
        assert [got.words, got.node_words, got.idxs, got.raw_words] == [
            want["words"],
            want["node_words"],
            want["idxs"],
            want["raw_words"],
        ], text


def test_chair_on_coco_reproduces_the_original(goldens: dict, captions_file: Path):
    result = chair_on_coco(captions_file, GOLDEN / "coco", splitter="untrained")
    assert result.CHAIRs == pytest.approx(goldens["overall_metrics"]["CHAIRs"], abs=1e-12)
    assert result.CHAIRi == pytest.approx(goldens["overall_metrics"]["CHAIRi"], abs=1e-12)
    by_id = {s["image_id"]: s for s in goldens["sentences"]}
    assert len(result.sentences) == len(by_id) == 40
    for ours in result.sentences:
        theirs = by_id[ours["image_id"]]
        assert ours["mscoco_hallucinated_words"] == theirs["mscoco_hallucinated_words"], ours["caption"]
        assert ours["mscoco_generated_words"] == theirs["mscoco_generated_words"]
        assert ours["hallucination_idxs"] == theirs["hallucination_idxs"]
        assert ours["words"] == theirs["words"]
        assert set(ours["mscoco_gt_words"]) == set(theirs["mscoco_gt_words"])  # a set in the original
        assert ours["metrics"]["CHAIRs"] == theirs["metrics"]["CHAIRs"]
        assert ours["metrics"]["CHAIRi"] == pytest.approx(theirs["metrics"]["CHAIRi"], abs=1e-12)


def test_every_mention_counts_and_quirks_are_kept(rules: ChairRules2018):
    # a word said three times is three mentions (the original's CHAIR_i), "motor bike" matches nothing
    # (the 2018 synonym line has " motor bike" with a leading space), "baby elephant" is an elephant
    assert rules.caption_to_words("A dog and another dog next to a dog.").node_words == ["dog", "dog", "dog"]
    assert rules.caption_to_words("a motor bike").node_words == []
    assert rules.caption_to_words("a baby elephant and a passenger jet").node_words == ["elephant", "airplane"]
    assert rules.caption_to_words("the seat of the toilet").node_words == ["toilet"]


def test_recall_and_cis(goldens: dict, captions_file: Path):
    """recall (not in the 2018 code) from the original's own per-caption output: distinct ground-truth objects
    named / ground-truth objects, summed over images; CIs contain their values."""
    result = chair_on_coco(captions_file, GOLDEN / "coco", splitter="untrained")
    hits = sum(len(set(s["mscoco_generated_words"]) & set(s["mscoco_gt_words"])) for s in goldens["sentences"])
    total = sum(len(set(s["mscoco_gt_words"])) for s in goldens["sentences"])
    assert result.recall == pytest.approx(hits / total, abs=1e-12)
    assert result.mentions == sum(len(s["mscoco_generated_words"]) for s in goldens["sentences"])
    assert result.hallucinated_mentions == sum(len(s["mscoco_hallucinated_words"]) for s in goldens["sentences"])
    for name in ("CHAIRs", "CHAIRi", "recall"):
        low, high = result.ci[name]
        assert low < getattr(result, name) < high


def test_original_input_format_is_accepted(goldens: dict, tmp_path: Path):
    path = tmp_path / "orig.json"
    path.write_text(json.dumps({"overall": {}, "imgToEval": {str(c["image_id"]): c for c in goldens["captions"]}}))
    assert chair_on_coco(path, GOLDEN / "coco", "untrained").CHAIRi == pytest.approx(
        goldens["overall_metrics"]["CHAIRi"]
    )


def test_cli_prints_the_json(captions_file: Path, tmp_path: Path, capsys, goldens: dict):
    out = tmp_path / "chair.json"
    rc = main(
        [
            "chair",
            "--captions",
            str(captions_file),
            "--coco-annotations",
            str(GOLDEN / "coco"),
            "--sentence-splitter",
            "untrained",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["CHAIRs"] == pytest.approx(goldens["overall_metrics"]["CHAIRs"])
    assert printed["undefined"] == {} and printed["n_captions"] == 40
    assert printed["sentences"][2]["mscoco_hallucinated_words"] == [["wine glass", "wine glass"], ["bottle", "bottle"]]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_dir", "is not a folder"),
        ("no_instances", "no instances_*.json"),
        ("unknown_image", "is in no annotation file"),
        ("bad_json", "is not valid JSON"),
        ("bad_entry", 'entry 0 needs an "image_id"'),
    ],
)
def test_bad_inputs_are_one_line_errors(case: str, message: str, tmp_path: Path, captions_file: Path, capsys):
    coco = GOLDEN / "coco"
    caps = captions_file
    if case == "missing_dir":
        coco = tmp_path / "nope"
    elif case == "no_instances":
        coco = tmp_path
    elif case == "unknown_image":
        caps = tmp_path / "c.json"
        caps.write_text('[{"image_id": 999, "caption": "a dog"}]')
    elif case == "bad_json":
        caps = tmp_path / "c.json"
        caps.write_text("[{")
    elif case == "bad_entry":
        caps = tmp_path / "c.json"
        caps.write_text('[{"caption": "a dog"}]')
    assert main(["chair", "--captions", str(caps), "--coco-annotations", str(coco)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmdiag: error:") and message in err[0], err


def test_splitter_choice_is_recorded_and_trained_is_refused_without_its_data():
    _, name = sentence_splitter("untrained")
    assert "untrained" in name
    try:
        _, trained = sentence_splitter("trained")
    except ConfigError as err:
        assert "punkt_tab" in str(err)
    else:
        assert "trained English model" in trained
    with pytest.raises(MmdiagError):
        sentence_splitter("spacy")
