"""Planted defects in the reference zoo: each diagnostic must catch its defect and pass the clean control.

Defect: a constant projector (image-blind: every image becomes the same tokens) planted into the shipped
ref-llava-mlp. Ground truth comes from the scene generator; every comparison carries a bootstrap CI. (The
planted co-occurrence prior of ref-llava-biased does not show yet — see the README's model card — so no test
claims it.)
"""

from __future__ import annotations

import pytest
import torch

from mmdiag.adapters import load_adapter
from mmdiag.probes.hallucination import HallucinationProbe
from mmdiag.probes.spatial import SpatialProbe
from mmdiag.scenes.generate import generate_scenes
from mmdiag.zoo.build import SHIPPED_DIR


def _shipped(name: str) -> str:
    folder = SHIPPED_DIR / name
    if not (folder / "config.json").is_file():
        pytest.fail(f"{name} is not shipped in {SHIPPED_DIR}")
    return str(folder)


def _run(probe, adapter, scenes):
    probe.setup(adapter)
    examples = probe.examples(scenes, adapter)
    outputs = probe.run_batch(adapter, examples)
    records = [{"example_id": ex.example_id, **o.values} for ex, o in zip(examples, outputs)]
    return probe.aggregate(adapter, records, [o.arrays for o in outputs])


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
