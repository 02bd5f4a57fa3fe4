"""mmdiag compare: paired differences equal an independent computation; mismatches are warned about."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import QUICK

from mmdiag.checkpoints.tiny import TinySpec, build_tiny
from mmdiag.cli import main
from mmdiag.results import read_examples
from mmdiag.run.compare import compare_runs


@pytest.fixture(scope="module")
def runs(tiny_paths, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    other = build_tiny("llava", root / "other-llava", TinySpec(seed=1))
    for name, model, seed in (("a", tiny_paths["llava"], "0"), ("b", other, "0"), ("c", other, "5")):
        assert main(["audit", "--model", str(model), "--out", str(root / name), "--n-scenes", "10", "--seed", seed,
                     "--no-progress", "--probes", "hallucination,attention", "--suite", QUICK]) == 0
    return root


def per_example_accuracy(run):
    out = {}
    for r in read_examples(run):
        if r["probe"] == "hallucination":
            v = r["values"]
            says = np.array(v["p_yes"]) > np.array(v["p_no"])
            out[r["example_id"]] = float(np.mean(says == (np.array(v["labels"]) == "yes")))
    return out


def test_paired_differences_match_an_independent_computation(runs):
    comparison = compare_runs([runs / "a", runs / "b"])
    assert not comparison.warnings
    diff = next(d for d in comparison.paired if d.probe == "hallucination" and d.metric == "accuracy")
    a, b = per_example_accuracy(runs / "a"), per_example_accuracy(runs / "b")
    expected = np.mean([b[k] - a[k] for k in a])
    assert diff.n == 10 and diff.mean_difference == pytest.approx(expected)
    assert diff.ci_low <= diff.mean_difference <= diff.ci_high
    assert {(d.probe, d.metric) for d in comparison.paired} >= {("attention", "mean_image_mass"), ("hallucination", "multimodal_gain")}


def test_a_run_against_itself_differs_by_exactly_zero(runs):
    comparison = compare_runs([runs / "a", runs / "a"])
    assert comparison.paired and all(d.mean_difference == 0 and d.ci_low == 0 and d.ci_high == 0 for d in comparison.paired)
    assert len({r.label for r in comparison.runs}) == 2  # labels stay distinct


def test_mismatched_runs_get_a_warning_and_no_pairs(runs, capsys):
    assert main(["compare", str(runs / "a"), str(runs / "c"), "--out", str(runs / "cmp")]) == 0
    assert "not run with the same suite/scenes/seed" in capsys.readouterr().err
    data = json.loads((runs / "cmp" / "compare.json").read_text())
    assert data["paired"] == [] and data["warnings"]
    html = (runs / "cmp" / "compare.html").read_text()
    assert "not run with the same suite/scenes/seed" in html and "<script" not in html
    assert "| hallucination | f1 |" in (runs / "cmp" / "compare.md").read_text()


def test_compare_needs_two_runs(runs, capsys):
    assert main(["compare", str(runs / "a"), "--out", str(runs / "x")]) == 2
    assert "at least two run folders" in capsys.readouterr().err
