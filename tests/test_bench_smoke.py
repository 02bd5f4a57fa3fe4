"""The benchmarks run and report ratios (tiny geometry; no timing is asserted, benchmarks are not tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_attention_overhead_bench_runs(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "attention_overhead.py"),
            "--image-size",
            "56",
            "--layers",
            "2",
            "--hidden",
            "64",
            "--heads",
            "4",
            "--repeats",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["image_tokens"] == 16
    assert set(result["ratios"]) == {"probe_time", "probe_peak_memory", "eager_time", "eager_peak_memory"}
    # eager materialises layers x heads x N x N attention: it must allocate more than the plain forward
    assert result["peak_mib"]["eager"] > result["peak_mib"]["plain"]


def test_yes_no_scoring_bench_gives_identical_decisions(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "yes_no_scoring.py"),
            "--images",
            "2",
            "--layers",
            "1",
            "--hidden",
            "64",
            "--resolution",
            "56",
            "--questions",
            "2,6",
            "--repeats",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # one JSON line per questions-per-image
    assert [r["questions_per_image"] for r in rows] == [2, 6]
    assert all(r["questions"] == 2 * r["questions_per_image"] and r["identical_decisions"] for r in rows)
    assert all(r["throughput_ratio"] > 0 and r["cost_vs_one_forward"] > 0 for r in rows)


def test_audit_speed_bench_reports_every_phase(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "audit_speed.py"),
            "--suite",
            str(ROOT / "probes" / "quick.yaml"),
            "--repeats",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["end_to_end_s"] > 0
    phases = result["phases_s"]
    for probe in ("attention", "spatial", "hallucination"):
        assert phases[f"{probe}: measure"] > 0 and phases[f"{probe}: aggregate"] > 0
    assert phases["model load"] > 0 and phases["report"] > 0
    # the phases happen inside the audit: their sum cannot exceed it
    suffix = " (in model forwards)"
    forwards = {k.removesuffix(suffix): v for k, v in phases.items() if k.endswith(suffix)}
    outside = ("imports", "audit total (in process)")
    inner = sum(v for k, v in phases.items() if k not in outside and not k.endswith(suffix))
    assert inner <= phases["audit total (in process)"] + 0.5
    # every measuring loop runs the model, and a phase's forwards are part of it
    assert all(forwards[f"{probe}: measure"] > 0 for probe in ("attention", "spatial", "hallucination"))
    assert all(0 < v <= phases[k] + 0.05 for k, v in forwards.items())
    assert "compare" not in result  # a suite other than the release one: no comparison unless asked


def test_audit_speed_added_cost_is_the_line_through_two_sizes():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from audit_speed import added_cost
    finally:
        sys.path.remove(str(ROOT / "bench"))
    small = {"load": 3.0, "measure": 2.0 + 0.05 * 48, "measure (in model forwards)": 1.0}
    large = {"load": 3.0, "measure": 2.0 + 0.05 * 96, "measure (in model forwards)": 2.0}
    cost = added_cost(small, large, 48, 96)
    assert set(cost) == {"load", "measure"}  # forward shares are parts of phases, not phases
    assert cost["load"] == {"at_48": 3.0, "at_96": 3.0, "added_s": 0.0, "fixed_s": 3.0, "per_scene_ms": 0.0}
    assert cost["measure"]["added_s"] == 2.4 and cost["measure"]["fixed_s"] == 2.0
    assert cost["measure"]["per_scene_ms"] == 50.0


def test_gpu_bench_runs_on_a_tiny_geometry(tmp_path):
    """The prepared accelerator benchmark, checked on the CPU at a tiny geometry: every figure, one JSON line each."""
    out = tmp_path / "gpu.jsonl"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--tiny", "--images", "2", "--json-lines", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    figures = {line["figure"]: line for line in lines}
    assert set(figures) == {"device", "parameters", "load", "attention_overhead", "yes_no", "audit_images_per_s"}
    assert figures["yes_no"]["identical_decisions"] is True
    assert figures["audit_images_per_s"]["scenes_per_s"] > 0


def test_scaling_bench_reports_time_memory_and_a_plot(tmp_path):
    out, plot = tmp_path / "scaling.jsonl", tmp_path / "scaling.png"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "scaling.py"),
            "--sizes",
            "3,6",
            "--suite",
            "quick",
            "--json",
            str(out),
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["scenes"] for r in rows] == [3, 6] and all(r["wall_s"] > 0 and r["peak_rss_mib"] > 100 for r in rows)
    assert rows[0]["time_per_scene_vs_smallest"] == 1.0 and plot.stat().st_size > 1000
