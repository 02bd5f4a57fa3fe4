"""A third-party probe installed as an entry point gets, from its own MetricSpec and report section alone: the
metric's guide in results.json, its failure sentence on a failed gate, pairing in mmdiag compare and its section in
the report (tests/blank_yes_probe.py; no core file names it)."""

from __future__ import annotations

import pytest
from blank_yes_probe import SPECS, BlankYesProbe

from mmdiag.checkpoints.tiny import TinySpec, build_tiny
from mmdiag.cli import main
from mmdiag.probes.registry import ProbeRegistry
from mmdiag.results import read_results
from mmdiag.run.compare import compare_runs


@pytest.fixture()
def installed(tmp_path, monkeypatch):
    dist = tmp_path / "blank_yes-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: blank-yes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mmdiag.probes]\nblank_yes = blank_yes_probe:BlankYesProbe\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert ProbeRegistry().get("blank_yes") is BlankYesProbe


def test_a_plugin_probe_gets_guides_gates_pairing_and_a_section(installed, tiny_paths, tmp_path):
    other = build_tiny("llava", tmp_path / "other", TinySpec(seed=3))
    for name, model in (("a", tiny_paths["llava"]), ("b", other)):
        code = main(
            [
                "audit",
                "--model",
                str(model),
                "--out",
                str(tmp_path / name),
                "--probes",
                "blank_yes",
                "--n-examples",
                "6",
                "--no-progress",
                "--gate",
                "blank_yes.blank_yes_rate <= -1",
            ]
        )
        assert code == 1  # a rate is never below 0: the gate fails by construction
    results = read_results(tmp_path / "a")
    metric = results["probes"]["blank_yes"]["metrics"]["blank_yes_rate"]
    assert metric["guide"]["meaning"] == SPECS["blank_yes_rate"].meaning and metric["guide"]["better"] == "lower"
    (gate,) = [g for g in results["gates"] if g["gate"].startswith("blank_yes.blank_yes_rate")]
    assert gate["meaning"] == SPECS["blank_yes_rate"].failure
    paired = [d for d in compare_runs([tmp_path / "a", tmp_path / "b"]).paired if d.probe == "blank_yes"]
    assert [d.metric for d in paired] == ["blank_yes_rate"] and paired[0].n == 6
    html = (tmp_path / "a" / "report.html").read_text()
    assert '<details class="part" id="blank-yes"><summary>Yes on a blank image</summary>' in html
    assert "yes on blank" in html
    assert 'id="finding-blank_yes"' in html and "blank_yes_rate" in html  # the default finding: a card of its own
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html and "<b>not bold</b>" not in html
    assert main(["metrics", "--probe", "blank_yes"]) == 0
