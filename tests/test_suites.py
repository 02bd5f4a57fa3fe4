"""Audit suites: every suite in probes/ ships in the package and parses, release is the default, mistakes are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mmdiag.cli import main
from mmdiag.errors import ConfigError
from mmdiag.run.suites import (
    SUITES_DIR,
    default_suite,
    load_suite,
    parse_suite,
    shipped_suites,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["release", "quick", "projector", "flow"])
def test_shipped_suites_parse(name):
    suite = load_suite(ROOT / "probes" / f"{name}.yaml")
    assert suite.name == name and (suite.config.gates or any(suite.config.kind_gates.values())) and suite.config.probes


RELEASE = yaml.safe_load((ROOT / "probes" / "release.yaml").read_text())


def test_every_suite_in_probes_is_shipped_in_the_package_and_release_is_the_default():
    """The package's suites are probes/*.yaml themselves (links in the source tree, copies in a wheel)."""
    shipped = {p.name: p.read_bytes() for p in SUITES_DIR.glob("*.yaml")}
    assert shipped == {p.name: p.read_bytes() for p in (ROOT / "probes").glob("*.yaml")}
    assert default_suite().config == load_suite(ROOT / "probes" / "release.yaml").config
    assert {s.name for s in shipped_suites()} == {"release", "quick", "projector", "prior", "flow"}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(sceens={"n": 3}), "unknown key 'sceens'"),
        (lambda d: d["scenes"].update(n="many"), "'scenes.n' must be an integer from 1"),
        (lambda d: d["scenes"].update(n=0), "'scenes.n' must be from 1 to 100000"),
        (lambda d: d["scenes"].update(resolution=-4), "'scenes.resolution' must be from 16"),
        (lambda d: d.update(seed=-1), "'seed' must be from 0"),
        (
            lambda d: d["probes"]["attention"].update(untrained_baseline="nope"),
            "'untrained_baseline' must be true or false",
        ),
        (lambda d: d["probes"]["hallucination"].update(max_questions=-2), "'max_questions' must be non-negative"),
        (lambda d: d["probes"]["spatial"].update(llm_layers="last"), "'llm_layers' must be a list"),
        (lambda d: d["probes"].update(telepathy={}), "unknown probe 'telepathy'"),
        (lambda d: d["probes"]["spatial"].update(folds=3), "probe 'spatial' does not take these parameters"),
        (lambda d: d.update(gates=["f1 is high"]), "probe.metric>=number"),
        (lambda d: d["scenes"].update(max_objects=9), "bad scenes recipe"),
        (lambda d: d.update(probes={}), "'probes' must map probe names"),
    ],
)
def test_mistakes_are_named(mutate, message):
    data = json.loads(json.dumps(RELEASE))
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        parse_suite(data, "mine.yaml")


def test_broken_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nprobes:\n  spatial: {\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML at line \d"):
        load_suite(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite(tmp_path / "missing.yaml")


def test_quick_suite_runs_and_a_failing_suite_gate_exits_1(tmp_path, tiny_paths, capsys):
    assert (
        main(
            [
                "audit",
                "--model",
                str(tiny_paths["llava"]),
                "--suite",
                str(ROOT / "probes" / "quick.yaml"),
                "--out",
                str(tmp_path / "quick"),
                "--no-progress",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "quick" / "results.json").read_text())
    assert results["metadata"]["config"]["n_scenes"] == 8
    assert [g["gate"] for g in results["gates"]] == [
        "attention.failed_examples <= 0",
        "spatial.failed_examples <= 0",
        "hallucination.failed_examples <= 0",
    ]
    out = capsys.readouterr().out  # integrity gates only: no release verdict, never "PASS"
    assert out.startswith("no release verdict: integrity checks only (3 of 3 passed)") and "PASS" not in out
    assert "no release verdict: wrote" in out
    assert "no release verdict: integrity checks only" in (tmp_path / "quick" / "report.md").read_text()
    assert "no release verdict: integrity checks only" in (tmp_path / "quick" / "report.html").read_text()
    strict = yaml.safe_load((ROOT / "probes" / "quick.yaml").read_text())
    strict["gates"].append("hallucination.accuracy >= 0.99")
    (tmp_path / "strict.yaml").write_text(yaml.safe_dump(strict))
    code = main(
        [
            "audit",
            "--model",
            str(tiny_paths["llava"]),
            "--suite",
            str(tmp_path / "strict.yaml"),
            "--out",
            str(tmp_path / "strict"),
            "--no-progress",
            "--probes",
            "hallucination",
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "hallucination.accuracy >= 0.99: FAIL" in out and "margin -" in out
    md = (tmp_path / "strict" / "report.md").read_text()
    assert "`hallucination.accuracy >= 0.99`" in md and "**FAIL**" in md  # gates as code: readable raw
    assert "spatial.failed_examples" not in md  # gates of probes the flags left out are dropped


def test_flags_override_the_suite(tmp_path, tiny_paths):
    assert (
        main(
            [
                "audit",
                "--model",
                str(tiny_paths["clip"]),
                "--suite",
                str(ROOT / "probes" / "quick.yaml"),
                "--out",
                str(tmp_path / "r"),
                "--no-progress",
                "--n-examples",
                "5",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    config = json.loads((tmp_path / "r" / "results.json").read_text())["metadata"]["config"]
    assert config["n_scenes"] == 5 and config["seed"] == 3


def test_suites_by_name(tmp_path, monkeypatch):
    """``--suite quick`` is the shipped probes/quick.yaml; a file path still wins, and an unknown name is refused
    with the names there are."""
    assert load_suite("quick").config == load_suite(ROOT / "probes" / "quick.yaml").config
    assert load_suite("quick.yaml").source.endswith("quick.yaml")
    assert load_suite("release").config == default_suite().config
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick").write_text((ROOT / "probes" / "prior.yaml").read_text())  # a file named like a suite wins
    assert load_suite("quick").config == load_suite(ROOT / "probes" / "prior.yaml").config
    with pytest.raises(ConfigError, match="suite nope does not exist: pass a YAML file or a suite name.*quick"):
        load_suite("nope")


def test_zoo_models_by_name(tmp_path, monkeypatch):
    from mmdiag.errors import MmdiagError
    from mmdiag.zoo.build import locate, resolve_model_name

    shipped = str(locate("ref-llava-biased"))
    assert resolve_model_name("ref-llava-biased") == shipped
    assert resolve_model_name("zoo:ref-llava-biased") == shipped
    assert resolve_model_name("org/name") == "org/name" and resolve_model_name(str(tmp_path)) == str(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ref-llava-biased").mkdir()  # a local folder of that name is the user's, not the zoo's
    assert resolve_model_name("ref-llava-biased") == "ref-llava-biased"
    with pytest.raises(MmdiagError, match="unknown zoo model 'ref-nope'"):
        resolve_model_name("zoo:ref-nope")
    monkeypatch.setenv("MMDIAG_HOME", str(tmp_path / "home"))
    with pytest.raises(MmdiagError, match="not shipped and not built here: run `mmdiag zoo build ref-llava-lm`"):
        resolve_model_name("ref-llava-lm")
