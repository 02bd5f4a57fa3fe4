"""One audit plan: validated and built once (the data source included), previewed by --dry-run, executed by
api.audit(plan) without being changed."""

from __future__ import annotations

import dataclasses

import pytest

from mmdiag import api
from mmdiag.cli import main
from mmdiag.errors import ConfigError
from mmdiag.sources import SourceRegistry
from mmdiag.sources.scenes import SceneSource


def test_dry_run_prints_what_would_run_and_touches_nothing(tiny_paths, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(["audit", "--model", str(tiny_paths["llava"]), "--out", str(out), "--dry-run", "--n-examples", "10"]) == 0
    )
    text = capsys.readouterr().out
    assert "LlavaForConditionalGeneration" in text and "served by mmdiag (built-in)" in text
    assert "data: 10 synthetic scenes" in text
    for probe in ("attention", "spatial", "hallucination"):
        assert f"probe {probe}: up to 10 examples" in text
    assert "hallucination.accuracy.ci_low >= 0.65" in text and "time: about" in text
    assert not out.exists()


def test_dry_run_refuses_what_the_run_would_refuse(tiny_paths, tmp_path, capsys):
    assert main(["audit", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--dry-run"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert (
        main(
            [
                "audit",
                "--model",
                str(tiny_paths["llava"]),
                "--out",
                str(tmp_path / "r"),
                "--dry-run",
                "--gate",
                "hallucination.accuracy >> 1",
            ]
        )
        == 2
    )


def test_the_plan_builds_the_data_source_once_and_the_audit_does_not_change_it(tiny_paths, tmp_path):
    made = []

    class Counting(SceneSource):
        def __init__(self, *args, **kwargs):
            made.append(1)
            super().__init__(*args, **kwargs)

    sources = SourceRegistry(load_entry_points=False)
    sources.register("scenes", Counting, override=True)
    config = api.AuditConfig(probes=("hallucination",), gates=("hallucination.failed_examples <= 0",))
    plan = api.plan_audit(
        str(tiny_paths["llava"]), tmp_path / "run", config, sources=sources, n_examples=6, progress=False
    )
    assert len(made) == 1 and plan.config.n_examples == 6 and [p.name for p in plan.probes] == ["hallucination"]
    before = dataclasses.asdict(plan.config)
    outcome = api.audit(plan)
    assert outcome.passed and dataclasses.asdict(plan.config) == before
    assert outcome.results["metadata"]["config"]["n_scenes"] == 6  # the results schema keeps its name
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.resume = True  # type: ignore[misc]
    with pytest.raises(ConfigError, match="takes the plan alone"):
        api.audit(plan, tmp_path / "other")


def test_limit_is_planned_and_noted(tiny_paths, tmp_path):
    plan = api.plan_audit(str(tiny_paths["llava"]), tmp_path / "run", limit="0.25")
    assert plan.config.n_examples == 24 and plan.limited_from == 96
    assert any(note.startswith("--limit: 24 of the suite's 96 scenes") for note in plan.notes)
