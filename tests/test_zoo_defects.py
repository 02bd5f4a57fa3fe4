"""Planted defects in the reference zoo: each diagnostic must catch its defect and pass the clean control.

Defects: a constant projector (image-blind: every image becomes the same tokens) planted into the shipped
ref-llava-mlp, and the co-occurrence prior trained into ref-llava-biased (annotations name a green triangle
next to every red circle). Ground truth comes from the scene generator; every comparison carries a bootstrap CI,
paired by scene where two models answer the same scenes. The release, prior and projector gates on these and
the other planted defects: tests/test_gate_matrix.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdiag.adapters import load_adapter
from mmdiag.metrics.stats import bootstrap_ci
from mmdiag.probes.spatial import SpatialProbe
from mmdiag.scenes.generate import generate_scenes
from mmdiag.sources.scenes import SceneSource, as_data
from mmdiag.zoo.build import SHIPPED_DIR
from mmdiag.zoo.recipes import BIAS


def _shipped(name: str) -> str:
    folder = SHIPPED_DIR / name
    if not (folder / "config.json").is_file():
        pytest.fail(f"{name} is not shipped in {SHIPPED_DIR}")
    return str(folder)


def _run(probe, adapter, scenes):
    probe.setup(adapter)
    examples = probe.examples(as_data(scenes), adapter)
    outputs = probe.run_batch(adapter, examples)
    records = [{"example_id": ex.example_id, **o.values} for ex, o in zip(examples, outputs)]
    result = probe.aggregate(adapter, records, [o.arrays for o in outputs])
    return result


def _blinded(adapter):
    """The same model with its projector's output made constant (image ignored)."""
    projector = adapter.model.model.multi_modal_projector
    with torch.no_grad():
        projector.linear_2.weight.zero_()
    return adapter


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(40, seed=50_000)


def test_spatial_probe_sees_position_in_the_clean_projector_and_none_in_the_blinded_one():
    probe = SpatialProbe(untrained_baseline=False, llm_layers=())
    scenes = SceneSource().examples(80, 50_001, probe.data_request())
    clean = _run(probe, load_adapter(_shipped("ref-llava-mlp")), scenes)
    cell = clean.readouts["flattened"]["projector"]["grid_cell"]
    assert cell["ci_low"] > cell["chance"], cell
    blind = _run(
        SpatialProbe(untrained_baseline=False, llm_layers=()), _blinded(load_adapter(_shipped("ref-llava-mlp"))), scenes
    )
    for readout in blind.readouts.values():
        for task in ("half", "grid_cell", "left_of"):
            stats = readout["projector"][task]
            assert stats["ci_low"] <= stats["chance"], (task, stats)
            if stats["null_p"] is not None:  # a permutation null: the blinded projector never beats it
                assert stats["null_p"] > 0.05, (task, stats)
            else:  # majority-class chance: constant tokens predict the training fold's majority at best
                assert stats["score"] <= stats["chance"] + 1e-9, (task, stats)


def test_spatial_probe_catches_the_resamplers_lost_locality():
    """Same encoder, same LLM, same data: the 16-query resampler's tokens carry far less of the object's grid cell
    than the MLP projector's (CIs apart), as the projector comparison in the README reports."""
    probe = SpatialProbe(untrained_baseline=False, llm_layers=())
    scenes = SceneSource().examples(80, 50_004, probe.data_request())
    mlp = _run(probe, load_adapter(_shipped("ref-llava-mlp")), scenes).readouts["flattened"]["projector"]["grid_cell"]
    resampler = _run(
        SpatialProbe(untrained_baseline=False, llm_layers=()), load_adapter(_shipped("ref-llava-resampler")), scenes
    ).readouts["flattened"]["projector"]["grid_cell"]
    assert resampler["ci_high"] < mlp["ci_low"], (resampler, mlp)


def test_biased_model_says_yes_after_removal_20_points_more_than_the_clean_one():
    """The zoo's target: yes to the erased co-occurring object >= 20 points more often than ref-llava-mlp
    (paired over the same scenes, the CI's lower end above 0.20)."""
    from mmdiag.zoo.models import prior_yes_after_removal

    clean = prior_yes_after_removal(load_adapter(_shipped("ref-llava-mlp")), BIAS, 60, 64, seed=50_003)
    biased = prior_yes_after_removal(load_adapter(_shipped("ref-llava-biased")), BIAS, 60, 64, seed=50_003)
    diff = biased.astype(float) - clean.astype(float)
    low, _ = bootstrap_ci(diff, seed=0)
    assert len(diff) >= 40 and low > 0.2, (diff.mean(), low)


def test_text_only_lm_leaves_every_scoring_path_blind_to_the_image():
    """The text-only-lm defect closes the image positions on every path that scores yes/no: questions packed
    behind one prefix (4D mask), one question at a time (2D mask), and the KV-cache continuation; two different
    images then score the same, while the clean model tells them apart."""
    from mmdiag.adapters.generative import ScoreRequest
    from mmdiag.scenes.render import render
    from mmdiag.zoo.defects import plant_defect

    images = [render(scene, 64) for scene in generate_scenes(2, seed=50_005)]
    questions = ["Is there a red circle?", "Is there a blue square?", "Is the green triangle left of the circle?"]
    clean = load_adapter(_shipped("ref-llava-mlp"))
    clean_scores = clean.answer_scores_batch([ScoreRequest(image, questions) for image in images])
    assert max(abs(a - b) for a, b in zip(clean_scores[0].p_yes, clean_scores[1].p_yes)) > 1e-3
    planted = plant_defect(load_adapter(_shipped("ref-llava-mlp")), "text-only-lm")
    packed = planted.answer_scores_batch([ScoreRequest(image, questions) for image in images])
    np.testing.assert_allclose(packed[0].p_yes, packed[1].p_yes, rtol=1e-5, atol=1e-7)
    for image, scores in zip(images, packed):
        alone = planted.answer_scores([image] * len(questions), questions)
        np.testing.assert_allclose(scores.p_yes, alone.p_yes, rtol=1e-4, atol=1e-7)
