"""mmdiag compare: paired differences equal an independent computation; mismatches are warned about."""

from __future__ import annotations

import json
from pathlib import Path

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
    for name, model, seed, extra in (
        ("a", tiny_paths["llava"], "0", []),
        ("b", other, "0", []),
        ("c", other, "5", []),
        ("gated", other, "0", ["--gate", "hallucination.f1>=0.0"]),
    ):
        assert (
            main(
                [
                    "audit",
                    "--model",
                    str(model),
                    "--out",
                    str(root / name),
                    "--n-examples",
                    "10",
                    "--seed",
                    seed,
                    "--no-progress",
                    "--probes",
                    "hallucination,attention",
                    "--suite",
                    QUICK,
                    *extra,
                ]
            )
            == 0
        )
    return root


def random_split_answers(run):
    """Per scene: (right answers, questions) on the random split, from the records alone."""
    out = {}
    for r in read_examples(run):
        if r["probe"] == "hallucination":
            v = r["values"]
            says = np.array(v["p_yes"]) > np.array(v["p_no"])
            random = np.array(["random" in sp for sp in v["splits"]])
            right = says == (np.array(v["labels"]) == "yes")
            out[r["example_id"]] = (float(right[random].sum()), float(random.sum()))
    return out


def test_paired_differences_match_an_independent_computation(runs):
    comparison = compare_runs([runs / "a", runs / "b"])
    assert not comparison.warnings
    diff = next(d for d in comparison.paired if d.probe == "hallucination" and d.metric == "accuracy")
    a, b = random_split_answers(runs / "a"), random_split_answers(runs / "b")
    expected = sum(b[k][0] for k in a) / sum(b[k][1] for k in a) - sum(a[k][0] for k in a) / sum(a[k][1] for k in a)
    assert diff.n == 10 and diff.mean_difference == pytest.approx(expected)
    assert diff.ci_low <= diff.mean_difference <= diff.ci_high
    assert {(d.probe, d.metric) for d in comparison.paired} >= {
        ("attention", "mean_image_mass"),
        ("hallucination", "multimodal_gain"),
    }


def test_paired_difference_equals_the_difference_of_the_headline_values(runs):
    """Over the same examples, every paired Δ is the candidate's headline value minus the baseline's."""
    comparison = compare_runs([runs / "a", runs / "b"])
    headline = {r.label: r.metrics for r in comparison.runs}
    checked = 0
    for d in comparison.paired:
        base, run = headline[d.baseline][d.probe].get(d.metric), headline[d.run][d.probe].get(d.metric)
        if base is None or run is None or d.metric == "adversarial_gap" and d.n < 10:
            continue
        assert d.mean_difference == pytest.approx(run - base, abs=1e-9), (d.probe, d.metric)
        checked += 1
    assert checked >= 10


@pytest.fixture(scope="module")
def spatial_runs(tiny_paths, runs):
    """The spatial probe alone on the two tiny LLaVAs of ``runs``, same scenes and seed."""
    for name, model in (("spatial-a", tiny_paths["llava"]), ("spatial-b", runs / "other-llava")):
        assert (
            main(
                [
                    "audit",
                    "--model",
                    str(model),
                    "--out",
                    str(runs / name),
                    "--n-examples",
                    "12",
                    "--no-progress",
                    "--probes",
                    "spatial",
                    "--suite",
                    QUICK,
                    "--no-untrained-baseline",
                ]
            )
            == 0
        )
    return runs / "spatial-a", runs / "spatial-b"


