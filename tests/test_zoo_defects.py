"""Planted defects in the reference zoo: each diagnostic must catch its defect and pass the clean control.

Defects: a constant projector (image-blind: every image becomes the same tokens) planted into the shipped
ref-llava-mlp, and the co-occurrence prior trained into ref-llava-biased (annotations name a green triangle
next to every red circle). Ground truth comes from the scene generator; every comparison carries a bootstrap CI,
paired by scene where two models answer the same scenes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mmdiag.adapters import load_adapter
from mmdiag.metrics.stats import bootstrap_ci
from mmdiag.probes.hallucination import HallucinationProbe
from mmdiag.probes.spatial import SpatialProbe
from mmdiag.scenes.generate import SceneRecipe, generate_scenes
from mmdiag.zoo.build import SHIPPED_DIR
from mmdiag.zoo.recipes import BIAS


def _shipped(name: str) -> str:
    folder = SHIPPED_DIR / name
    if not (folder / "config.json").is_file():
        pytest.fail(f"{name} is not shipped in {SHIPPED_DIR}")
    return str(folder)


def _run(probe, adapter, scenes, with_records=False):
    probe.setup(adapter)
    examples = probe.examples(scenes, adapter)
    outputs = probe.run_batch(adapter, examples)
    records = [{"example_id": ex.example_id, **o.values} for ex, o in zip(examples, outputs)]
    result = probe.aggregate(adapter, records, [o.arrays for o in outputs])
    return (result, records) if with_records else result


def _paired_difference(metric, baseline, other):
    """Mean per-scene difference other - baseline of a probe's paired value, with its bootstrap CI."""
    base = {r["example_id"]: HallucinationProbe.paired_values(r)[metric] for r in baseline}
    diffs = np.array([HallucinationProbe.paired_values(r)[metric] - base[r["example_id"]] for r in other])
    diffs = diffs[np.isfinite(diffs)]
    return float(diffs.mean()), *bootstrap_ci(diffs, seed=0), len(diffs)


def _blinded(adapter):
    """The same model with its projector's output made constant (image ignored)."""
    projector = adapter.model.model.multi_modal_projector
    with torch.no_grad():
        projector.linear_2.weight.zero_()
    return adapter


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(40, seed=50_000)


def test_clean_model_uses_the_image_and_the_blinded_one_does_not(scenes):
    probe = HallucinationProbe(captions=False, free_text=False)
    clean = _run(probe, load_adapter(_shipped("ref-llava-mlp")), scenes).metrics
    assert clean["multimodal_gain"].ci_low > 0.1, clean["multimodal_gain"]
    assert clean["evidence_sensitivity"].ci_low > 0.5, clean["evidence_sensitivity"]
    blind = _run(HallucinationProbe(captions=False, free_text=False), _blinded(load_adapter(_shipped("ref-llava-mlp"))),
                 scenes).metrics
    assert blind["multimodal_gain"].value == 0.0
    assert blind["evidence_sensitivity"].value == 0.0


def test_spatial_probe_sees_position_in_the_clean_projector_and_none_in_the_blinded_one():
    probe = SpatialProbe(untrained_baseline=False, llm_layers=())
    scenes = generate_scenes(80, seed=50_001, recipe=probe.scene_recipe())
    clean = _run(probe, load_adapter(_shipped("ref-llava-mlp")), scenes)
    cell = clean.readouts["flattened"]["projector"]["grid_cell"]
    assert cell["ci_low"] > cell["chance"], cell
    blind = _run(SpatialProbe(untrained_baseline=False, llm_layers=()), _blinded(load_adapter(_shipped("ref-llava-mlp"))), scenes)
    for readout in blind.readouts.values():
        for task in ("half", "grid_cell", "left_of"):
            stats = readout["projector"][task]
            assert stats["score"] <= stats["chance"] + 1e-9 and stats["ci_low"] <= stats["chance"], (task, stats)


def test_spatial_probe_catches_the_resamplers_lost_locality():
    """Same encoder, same LLM, same data: the 16-query resampler's tokens carry far less of the object's grid cell
    than the MLP projector's (CIs apart), as the projector comparison in the README reports."""
    probe = SpatialProbe(untrained_baseline=False, llm_layers=())
    scenes = generate_scenes(80, seed=50_004, recipe=probe.scene_recipe())
    mlp = _run(probe, load_adapter(_shipped("ref-llava-mlp")), scenes).readouts["flattened"]["projector"]["grid_cell"]
    resampler = _run(SpatialProbe(untrained_baseline=False, llm_layers=()), load_adapter(_shipped("ref-llava-resampler")),
                     scenes).readouts["flattened"]["projector"]["grid_cell"]
    assert resampler["ci_high"] < mlp["ci_low"], (resampler, mlp)


def test_planted_prior_is_caught_as_persistence_and_adversarial_gap():
    """On scenes drawn with the planted co-occurrence (a green triangle next to half the red circles), the biased
    model keeps saying yes once the co-occurring object is erased, and says yes to the absent co-occurring object
    more than to random absent ones, both more than the clean model on the same scenes (paired CIs above 0).
    (The 20-point target is the next test's; here the shipped models measured a paired persistence difference of
    0.18 [0.11, 0.26] over 73 scenes.)"""
    scenes = generate_scenes(100, seed=50_002, recipe=SceneRecipe(cooccurrence=replace(BIAS, anchor_rate=0.8)))
    probe = HallucinationProbe(captions=False, free_text=False)
    clean, clean_records = _run(probe, load_adapter(_shipped("ref-llava-mlp")), scenes, with_records=True)
    biased, biased_records = _run(HallucinationProbe(captions=False, free_text=False),
                                  load_adapter(_shipped("ref-llava-biased")), scenes, with_records=True)
    persistence = _paired_difference("prior_persistence_cooccurring", clean_records, biased_records)
    assert persistence[1] > 0, persistence
    gap = _paired_difference("adversarial_gap", clean_records, biased_records)
    assert gap[1] > 0, gap
    assert biased.metrics["prior_persistence_cooccurring"].ci_low > clean.metrics["prior_persistence_cooccurring"].ci_high
    assert biased.metrics["adversarial_gap"].ci_low > 0, biased.metrics["adversarial_gap"]


def test_biased_model_says_yes_after_removal_20_points_more_than_the_clean_one():
    """The zoo's target: yes to the erased co-occurring object >= 20 points more often than ref-llava-mlp
    (paired over the same scenes, the CI's lower end above 0.20)."""
    from mmdiag.zoo.models import prior_yes_after_removal

    clean = prior_yes_after_removal(load_adapter(_shipped("ref-llava-mlp")), BIAS, 60, 64, seed=50_003)
    biased = prior_yes_after_removal(load_adapter(_shipped("ref-llava-biased")), BIAS, 60, 64, seed=50_003)
    diff = biased.astype(float) - clean.astype(float)
    low, _ = bootstrap_ci(diff, seed=0)
    assert len(diff) >= 40 and low > 0.2, (diff.mean(), low)
