"""Auditing a model from its answers: ``mmdiag export``, a harness outside mmdiag answers, ``mmdiag audit --answers``.

The round trip answers the export of the quick suite with the default (reference zoo) model through a plain
transformers loop (tests/answer_loop.py, no mmdiag import) and checks that every diagnostic that needs only
decisions equals what ``mmdiag audit --model`` measures on the same items, CIs included.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from mmdiag.api import default_model_dir
from mmdiag.cli import main
from mmdiag.offline.adapters import ReplayAdapter, read_export_items
from mmdiag.offline.items import image_hash

sys.path.insert(0, str(Path(__file__).parent))
from answer_loop import answer_export  # noqa: E402

N = "8"


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("answers")
    export = tmp / "export"
    assert main(["export", "--out", str(export), "--suite", "quick", "--n-examples", N]) == 0
    answers = answer_export(default_model_dir(), export, tmp / "answers.jsonl")
    from_answers, from_model = tmp / "from-answers", tmp / "from-model"
    gate = ["--gate", "hallucination.accuracy>=0.5"]  # a quality gate of one's own: a verdict from answers
    assert main(["audit", "--answers", str(answers), "--export", str(export), "--out", str(from_answers), *gate]) == 0
    model_args = ["--suite", "quick", "--n-examples", N, "--probes", "hallucination", "--out", str(from_model)]
    assert main(["audit", "--model", str(default_model_dir()), *model_args]) == 0
    return tmp, export, answers, from_answers, from_model


def test_audit_from_answers_equals_the_audit_with_weights_on_every_decision_metric(round_trip):
    _, _, _, from_answers, from_model = round_trip
    a = json.loads((from_answers / "results.json").read_text())
    b = json.loads((from_model / "results.json").read_text())
    ours, theirs = a["probes"]["hallucination"], b["probes"]["hallucination"]
    compared = 0
    from mmdiag.probes.registry import ProbeRegistry

    needs_scores = {n for n, spec in ProbeRegistry().get("hallucination").metric_specs.items() if spec.needs_scores}
    assert needs_scores == {"ece", "calibration_error_p_yes", "auroc"}
    for name, metric in ours["metrics"].items():
        if name in needs_scores:  # probabilities: undefined from answers, with the reason
            assert metric["value"] is None and "decisions only" in metric["undefined"]
            continue
        other = theirs["metrics"][name]
        assert (metric["value"], metric["ci_low"], metric["ci_high"]) == (
            other["value"],
            other["ci_low"],
            other["ci_high"],
        ), name
        compared += metric["value"] is not None
    assert compared >= 20
    for key in ("pope", "pope_rules", "chair", "counterfactuals"):  # free-text POPE and CHAIR from the same captions
        assert ours[key] == theirs[key], key
    assert set(theirs["blind_pope"]) - set(ours["blind_pope"]) == {"vcd_noise"}
    assert a["metadata"]["model"]["family"] == "answers"
    from mmdiag.verdicts import verdict_lines

    assert verdict_lines(a)[0].startswith("PASS") and "from answers alone" in verdict_lines(a)[0]
    notes = " ".join(a["notes"])
    assert "attention: left out" in notes and "spatial: left out" in notes and "needs the model's weights" in notes


def test_export_holds_what_the_audit_asks_in_the_harnesses_layouts(round_trip):
    _, export, _, _, _ = round_trip
    items = read_export_items(export)
    kinds = {item.kind for item in items}
    assert kinds == {"yesno", "generate"} and len({i.index for i in items}) == len(items)
    manifest = json.loads((export / "export.json").read_text())
    assert manifest["probes"] == ["hallucination"] and manifest["items"] == len(items)
    # VLMEvalKit: the TSV's base64 image is the exported image, pixel for pixel
    import csv

    with (export / "vlmevalkit" / "MMDIAG.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [int(r["index"]) for r in rows] == [i.index for i in items]
    first = Image.open(io.BytesIO(base64.b64decode(rows[0]["image"])))
    assert image_hash(first.convert("RGB")) == items[0].image_id == image_hash(Image.open(export / items[0].image))


def _lmms_eval_task(export: Path):
    folder = export / "lmms-eval" / "mmdiag_audit"

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    spec = importlib.util.spec_from_file_location("mmdiag_export_utils", folder / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    configs = {p.stem: yaml.load(p.read_text(), Loader=Loader) for p in folder.glob("*.yaml")}
    return folder, utils, configs


def test_lmms_eval_task_folder_runs_as_lmms_eval_calls_it_and_its_log_reads_back(round_trip, tmp_path):
    _, export, answers, _, _ = round_trip
    folder, utils, configs = _lmms_eval_task(export)
    group = configs.pop("mmdiag_audit")
    assert set(group["task"]) == set(configs)
    log = tmp_path / "20261207_120000_samples_mmdiag_audit_yesno.jsonl"
    by_index = {
        json.loads(line)["question_id"]: json.loads(line)["answer"] for line in answers.read_text().splitlines()
    }
    with log.open("w") as sink:
        doc_id = 0
        for config in configs.values():
            assert config["output_type"] == "generate_until" and config["process_results"] == "utils.process_results"
            data_file = Path(config["dataset_kwargs"]["data_files"][config["test_split"]])
            for line in data_file.read_text().splitlines():
                doc = json.loads(line)
                (image,) = utils.doc_to_visual(doc)
                assert image_hash(image) == doc["image_id"]
                prompt = utils.doc_to_text(doc, config["lmms_eval_specific_kwargs"]["default"])
                assert prompt.startswith(doc["question"])
                response = by_index[doc["index"]]
                metrics = utils.process_results(doc, [response])
                # lmms-eval 0.7's EvaluationTracker layout: doc and arguments dropped, filtered_resps flattened
                sample = {"doc_id": doc_id, "target": doc["kind"], "filtered_resps": response, **metrics}
                sample["input"] = prompt
                sink.write(json.dumps(sample) + "\n")
                doc_id += 1
    from_log, _ = ReplayAdapter.from_export(export, [log])
    from_jsonl, _ = ReplayAdapter.from_export(export, [answers])
    assert from_log.answers == from_jsonl.answers and len(from_log.answers) == len(read_export_items(export))


def test_vlmevalkit_predictions_in_xlsx_read_back_as_the_same_answers(round_trip, tmp_path):
    import openpyxl

    _, export, answers, _, _ = round_trip
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["index", "question", "kind", "max_new_tokens", "prediction"])
    rows = {json.loads(line)["question_id"]: json.loads(line)["answer"] for line in answers.read_text().splitlines()}
    for item in read_export_items(export):
        sheet.append([item.index, item.question, item.kind, item.max_new_tokens, rows[item.index]])
    path = tmp_path / "mymodel_MMDIAG.xlsx"
    book.save(path)
    from_xlsx, _ = ReplayAdapter.from_export(export, [path])
    from_jsonl, _ = ReplayAdapter.from_export(export, [answers])
    assert from_xlsx.answers == from_jsonl.answers


def test_missing_and_foreign_answers(round_trip, tmp_path, capsys):
    _, export, answers, _, _ = round_trip
    lines = answers.read_text().splitlines()
    partial = tmp_path / "partial.jsonl"
    partial.write_text("\n".join(lines[:-5]) + "\n")
    _, notes = ReplayAdapter.from_export(export, [partial])
    assert any("5 of" in note and "have no answer" in note for note in notes)
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(json.dumps({"question_id": 10**6, "answer": "Yes"}) + "\n")
    cases = [
        (["--answers", str(foreign), "--export", str(export)], "does not hold"),
        (["--answers", str(answers)], "--export DIR"),
        (["--answers", str(answers), "--export", str(export), "--model", "x"], "cannot go with --answers"),
        (["--answers", str(answers), "--export", str(tmp_path)], "mmdiag export wrote"),
    ]
    for args, words in cases:
        assert main(["audit", *args, "--out", str(tmp_path / "run")]) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err
    assert main(["export", "--out", str(export), "--suite", "quick", "--n-examples", N]) == 2
    assert "not empty" in capsys.readouterr().err


LMMS_EVAL_LOGS = sorted((Path(__file__).parent / "golden" / "lmms_eval_export").glob("*_samples_mmdiag_audit_*.jsonl"))


def test_lmms_eval_own_sample_logs_give_the_audit_with_weights(round_trip, tmp_path):
    """lmms-eval 0.7.3 ran the exported task with its llava_hf model on the reference model (the logs and their
    generator are in tests/golden/lmms_eval_export); read back, they give what ``audit --model`` measures."""
    _, export, _, _, from_model = round_trip
    out = tmp_path / "from-lmms-eval"
    assert len(LMMS_EVAL_LOGS) == 3
    assert main(["audit", "--answers", *map(str, LMMS_EVAL_LOGS), "--export", str(export), "--out", str(out)]) == 0
    ours = json.loads((out / "results.json").read_text())["probes"]["hallucination"]
    theirs = json.loads((from_model / "results.json").read_text())["probes"]["hallucination"]
    decided = [k for k, m in ours["metrics"].items() if m["value"] is not None]
    assert len(decided) >= 20
    for name in decided:
        assert ours["metrics"][name] == theirs["metrics"][name], name
    for key in ("pope", "pope_rules", "chair", "counterfactuals"):
        assert ours[key] == theirs[key], key


@pytest.mark.parametrize("broken", ["always-yes", "shuffled"])
def test_a_plainly_broken_model_fails_the_release_gates_from_its_answers(round_trip, tmp_path, broken, capsys):
    """Answers that ignore the image (always "Yes"; the reference model's answers shuffled across items) fail the
    release suite's multimodal-gain and evidence gates, where the reference model's own answers pass them."""
    _, export, answers, _, _ = round_trip
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    texts = ["Yes"] * len(rows) if broken == "always-yes" else [r["answer"] for r in rows]
    if broken == "shuffled":
        import random

        random.Random(0).shuffle(texts)
    bad = tmp_path / f"{broken}.jsonl"
    bad.write_text(
        "".join(json.dumps({"question_id": r["question_id"], "answer": t}) + "\n" for r, t in zip(rows, texts))
    )
    gates = [
        "--gate",
        "hallucination.multimodal_gain.ci_low>=0.15",
        "--gate",
        "hallucination.evidence_sensitivity.ci_low>=0.6",
    ]
    args = ["--export", str(export), *gates]
    assert main(["audit", "--answers", str(answers), *args, "--out", str(tmp_path / "clean")]) == 0
    capsys.readouterr()
    assert main(["audit", "--answers", str(bad), *args, "--out", str(tmp_path / "broken")]) == 1
    assert "FAIL" in capsys.readouterr().out