def test_every_gated_metric_of_the_shipped_suites_pairs(runs, finished_run, spatial_runs):
    flow_run = runs / "flow"
    suite = Path(__file__).resolve().parent.parent / "probes" / "flow.yaml"
    if not flow_run.exists():
        main(["audit", "--model", str(runs / "other-llava"), "--suite", str(suite), "--n-examples", "3",
              "--out", str(flow_run), "--no-progress"])  # fmt: skip
    """compare reports a regression on any gate: each gated metric's spec names a paired form, and the probe gives
    that form on real records (the spatial readouts, cross-validated over the whole set, from its result)."""
    from mmdiag.probes.metric_spec import spec_for
    from mmdiag.probes.registry import ProbeRegistry
    from mmdiag.results import read_results
    from mmdiag.run.compare import _paired_per_example
    from mmdiag.run.suites import shipped_suites

    registry = ProbeRegistry()
    paired = {}
    for kind, run in (
        ("generative", runs / "a"),
        ("generative", spatial_runs[0]),
        ("generative", flow_run),
        ("dual_encoder", finished_run),
    ):
        results = read_results(run)
        by_probe = {}
        for r in read_examples(run):
            by_probe.setdefault(r["probe"], {})[r["example_id"]] = r["values"]
        for probe, records in by_probe.items():
            values = _paired_per_example(registry.get(probe), records, results["probes"].get(probe))
            paired.setdefault(kind, {}).setdefault(probe, set()).update(values)
    checked = 0
    for suite in shipped_suites():
        by_kind = {kind: [*suite.config.gates, *suite.config.kind_gates.get(kind, ())] for kind in paired}
        for kind, gates in by_kind.items():
            for gate in gates:
                probe_name, metric = gate.split()[0].split(".")[:2]
                if metric == "failed_examples":
                    continue
                spec = spec_for(registry.get(probe_name), metric)
                assert spec is not None and spec.paired, (
                    f"{suite.name}: {kind} gate {gate}: its spec names no paired form"
                )
                assert metric in paired[kind][probe_name], f"{suite.name}: {kind} gate {gate} has no paired values"
                checked += 1
    assert checked >= 14


def test_spatial_readouts_pair_and_the_difference_is_the_headline_difference(spatial_runs):
    comparison = compare_runs(list(spatial_runs))
    headline = {r.label: r.metrics for r in comparison.runs}
    found = [d for d in comparison.paired if d.probe == "spatial"]
    assert {d.metric for d in found} == {
        "projector_grid_cell_above_chance",
        "projector_grid_cell_in_content_above_chance",
    }
    for d in found:
        base, run = headline[d.baseline]["spatial"][d.metric], headline[d.run]["spatial"][d.metric]
        assert d.n == 12 and d.mean_difference == pytest.approx(run - base, abs=1e-9)
        assert d.ci_low <= d.mean_difference <= d.ci_high


def test_a_run_against_itself_differs_by_exactly_zero(runs):
    comparison = compare_runs([runs / "a", runs / "a"])
    assert comparison.paired and all(
        d.mean_difference == 0 and d.ci_low == 0 and d.ci_high == 0 for d in comparison.paired
    )
    assert len({r.label for r in comparison.runs}) == 2  # labels stay distinct


def test_mismatched_runs_get_a_warning_and_no_pairs(runs, capsys):
    assert main(["compare", str(runs / "a"), str(runs / "c"), "--out", str(runs / "cmp")]) == 0
    err = capsys.readouterr().err
    assert "not run with the same suite/scenes/seed" in err and "seed 0 vs 5" in err  # names the real difference
    assert "n_scenes" not in err and "gates" not in err
    data = json.loads((runs / "cmp" / "compare.json").read_text())
    assert data["paired"] == [] and data["warnings"]
    html = (runs / "cmp" / "compare.html").read_text()
    assert "not run with the same suite/scenes/seed" in html and "<script" not in html
    assert "| hallucination | f1 |" in (runs / "cmp" / "compare.md").read_text()


def test_compare_needs_two_runs(runs, capsys):
    assert main(["compare", str(runs / "a"), "--out", str(runs / "x")]) == 2
    assert "at least two run folders" in capsys.readouterr().err


