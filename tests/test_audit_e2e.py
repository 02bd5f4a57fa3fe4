"""``mmdiag audit`` on every tiny family writes the four files; gates drive the exit code."""

from __future__ import annotations

import json
import re

import pytest
from helpers import QUICK, integrity_suite

from mmdiag.checkpoints.tiny import FAMILIES
from mmdiag.cli import main
from mmdiag.results import SCHEMA_VERSION, read_examples

OUTPUTS = ("results.json", "examples.jsonl", "report.html", "report.md")


@pytest.mark.parametrize("family", FAMILIES)
def test_audit_writes_the_four_files(family_audits, tiny_paths, family):
    out, code = family_audits[family]
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == SCHEMA_VERSION
    # random weights: the integrity gates pass, the release suite's quality gates fail the model (exit 1)
    assert code == 1 and results["verdict"] == "fail"
    integrity = [g for g in results["gates"] if g["gate"].endswith("failed_examples <= 0")]
    assert len(integrity) == 3 and all(g["passed"] for g in integrity)
    assert any(not g["passed"] for g in results["gates"] if "multimodal_gain" in g["gate"])
    assert set(results["probes"]) == {"attention", "spatial", "hallucination"}
    meta = results["metadata"]
    assert meta["versions"]["torch"] and meta["versions"]["transformers"]
    assert meta["seed"] == 0 and meta["model"]["source"] == str(tiny_paths[family])
    assert len(meta["model"]["config_hash"]) == 16
    for probe in results["probes"].values():
        assert "error" not in probe, probe.get("error")
        assert probe["n_failed"] == 0
        for name, metric in probe["metrics"].items():  # a missing value always says why, and every value is read
            assert metric["value"] is not None or metric["undefined"], f"{probe['probe']}.{name} is missing silently"
            assert metric["guide"]["meaning"] and metric["status"]["reason"], name
    records = read_examples(out)
    probes_seen = {r["probe"] for r in records}
    assert probes_seen == {"attention", "spatial", "hallucination"}
    # every record carries what reproduces it: the scene (re-renderable) and its id
    assert all("scene" in r and r["scene"]["objects"] is not None and "example_id" in r for r in records)


def test_repeated_audits_give_identical_results(tmp_path, tiny_paths):
    docs = []
    for name in ("a", "b"):
        main(
            [
                "audit",
                "--model",
                str(tiny_paths["llava"]),
                "--out",
                str(tmp_path / name),
                "--n-examples",
                "8",
                "--no-progress",
            ]
        )
        doc = json.loads((tmp_path / name / "results.json").read_text())
        docs.append(doc["probes"])
    assert docs[0] == docs[1]


def test_failing_gate_exits_1_and_names_the_gate(tmp_path, tiny_paths, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "audit",
            "--model",
            str(tiny_paths["llava"]),
            "--out",
            str(out),
            "--n-examples",
            "6",
            "--no-progress",
            "--probes",
            "hallucination",
            "--gate",
            "hallucination.accuracy>=1.01",
            "--gate",
            "hallucination.yes_ratio>=0",
            "--suite",
            integrity_suite(),
        ]
    )
    assert code == 1
    printed = capsys.readouterr().out
    assert "hallucination.accuracy >= 1.01: FAIL" in printed
    assert "hallucination.yes_ratio >= 0: pass" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"] == "fail"
    failed = [g for g in results["gates"] if not g["passed"]]
    assert len(failed) == 1 and failed[0]["margin"] < 0
    assert "FAIL" in (out / "report.md").read_text()


def test_default_model_is_the_shipped_reference_llava(tmp_path, monkeypatch):
    """With no --model the audit runs on the shipped ref-llava-mlp (an empty cache changes nothing)."""
    from mmdiag.zoo.build import SHIPPED_DIR

    monkeypatch.setenv("MMDIAG_HOME", str(tmp_path / "home"))
    code = main(
        [
            "audit",
            "--out",
            str(tmp_path / "run"),
            "--n-examples",
            "4",
            "--no-progress",
            "--probes",
            "hallucination",
            "--suite",
            QUICK,
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["metadata"]["model"]["family"] == "llava"
    if (SHIPPED_DIR / "ref-llava-mlp" / "config.json").is_file():
        assert any("ref-llava-mlp" in note for note in results["notes"])
        assert results["metadata"]["model"]["source"].endswith("ref-llava-mlp")
    else:
        assert any("random-weight" in note for note in results["notes"])


def test_report_is_rebuilt_from_the_run_folder_alone(tmp_path, tiny_paths):
    out = tmp_path / "run"
    main(["audit", "--model", str(tiny_paths["blip2"]), "--out", str(out), "--n-examples", "6", "--no-progress"])
    first = (out / "report.md").read_text()
    (out / "report.html").unlink()
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == first
    assert (out / "report.html").is_file()


def test_model_and_dataset_strings_are_escaped_in_reports(tmp_path, tiny_paths):
    out = tmp_path / "run"
    main(["audit", "--model", str(tiny_paths["llava"]), "--out", str(out), "--n-examples", "4", "--no-progress"])
    attack = "<script>alert('x')</script>"
    results = json.loads((out / "results.json").read_text())
    results["metadata"]["model"]["source"] = attack
    results["notes"].append(attack)
    (out / "results.json").write_text(json.dumps(results))
    lines = (out / "examples.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for r in records:
        if r["probe"] == "hallucination":
            r["values"]["questions"][0] = attack
        r["example_id"] = attack + r["example_id"]
    (out / "examples.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    main(["report", str(out)])
    html = (out / "report.html").read_text()
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), f"duplicate ids: {sorted(i for i in set(ids) if ids.count(i) > 1)}"
    assert html.count("<h2") == len(re.findall(r"<h2[^>]*>", html)) and html.count('id="gates"') == 1
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    md = (out / "report.md").read_text()
    assert "\\<script>" in md and not re.search(r"(?<!\\)<script>", md)  # backslash-escaped: renders as text
