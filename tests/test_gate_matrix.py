"""The planted-defect matrix: each shipped gate fails the defect it is meant for and passes the clean default.

The shipped suites run unchanged except for outputs no gate reads (free-text answers, captions, the untrained
baselines), which a test checks first; so these verdicts are the suites' own. README "Release gates" holds the
full matrix (every zoo model and variant, `python bench/gate_matrix.py`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mmdiag import api
from mmdiag.cli import main
from mmdiag.run.compare import compare_runs, find_regressions
from mmdiag.run.suites import load_suite
from mmdiag.zoo.build import SHIPPED_DIR

ROOT = Path(__file__).resolve().parent.parent
UNGATED = ("chair_i", "chair_s", "caption_recall", "untrained_")  # metrics of the outputs the light runs leave out
LIGHT = {
    "attention": {"generate_tokens": 0, "untrained_baseline": False},
    "spatial": {"untrained_baseline": False, "llm_layers": []},
    "hallucination": {"free_text": False, "captions": False},
}


def suite_config(name: str):  # noqa: ANN201 - AuditConfig
    """A shipped suite with the ungated outputs left out (same scenes, seed and gates)."""
    config = load_suite(ROOT / "probes" / f"{name}.yaml").config
    params = {probe: {**config.probe_params.get(probe, {}), **LIGHT[probe]} for probe in config.probes}
    return replace(config, probe_params=params)


def test_no_shipped_gate_reads_an_output_the_light_runs_leave_out():
    for name in ("release", "prior", "projector"):
        config = load_suite(ROOT / "probes" / f"{name}.yaml").config
        for kind in ("generative", "dual_encoder"):
            for gate in config.gates_for(kind):
                assert not any(part in gate for part in UNGATED), (name, gate)


def audit(tmp_path: Path, suite: str, model: str, defect: str | None = None, **changes) -> dict[str, dict]:
    """The gate outcomes of one run, by gate name (``changes`` alter the suite's configuration)."""
    outcome = api.audit(
        str(SHIPPED_DIR / model),
        tmp_path / f"{suite}-{model}-{defect}",
        replace(suite_config(suite), **changes),
        progress=False,
        plant=defect,
    )
    return {g["metric"] + ("" if g["bound"] == "value" else "." + g["bound"]): g for g in outcome.results["gates"]}


def only(suite: str, *probes: str) -> dict:
    """Configuration changes that run ``probes`` alone with their own gates."""
    config = suite_config(suite)
    keep = lambda gates: tuple(g for g in gates if g.split(".")[0] in probes)  # noqa: E731
    return {
        "probes": probes,
        "gates": keep(config.gates),
        "kind_gates": {kind: keep(gates) for kind, gates in config.kind_gates.items()},
        "probe_params": {k: v for k, v in config.probe_params.items() if k in probes},
    }


def assert_fails_apart(defect: dict, clean: dict, gate: str) -> None:
    """The defect fails ``gate``, and its CI excludes the clean model's value (or the metric is undefined)."""
    bad, good = defect[gate], clean[gate]
    assert good["passed"], good
    assert not bad["passed"], bad
    if bad["value"] is None:
        assert bad["reason"], bad
        return
    if bad["bound"] == "ci_low":  # higher is healthy
        assert bad["ci_high"] < good["estimate"], (bad, good)
    else:
        assert bad["ci_low"] > good["estimate"], (bad, good)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The clean models and the shuffled tokens at the release suite's own size; the drastic defects, whose failures
    are far from any threshold (README matrix), on its first 24 scenes to keep the suite fast."""
    root = tmp_path_factory.mktemp("release-matrix")
    variants = {
        "clean": ("ref-llava-mlp", None),
        "image-blind": ("ref-llava-mlp", "image-blind"),
        "untrained-vision-encoder": ("ref-llava-mlp", "untrained-vision-encoder"),
        "text-only-lm": ("ref-llava-mlp", "text-only-lm"),
        "shuffled-image-tokens": ("ref-llava-mlp", "shuffled-image-tokens"),
        "clip": ("ref-clip", None),
        "clip+image-blind": ("ref-clip", "image-blind"),
    }
    # the shuffled tokens pass every release gate: that is asserted at the suite's own size (a smaller set's wider
    # CIs would decide nothing); the drastic defects fail far from any threshold at 24
    drastic = ("image-blind", "untrained-vision-encoder", "text-only-lm")
    return {
        name: audit(root, "release", model, defect, **({"n_examples": 24} if defect in drastic else {}))
        for name, (model, defect) in variants.items()
    }


def test_clean_default_model_passes_every_release_gate(release):
    assert release["clean"] and all(g["passed"] for g in release["clean"].values()), [
        g for g in release["clean"].values() if not g["passed"]
    ]
    assert all(g["passed"] for g in release["clip"].values())


@pytest.mark.parametrize(
    "defect, gates",
    [
        (
            "image-blind",
            [
                "hallucination.multimodal_gain.ci_low",
                "hallucination.evidence_sensitivity.ci_low",
                "attention.blind_answer_shift.ci_low",
                "hallucination.prior_persistence_cooccurring.ci_high",
            ],
        ),
        (
            "untrained-vision-encoder",
            [
                "hallucination.accuracy.ci_low",
                "hallucination.multimodal_gain.ci_low",
                "hallucination.evidence_sensitivity.ci_low",
                "hallucination.mirror_sensitivity.ci_low",
            ],
        ),
        (
            "text-only-lm",
            [
                "attention.blind_answer_shift.ci_low",
                "hallucination.multimodal_gain.ci_low",
                "hallucination.prior_persistence_cooccurring.ci_high",
            ],
        ),
    ],
)
def test_each_defect_fails_the_gates_meant_for_it(release, defect, gates):
    for gate in gates:
        assert_fails_apart(release[defect], release["clean"], gate)


def test_image_blind_dual_encoder_fails_its_gates(release):
    for gate in (
        "hallucination.pair_accuracy.ci_low",
        "hallucination.multimodal_gain.ci_low",
        "hallucination.evidence_sensitivity.ci_low",
    ):
        assert_fails_apart(release["clip+image-blind"], release["clip"], gate)


def test_shuffled_tokens_pass_the_behavioural_gates_as_the_readme_says(release):
    """Shuffling token order keeps each token's content, and the vision tower's position embeddings travel in that
    content: answers still follow the layout (mirror sensitivity as high as the clean model's). No release gate
    can tell; the projector suite's spatial readout does (next test). Written down, not hidden by a threshold."""
    shuffled = release["shuffled-image-tokens"]
    assert all(g["passed"] for g in shuffled.values()), [g for g in shuffled.values() if not g["passed"]]
    assert (
        shuffled["hallucination.mirror_sensitivity.ci_low"]["ci_high"]
        >= release["clean"]["hallucination.mirror_sensitivity.ci_low"]["estimate"] - 0.1
    )


def test_projector_suite_catches_the_lost_token_layout(tmp_path):
    """The projector suite's spatial gate (its attention probe gates only integrity and is left out here)."""
    spatial_only = {"probes": ("spatial",), "gates": ("spatial.failed_examples <= 0",)}
    clean = audit(tmp_path, "projector", "ref-llava-mlp", **spatial_only)
    shuffled = audit(tmp_path, "projector", "ref-llava-mlp", "shuffled-image-tokens", **spatial_only)
    assert_fails_apart(shuffled, clean, "spatial.projector_grid_cell_above_chance.ci_low")


def test_prior_suite_catches_the_planted_cooccurrence_prior(tmp_path):
    """On scenes drawn with the planted co-occurrence the biased model fails both prior gates, and `mmdiag compare`
    finds it worse than the clean model pair by pair over the same scenes (paired CIs above 0); the paired
    persistence difference measured 0.18 [0.11, 0.26] over 73 scenes when the zoo was built."""
    clean = audit(tmp_path, "prior", "ref-llava-mlp")
    biased = audit(tmp_path, "prior", "ref-llava-biased")
    for gate in ("hallucination.adversarial_gap.ci_high", "hallucination.prior_persistence_cooccurring.ci_high"):
        assert_fails_apart(biased, clean, gate)
    comparison = compare_runs([tmp_path / "prior-ref-llava-mlp-None", tmp_path / "prior-ref-llava-biased-None"])
    paired = {d.metric: d for d in comparison.paired}
    for metric in ("prior_persistence_cooccurring", "adversarial_gap"):
        assert paired[metric].ci_low > 0, paired[metric]
    assert {d.metric for d in find_regressions(comparison)} >= {"prior_persistence_cooccurring", "adversarial_gap"}


def test_release_catches_the_planted_cooccurrence_prior(tmp_path):
    """The default suite exercises the prior (its hallucination scenes carry a co-occurrence): the biased zoo model
    fails it, naming the prior gates, where the clean model passes (bench/gate_power.py: at every seed of 10)."""
    light = only("release", "hallucination")
    clean = audit(tmp_path, "release", "ref-llava-mlp", **light)
    biased = audit(tmp_path, "release", "ref-llava-biased", **light)
    assert all(g["passed"] for g in clean.values())
    assert_fails_apart(biased, clean, "hallucination.adversarial_gap.ci_high")


@pytest.mark.slow
def test_cli_verdicts_on_the_default_model_and_a_planted_defect(tmp_path, capsys):
    """`mmdiag audit` passes the shipped default (the hallucination probe's gates here); an image-blind copy exits 1
    and the first line says FAIL, naming the gate with its value, CI and what the failure means."""
    assert main(["audit", "--out", str(tmp_path / "default"), "--no-progress", "--probes", "hallucination"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    gated = [
        g
        for g in load_suite(ROOT / "probes" / "release.yaml").config.gates_for("generative")
        if g.startswith("hallucination.")
    ]
    assert len(gated) >= 12 and first.startswith(f"PASS: {len(gated)} of {len(gated)} gates passed"), first
    assert (
        main(
            [
                "audit",
                "--out",
                str(tmp_path / "blind"),
                "--no-progress",
                "--plant",
                "image-blind",
                "--probes",
                "hallucination",
            ]
        )
        == 1
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FAIL: ") and "hallucination.multimodal_gain.ci_low >= 0.15" in lines[0]
    gain = next(line for line in lines[1:] if "multimodal_gain.ci_low" in line)
    assert "multimodal_gain 0 [0, 0]" in gain and "not using the image" in gain
    results = json.loads((tmp_path / "blind" / "results.json").read_text())
    assert results["metadata"]["model"]["planted_defect"] == "image-blind"
    gain = results["probes"]["hallucination"]["metrics"]["multimodal_gain"]
    assert gain["status"]["state"] == "alarming" and "not using the image" in gain["status"]["reason"]
    assert gain["guide"]["better"] == "higher" and gain["guide"]["reference"] == 0.0
    md = (tmp_path / "blind" / "report.md").read_text().splitlines()
    assert md[2].startswith("**FAIL: ") and any("not using the image" in line for line in md[:12])
    assert "not using the image" in (tmp_path / "blind" / "report.html").read_text()


def test_unknown_defect_is_refused_in_one_line(tmp_path, capsys):
    assert main(["audit", "--out", str(tmp_path / "r"), "--plant", "broken-somehow", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmdiag: error: unknown defect 'broken-somehow'") and "image-blind" in err
    assert not (tmp_path / "r").exists()