def test_runs_that_differ_only_in_gates_pair_and_differences_carry_direction_and_meaning(runs):
    comparison = compare_runs([runs / "a", runs / "gated"])
    assert not comparison.warnings and comparison.paired  # an added --gate does not change what is measured
    accuracy = next(d for d in comparison.paired if (d.probe, d.metric) == ("hallucination", "accuracy"))
    assert accuracy.better == 1 and "POPE accuracy" in accuracy.meaning
    expected = (
        "no detectable change"
        if accuracy.ci_low <= 0 <= accuracy.ci_high
        else "better"
        if accuracy.ci_low > 0
        else "worse"
    )
    assert accuracy.change == expected
    yes_ratio = next(d for d in comparison.paired if d.metric == "yes_ratio")
    assert yes_ratio.better == 0 and yes_ratio.change in ("no detectable change", "changed (no better direction)")


def test_compare_pages_show_differences_cis_and_meanings(runs):
    assert (
        main(["compare", str(runs / "a"), str(runs / "b"), "--out", str(runs / "cmp2"), "--fail-on-regression", "0.5"])
        == 0
    )
    md = (runs / "cmp2" / "compare.md").read_text()
    assert "**Regression check: PASS**" in md and "| Δ b |" in md and "difference [95% CI]" in md
    assert "POPE accuracy on the random split" in md
    html = (runs / "cmp2" / "compare.html").read_text()
    assert "Paired differences" in html and "Δ b" in html and "what it means" in html and 'id="contents"' in html


def test_compare_without_out_writes_beside_the_last_run_and_prints_what_moved(runs, capsys):
    assert main(["compare", str(runs / "a"), str(runs / "b")]) == 0
    out = capsys.readouterr().out
    folder = runs / "compare-a-vs-b"
    assert (folder / "compare.html").is_file() and f"next: open {folder / 'compare.html'}" in out
    comparison = compare_runs([runs / "a", runs / "b"])
    moved = [d for d in comparison.paired if d.change in ("better", "worse")]
    assert moved, "two different random models: some paired metric moves detectably"
    largest = max(moved, key=lambda d: abs(d.mean_difference))
    assert f"{largest.change} {largest.probe}.{largest.metric}: b - a = {largest.mean_difference:+.3f}" in out
    assert out.index("a: ") < out.index(f"{largest.change} {largest.probe}.{largest.metric}")
    for page in ("compare.html", "compare.md"):  # the pages lead with the same summary
        text = (folder / page).read_text()
        assert text.index(f"{largest.change} {largest.probe}.{largest.metric}") < text.index("Paired differences")


def test_a_passing_run_with_alarming_metrics_is_reconciled_and_undefined_values_say_why(runs, tmp_path):
    """A run that passes its own gates yet has metrics outside the release suite's healthy range gets a line saying
    why both hold; a metric without a value says why in the side-by-side table (HTML and Markdown)."""
    import shutil

    from mmdiag.report.compare_report import render_compare_html, render_compare_markdown

    for name in ("a", "b"):
        shutil.copytree(runs / name, tmp_path / name)
    path = tmp_path / "b" / "results.json"
    results = json.loads(path.read_text())
    metrics = results["probes"]["hallucination"]["metrics"]
    metrics["accuracy"]["status"] = {"state": "alarming", "reason": "outside the release suite's healthy range"}
    metrics["f1"].update(value=None, ci_low=None, ci_high=None, undefined="no yes answer and no yes label")
    metrics["f1"]["status"] = {"state": "undefined", "reason": "no yes answer and no yes label"}
    results["verdict"] = "pass"
    path.write_text(json.dumps(results))
    comparison = compare_runs([tmp_path / "a", tmp_path / "b"])
    (line,) = [line for line in comparison.summary() if line.startswith("b passes its own gates")]
    assert "yet" in line and "hallucination.accuracy" in line and "which this run's suite does not gate" in line
    html, md = render_compare_html(comparison), render_compare_markdown(comparison)
    assert "passes its own gates" in html and "no yes answer and no yes label" in html
    assert "– (no yes answer and no yes label)" in md
    results["verdict"] = "fail"  # a failing run has nothing to reconcile: its verdict already says it
    path.write_text(json.dumps(results))
    assert not any(line.startswith("b passes") for line in compare_runs([tmp_path / "a", tmp_path / "b"]).summary())
