"""Metric guidance: every headline metric says which way is better, its no-signal value, the healthy range of the
release gates and what it means; a run's status per metric follows the gates and flags values that are not
findings."""

from __future__ import annotations

import pytest

from mmdiag.probes.guidance import annotate_results, assess, state_rank
from mmdiag.probes.metric_spec import FAILED_EXAMPLES
from mmdiag.probes.metric_spec import MetricSpec as MetricGuide
from mmdiag.probes.metric_spec import spec_for as guide_for
from mmdiag.probes.registry import ProbeRegistry
from mmdiag.probes.spatial.specs import METRIC_SPECS as SPATIAL
from mmdiag.run.suites import release_gates_for


@pytest.mark.parametrize("name", ProbeRegistry().names())
def test_every_headline_metric_of_every_probe_has_a_guide(name):
    cls = ProbeRegistry().get(name)
    for kind, metrics in cls.metric_names.items():
        for metric in metrics:
            guide = guide_for(cls, metric)
            assert guide is not None, f"{name}.{metric} ({kind}) has no MetricGuide"
            assert guide.meaning and len(guide.meaning) > 20, f"{name}.{metric}: say what it means"
    assert guide_for(cls, "failed_examples") is FAILED_EXAMPLES


def test_every_release_gate_names_a_guided_metric():
    registry = ProbeRegistry()
    for kind in ("generative", "dual_encoder"):
        for gate in release_gates_for(kind):
            probe, metric = gate.split()[0].split(".")[:2]
            assert guide_for(registry.get(probe), metric) is not None, gate


def _gate(text, passed, meaning=None):
    return {"gate": text, "metric": ".".join(text.split()[0].split(".")[:2]), "passed": passed, "meaning": meaning}


GAIN = MetricGuide("accuracy with the image minus accuracy without it", reference=0.0, reference_label="blind")


def test_a_failed_gate_is_alarming_with_its_meaning():
    metric = {"value": 0.02, "ci_low": -0.01, "ci_high": 0.05}
    out = assess(metric, GAIN, [_gate("h.gain.ci_low >= 0.15", False, "not using the image")], [], {})
    assert out["status"]["state"] == "alarming" and "not using the image" in out["status"]["reason"]
    assert out["guide"]["healthy"] == "CI low >= 0.15" and out["guide"]["healthy_source"] == "this run's gates"


def test_outside_the_release_range_is_alarming_even_when_this_run_does_not_gate_it():
    metric = {"value": 0.1, "ci_low": 0.05, "ci_high": 0.15}
    out = assess(metric, GAIN, [], ["h.gain.ci_low >= 0.15"], {})
    assert out["status"]["state"] == "alarming" and "not gated in this run" in out["status"]["reason"]
    healthy = assess({"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}, GAIN, [], ["h.gain.ci_low >= 0.15"], {})
    assert healthy["status"]["state"] == "healthy"


def test_a_passing_gate_is_healthy_and_an_undefined_value_says_why():
    assert (
        assess({"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}, GAIN, [_gate("h.gain.ci_low >= 0.15", True)], [], {})[
            "status"
        ]["state"]
        == "healthy"
    )
    out = assess(
        {"value": None, "ci_low": None, "ci_high": None, "undefined": "no co-occurring pairs"}, GAIN, [], [], {}
    )
    assert out["status"] == {"state": "undefined", "reason": "no co-occurring pairs"}


def test_a_ci_covering_the_no_signal_value_is_at_reference_and_the_ideal_value_is_healthy():
    out = assess({"value": 0.01, "ci_low": -0.02, "ci_high": 0.04}, GAIN, [], [], {})
    assert out["status"]["state"] == "at_reference" and "not distinguishable" in out["status"]["reason"]
    gap = MetricGuide(
        "false yes on co-occurring minus random absent objects", better="lower", reference=0.0, reference_is="ideal"
    )
    assert assess({"value": 0.01, "ci_low": -0.02, "ci_high": 0.04}, gap, [], [], {})["status"]["state"] == "healthy"
    away = assess({"value": 0.3, "ci_low": 0.2, "ci_high": 0.4}, gap, [], [], {})["status"]
    assert away["state"] == "measured" and "0.3 from the ideal" in away["reason"]


def test_unstable_values_are_flagged_with_the_reason():
    wide = assess({"value": 0.7, "ci_low": 0.27, "ci_high": 1.18}, SPATIAL["grid_cell_retention"], [], [], {})
    assert wide["status"]["state"] == "unstable" and "wider than 0.6" in wide["status"]["reason"]
    huge = assess({"value": 5.25, "ci_low": 4.9, "ci_high": 5.5}, SPATIAL["position_retention"], [], [], {})
    assert huge["status"]["state"] == "unstable" and "divides by almost nothing" in huge["status"]["reason"]
    negative = assess({"value": -0.27, "ci_low": -0.46, "ci_high": -0.06}, SPATIAL["grid_cell_selectivity"], [], [], {})
    assert negative["status"]["state"] == "unstable" and "memorises" in negative["status"]["reason"]
    fine = assess({"value": 0.9, "ci_low": 0.8, "ci_high": 1.0}, SPATIAL["grid_cell_retention"], [], [], {})
    assert fine["status"]["state"] == "healthy"  # lossless is the ideal: consistent with it


def test_a_reference_can_come_from_the_probe_result():
    from mmdiag.probes.attention.specs import METRIC_SPECS as GUIDES

    result = {"token_counts": {"bos": 1.0, "image": 64.0, "instruction": 15.0}}
    out = assess({"value": 0.55, "ci_low": 0.54, "ci_high": 0.56}, GUIDES["mean_image_mass"], [], [], result)
    assert out["guide"]["reference"] == pytest.approx(0.8)
    assert (
        out["status"]["state"] == "measured"
        and "below" in out["status"]["reason"]
        and "worse side" in out["status"]["reason"]
    )


def test_annotation_sorts_failed_gates_first():
    probes = {
        "h": {
            "metrics": {
                "ok": {"value": 0.9, "ci_low": 0.8, "ci_high": 0.95, "description": ""},
                "bad": {"value": 0.1, "ci_low": 0.0, "ci_high": 0.2, "description": ""},
            }
        }
    }
    annotate_results(probes, [_gate("h.bad.ci_low >= 0.5", False), _gate("h.ok.ci_low >= 0.5", True)], {}, [])
    rows = sorted(probes["h"]["metrics"].items(), key=lambda kv: state_rank(kv[1]))
    assert [name for name, _ in rows] == ["bad", "ok"]
    assert probes["h"]["metrics"]["bad"]["status"]["state"] == "alarming"
