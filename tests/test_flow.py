"""The information-flow probe: knockout curves over LLM layers, FastV's safe layer and mirror patching, with known
answers on the reference model and its image-blind plant, on every decoder family's tiny checkpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mmdiag import api
from mmdiag.adapters import load_adapter
from mmdiag.adapters.generative import ScoreRequest
from mmdiag.cli import main
from mmdiag.probes.flow import patching
from mmdiag.probes.flow.curve import Change, changes, first_safe, read_until
from mmdiag.run.compare import compare_runs
from mmdiag.run.suites import load_suite
from mmdiag.zoo.build import SHIPPED_DIR

REFERENCE = SHIPPED_DIR / "ref-llava-mlp"
SUITE = Path(__file__).resolve().parent.parent / "probes" / "flow.yaml"


def test_layer_indices_follow_the_detectable_windows():
    c = lambda lo, hi: Change((lo + hi) / 2, lo, hi)  # noqa: E731
    assert read_until([c(-0.3, -0.1), c(-0.1, 0.1), c(-0.2, -0.05), c(-0.1, 0.1)], [0, 1, 2, 3], 1) == 3
    assert read_until([c(-0.1, 0.1)] * 4, [0, 1, 2, 3], 1) == 0
    assert read_until([c(-0.3, -0.1), c(-0.2, -0.1)], [0, 2], 2) == 4  # windows 0-1 and 2-3: read to the end
    assert first_safe([c(-0.3, -0.1), c(-0.1, 0.1), c(-0.1, 0.1)], [1, 2, 3]) == 2
    assert first_safe([c(-0.1, 0.1), c(-0.3, -0.1)], [1, 2]) is None  # the last layer is not safe: none is


def test_simultaneous_bands_are_wider_than_one_at_a_time():
    rng = np.random.default_rng(0)
    deltas = [rng.normal(-0.05, 0.2, size=(4, 3)) for _ in range(40)]
    single, family = changes(deltas, family=1), changes(deltas, family=3)
    for a, b in zip(single, family):
        assert a.value == b.value and b.ci_low < a.ci_low and b.ci_high > a.ci_high


@pytest.fixture(scope="module")
def flow_runs(tmp_path_factory):
    if not (REFERENCE / "config.json").is_file():
        pytest.skip("the shipped reference model is not installed")
    root = tmp_path_factory.mktemp("flow")
    config = replace(load_suite(SUITE).config, n_examples=24)
    for name, plant in (("clean", None), ("blind", "image-blind")):
        api.audit(str(REFERENCE), root / name, config, progress=False, plant=plant)
    return {name: json.loads((root / name / "results.json").read_text()) for name in ("clean", "blind")} | {
        "root": root
    }


def test_the_reference_model_reads_the_image_and_uses_the_layout(flow_runs):
    flow = flow_runs["clean"]["probes"]["flow"]
    metrics = flow["metrics"]
    assert metrics["image_dependence"]["ci_low"] > 0.1
    assert 1 <= metrics["read_until_layer"]["value"] <= flow["n_layers"]
    assert metrics["layout_use"]["ci_low"] > 0.3
    # a LLaVA's image reaches the LLM only through the projector: its output patched is the mirror image itself,
    # and patching the image tokens at layer 0's input is the same again
    assert metrics["layout_use"]["value"] == metrics["mirror_flip"]["value"] == flow["layout"][0]["flips"]
    assert len(flow["curves"]["question"]) == len(flow["curves"]["last"]) == flow["n_layers"]
    assert [f["k"] for f in flow["fastv"]] == list(range(1, flow["n_layers"]))
    assert flow_runs["clean"]["verdict"] == "pass"


def test_the_image_blind_plant_gives_a_flat_curve_and_no_layout_use(flow_runs):
    flow = flow_runs["blind"]["probes"]["flow"]
    metrics = flow["metrics"]
    for source, points in flow["curves"].items():
        for point in points:  # flat at zero: no window's knockout changes anything detectably
            assert point["ci_low"] <= 0 <= point["ci_high"], (source, point)
    assert metrics["read_until_layer"]["value"] == 0
    assert metrics["image_dependence"]["ci_low"] <= 0 <= metrics["image_dependence"]["ci_high"]
    assert metrics["layout_use"]["value"] == 0 and metrics["layout_read_by_layer"]["value"] == 0
    assert flow_runs["blind"]["verdict"] == "fail"


def test_compare_and_the_report_show_the_curves(flow_runs):
    root = flow_runs["root"]
    comparison = compare_runs([root / "clean", root / "blind"])
    worse = {d.metric for d in comparison.paired if d.run == "blind" and d.ci_high is not None and d.ci_high < 0}
    assert {"image_dependence", "layout_use"} <= worse
    html = (root / "clean" / "report.html").read_text()
    assert "Information flow: where the image enters the answer" in html and html.count("data:image/png") >= 2


def test_patching_with_the_scenes_own_recording_changes_nothing():
    if not (REFERENCE / "config.json").is_file():
        pytest.skip("the shipped reference model is not installed")
    from mmdiag.scenes.generate import generate_scenes
    from mmdiag.scenes.render import render

    adapter = load_adapter(str(REFERENCE))
    request = ScoreRequest(render(generate_scenes(1, seed=4)[0], 64), ["Is the red circle left of the blue square?"])
    (plain,) = adapter.answer_scores_batch([request])
    with patching.recording(adapter) as kept:
        adapter.answer_scores_batch([request])
    for layer in (None, 0, 2):
        with patching.patched(adapter, kept, layer):
            (again,) = adapter.answer_scores_batch([request])
        assert np.array_equal(again.p_yes, plain.p_yes), layer
    with pytest.raises(patching.PatchMismatch), patching.patched(adapter, kept, 1):
        adapter.answer_scores_batch([request, request])  # another computation than the recorded one
    assert not adapter.projector_module()._forward_hooks and not adapter.lm_layers()[1]._forward_pre_hooks


def test_the_flow_probe_runs_on_every_decoder_family_or_says_why_not(tiny_paths, tmp_path, capsys):
    ran = []
    for family, path in tiny_paths.items():
        if family in ("clip", "siglip", "siglip2", "open_clip"):
            continue
        out = tmp_path / family
        code = main(["audit", "--model", str(path), "--suite", str(SUITE), "--n-examples", "2", "--out", str(out),
                     "--no-progress"])  # fmt: skip
        err = capsys.readouterr().err
        if family.endswith("_t5"):
            assert code == 2 and "the flow probe cannot measure this model" in err and err.count("\n") == 1
            continue
        results = json.loads((out / "results.json").read_text())
        flow = results["probes"]["flow"]
        assert flow["n_failed"] == 0 and flow["n_examples"] == 2, family
        assert flow["metrics"]["image_dependence"]["value"] is not None, family
        ran.append(family)
    from mmdiag.families import family_of_tiny

    decoders = [f for f in tiny_paths if family_of_tiny(f).kind == "generative" and not f.endswith("_t5")]
    assert ran == decoders  # every decoder-only family
