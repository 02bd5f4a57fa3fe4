"""The graded defect family of ``bench/planted_defects.py`` (weight edits on saved copies, no mmdiag code) against
the default suite's gates, calibrated beforehand on clean models over seeds (``bench/gate_power.py``).

A model that is consistently wrong must fail, not only one that does not react: mirrored position embeddings
(relations read backwards) fail the correctness gates although the answers still flip with the mirror; a
yes-bias fails the yes-ratio gate; a near-identical control (1e-4 relative noise) passes. Strengths are those at
which the README matrix shows the gate firing at every seed; the test runs one seed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest

from mmdiag import api
from mmdiag.zoo.build import SHIPPED_DIR

ROOT = Path(__file__).resolve().parent.parent


def _bench(name: str):  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict[str, dict]]:
    """Gate outcomes (by gate) of the clean default model and of planted copies, on the release suite's gated
    probes at its own size and seed (the outputs no gate reads left out, as bench/gate_power.py runs it)."""
    defects, power = _bench("planted_defects"), _bench("gate_power")
    root = tmp_path_factory.mktemp("defects")
    source = SHIPPED_DIR / "ref-llava-mlp"
    models = {"clean": source}
    for defect, strength in (("mirrored-positions", 1.0), ("yes-bias", 12.0), ("control", 1e-4)):
        models[defect] = Path(defects.plant(source, defect, strength, root / f"{defect}-{strength:g}")["folder"])
    config = power.gated_config(0)
    return {
        name: {
            g["gate"]: g
            for g in api.audit(str(path), root / "runs" / name, replace(config), progress=False).results["gates"]
        }
        for name, path in models.items()
    }


def test_the_defects_are_made_without_mmdiag():
    text = (ROOT / "bench" / "planted_defects.py").read_text()
    assert "import mmdiag" not in text and "from mmdiag" not in text


def test_the_near_identical_control_and_the_clean_model_pass(outcomes):
    for name in ("clean", "control"):
        assert all(g["passed"] for g in outcomes[name].values()), [
            g["gate"] for g in outcomes[name].values() if not g["passed"]
        ]


def test_mirrored_positions_fail_the_correctness_gates_while_still_reacting(outcomes):
    mirrored = outcomes["mirrored-positions"]
    for gate in mirrored:
        if gate.startswith(("hallucination.mirror_accuracy", "hallucination.relation_accuracy_horizontal")):
            assert not mirrored[gate]["passed"], mirrored[gate]
            assert mirrored[gate]["ci_high"] < outcomes["clean"][gate]["estimate"]
    sensitivity = next(g for name, g in mirrored.items() if name.startswith("hallucination.mirror_sensitivity"))
    assert sensitivity["estimate"] > 0.5  # it reacts to the mirror: a change-based gate alone is fooled


def test_a_yes_bias_fails_the_yes_ratio_gate(outcomes):
    biased = outcomes["yes-bias"]
    gate = next(name for name in biased if name.startswith("hallucination.yes_ratio.ci_high"))
    assert not biased[gate]["passed"] and outcomes["clean"][gate]["passed"], biased[gate]


@pytest.mark.parametrize("seed", [3, 17])
def test_the_clean_default_passes_the_release_gates_at_other_seeds(seed, tmp_path):
    """Thresholds were calibrated on seeds 0-9 and held out on 10-19 (README "Release gates"): a clean model passes
    whatever scenes the seed draws."""
    config = _bench("gate_power").gated_config(seed)
    results = api.audit(str(SHIPPED_DIR / "ref-llava-mlp"), tmp_path / "run", config, progress=False).results
    assert results["verdict"] == "pass", [g["gate"] for g in results["gates"] if not g["passed"]]
