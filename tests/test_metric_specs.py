"""One home per metric: every headline metric has one MetricSpec, owned by its probe, from which the metric names
per kind, the reports' guides, a failed gate's sentence, compare's pairing and the metric table are derived; the
registries refuse a name clash loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmdiag.errors import ConfigError
from mmdiag.probes.metric_spec import PAIRINGS, MetricSpec, metric_table, spec_for, specs_of
from mmdiag.probes.registry import ProbeRegistry
from mmdiag.run.suites import shipped_suites

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ProbeRegistry().names())
def test_every_metric_spec_says_what_it_is_how_it_is_computed_and_how_it_pairs(name):
    cls = ProbeRegistry().get(name)
    assert specs_of(cls), f"{name} declares no metric specs"
    for metric, spec in specs_of(cls).items():
        assert spec.meaning and spec.computed, f"{name}.{metric}: meaning and how it is computed"
        assert spec.paired in (None, *PAIRINGS)
        assert spec.paired or spec.unpaired, f"{name}.{metric}: a paired form, or why there is none"
        assert not spec.kinds or set(spec.kinds) <= set(cls.kinds)
    reported = {m for names in cls.metric_names.values() for m in names}
    assert reported == set(specs_of(cls)), "metric_names are derived from the specs"


def test_every_gated_metric_of_every_shipped_suite_has_a_paired_form_and_a_failure_sentence():
    registry = ProbeRegistry()
    gated = set()
    for suite in shipped_suites():
        for gate in (*suite.config.gates, *(g for group in suite.config.kind_gates.values() for g in group)):
            probe, metric = gate.split()[0].split(".")[:2]
            spec = spec_for(registry.get(probe), metric)
            assert spec is not None, gate
            if metric == "failed_examples":
                continue
            assert spec.paired, f"{suite.name}: {gate} is gated but its spec names no paired form"
            assert spec.failure, f"{suite.name}: {gate} is gated but says nothing when it fails"
            gated.add(f"{probe}.{metric}")
    assert len(gated) >= 14


def test_a_metric_spec_refuses_an_unknown_direction_or_pairing():
    with pytest.raises(ValueError, match="better"):
        MetricSpec("x", better="up")
    with pytest.raises(ValueError, match="paired"):
        MetricSpec("x", paired="median")


def test_a_failed_gate_prints_its_specs_sentence():
    from mmdiag.run.gates import evaluate_gates, parse_gate

    probes = {"hallucination": {"metrics": {"multimodal_gain": {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}}}}
    (outcome,) = evaluate_gates([parse_gate("hallucination.multimodal_gain.ci_low >= 0.15")], probes)
    cls = ProbeRegistry().get("hallucination")
    assert not outcome.passed and outcome.meaning == cls.metric_specs["multimodal_gain"].failure


def test_the_metric_table_in_the_docs_is_generated_from_the_specs():
    from mmdiag.docs_tables import metrics_table

    registry = ProbeRegistry(load_entry_points=False)
    table = metric_table({name: registry.get(name) for name in registry.names()})
    page = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert "<!-- mmdiag:metrics -->" in page and metrics_table() == table  # the site generates it from the specs
    assert table.count("\n") - 2 == sum(len(specs_of(registry.get(n))) for n in registry.names())


def test_the_metrics_command_prints_the_table(capsys):
    from mmdiag.cli import main

    assert main(["metrics", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| `hallucination.multimodal_gain` |" in out and "bootstrap" in out
    assert main(["metrics", "--probe", "spatial"]) == 0
    out = capsys.readouterr().out
    assert "spatial.projector_grid_cell_above_chance" in out and "hallucination." not in out


class _Other:
    pass


def test_a_registry_refuses_a_name_clash_naming_both_providers():
    from mmdiag.sources import SourceRegistry

    registry = SourceRegistry(load_entry_points=False)
    with pytest.raises(ConfigError, match=r"data source 'coco' is provided twice: by mmdiag \(built-in\) and by"):
        registry.register("coco", "their_pkg.sources:Coco")
    registry.register("coco", "their_pkg.sources:Coco", override=True)  # asked for explicitly
    assert "their_pkg" in registry.provider("coco")


def test_an_entry_point_named_like_a_builtin_is_refused(tmp_path, monkeypatch):
    """An installed package whose entry point takes a built-in's name does not silently vanish (or win)."""
    import sys

    dist = tmp_path / "clash-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mmdiag.probes]\nattention = clash_pkg:MyAttention\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    with pytest.raises(ConfigError, match=r"probe 'attention' is provided twice: by mmdiag \(built-in\) and by clash"):
        ProbeRegistry()


def test_a_registered_object_must_be_of_the_registrys_kind():
    from mmdiag.sources import SourceRegistry

    registry = SourceRegistry(load_entry_points=False)
    registry.register("odd", _Other)
    with pytest.raises(ConfigError, match=r"data source 'odd' from register\(\).*not a .*DataSource"):
        registry.get("odd")
    probes = ProbeRegistry(load_entry_points=False)
    probes.register("odd", lambda **params: _Other())
    with pytest.raises(ConfigError, match="made a _Other, not a Probe"):
        probes.create("odd")
