"""Known-answer tests: numbers computed independently of the probes' own code paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdiag.adapters import load_adapter
from mmdiag.probes.attention import AttentionProbe
from mmdiag.probes.attention.parts import PARTS, sink_free
from mmdiag.probes.hallucination import HallucinationProbe
from mmdiag.probes.spatial import SpatialProbe
from mmdiag.scenes.generate import generate_scenes
from mmdiag.scenes.render import render
from mmdiag.sources.scenes import SceneSource, as_data


def _run(probe, adapter, scenes):
    probe.setup(adapter)
    examples = probe.examples(as_data(scenes), adapter)
    outputs = [probe.run_example(adapter, ex) for ex in examples]
    records = [{"example_id": ex.example_id, **o.values} for ex, o in zip(examples, outputs)]
    return probe.aggregate(adapter, records, [o.arrays for o in outputs])


@pytest.fixture(scope="module")
def constant_projector_llava(tiny_paths):
    """The tiny LLaVA with a projector that maps every image to the same tokens (image ignored)."""
    adapter = load_adapter(str(tiny_paths["llava"]))
    with torch.no_grad():
        adapter.model.model.multi_modal_projector.linear_2.weight.zero_()
        adapter.model.model.multi_modal_projector.linear_2.bias.normal_()
    return adapter


def measure(adapter, seed=3, generate_tokens=0, probe=None):
    probe = probe or AttentionProbe(generate_tokens=generate_tokens, untrained_baseline=False)
    prompt = adapter.prepare([render(generate_scenes(1, seed=seed)[0])], ["Is there a red circle in the image?"])
    prompt_end = int(prompt.last_positions()[0])
    batch, _ = probe._with_answer(adapter, prompt)
    return probe._measure(adapter, batch, prompt_end), batch, prompt_end


@pytest.mark.parametrize("family", ["llava", "blip2"])
def test_part_masses_equal_sums_of_the_eager_reference(adapters, family):
    adapter = adapters[family]
    measured, batch, last = measure(adapter)
    with adapter.eager_attention():
        out = adapter.forward(batch, output_attentions=True)
    attentions = out.language_model_outputs.attentions if family == "blip2" else out.attentions
    ids = batch.input_ids[0].tolist()
    image = [i for i, t in enumerate(ids) if t == adapter.image_token_id]
    bos = ids.index(adapter.tokenizer.bos_token_id)
    system = [i for i in range(min(image)) if i != bos]
    instruction = [i for i in range(max(image) + 1, last + 1) if i != bos]
    assert (bos == 0) == (family == "llava")  # BLIP-2 places the image before BOS
    for layer, att in enumerate(attentions):
        row = att[0, :, last].double().numpy()  # [heads, keys], materialised by transformers
        expected = np.stack(
            [
                row[:, bos],
                row[:, system].sum(-1),
                row[:, image].sum(-1),
                row[:, instruction].sum(-1),
                np.zeros(row.shape[0]),
            ],
            -1,
        )
        np.testing.assert_allclose(measured["masses"][layer, :, 0], expected, atol=1e-5)
    assert measured["masses"].shape[-1] == len(PARTS)
    np.testing.assert_allclose(measured["masses"].sum(-1), 1.0, atol=1e-5)  # parts sum to 1


def test_masked_image_tokens_receive_zero_mass(adapters):
    adapter = adapters["llava"]
    probe = AttentionProbe(untrained_baseline=False)
    batch = adapter.prepare([render(generate_scenes(1, seed=4)[0])], ["Is there a red circle in the image?"])
    last = int(batch.last_positions()[0])
    for start, end in batch.image_spans[0]:
        batch.inputs["attention_mask"][:, start:end] = 0
    measured = probe._measure(adapter, batch, last)
    assert np.abs(measured["masses"][..., PARTS.index("image")]).max() < 1e-12
    np.testing.assert_allclose(measured["masses"].sum(-1), 1.0, atol=1e-5)


def test_uniform_attention_gives_the_image_token_share(adapters):
    """With all queries zeroed, softmax is uniform: image mass = image tokens / visible tokens (0.533 here)."""
    adapter = load_adapter(str(adapters["llava"].source))
    with torch.no_grad():
        for attn in adapter.lm_attention_modules():
            attn.q_proj.weight.zero_()
    measured, batch, last = measure(adapter, seed=5)
    n_image = sum(e - s for s, e in batch.image_spans[0])
    np.testing.assert_allclose(measured["masses"][..., PARTS.index("image")], n_image / (last + 1), atol=1e-6)


def test_uniform_attention_aggregates_to_efficiency_ratio_one(adapters):
    """Uniform attention spreads mass in proportion to token counts, so FastV's ε ratio is exactly 1."""
    adapter = load_adapter(str(adapters["llava"].source))
    with torch.no_grad():
        for attn in adapter.lm_attention_modules():
            attn.q_proj.weight.zero_()
    result = _run(AttentionProbe(untrained_baseline=False), adapter, generate_scenes(6, seed=8))
    assert result.metrics["image_text_efficiency_ratio"].value == pytest.approx(1.0, abs=1e-5)
    counts = result.token_counts
    share = counts["image"] / sum(counts.values())
    assert result.metrics["mean_image_mass"].value == pytest.approx(share, abs=1e-5)
    assert result.metrics["object_attention_ratio"].value == pytest.approx(1.0, abs=1e-5)


def test_answer_token_rows_include_generated_tokens(adapters):
    adapter = adapters["llava"]
    measured, batch, last = measure(adapter, generate_tokens=3)
    n_generated = batch.input_ids.shape[1] - (last + 1)
    assert n_generated >= 2
    masses = measured["masses"]
    assert masses.shape[2] == n_generated  # the prompt row plus one row per generated token but the last
    np.testing.assert_allclose(masses.sum(-1), 1.0, atol=1e-5)
    assert np.all(masses[:, :, 0, PARTS.index("generated")] == 0)  # the prompt row sees no answer yet
    assert np.all(masses[:, :, 1:, PARTS.index("generated")] > 0)


def test_a_planted_massive_activation_is_detected_as_a_visual_sink(tiny_paths):
    """Blow up one dimension of image token 5 at the projector output: it must be flagged and excluded."""
    adapter = load_adapter(str(tiny_paths["llava"]))

    def plant(module, args, output):
        output = output.clone()
        output[:, 5, 0] = 500.0
        return output

    handle = adapter.model.model.multi_modal_projector.register_forward_hook(plant)
    try:
        probe = AttentionProbe(untrained_baseline=False, sink_from_layer=0)
        measured, _, _ = measure(adapter, probe=probe)
    finally:
        handle.remove()
    assert measured["sinks"] == [5]
    assert measured["phi_max"] >= 20
    masses, rows = measured["masses"][:, :, 0], measured["image_rows"][:, :, 0]
    free, sink_mass = sink_free(masses, rows, measured["sinks"])
    np.testing.assert_allclose(sink_mass, masses[..., PARTS.index("bos")] + rows[..., 5], atol=1e-7)
    np.testing.assert_allclose(free.sum(-1), 1.0, atol=1e-6)
    assert np.all(free[..., PARTS.index("bos")] == 0)


def test_constant_projector_has_no_multimodal_gain(constant_projector_llava):
    scenes = generate_scenes(10, seed=1)
    result = _run(HallucinationProbe(), constant_projector_llava, scenes)
    assert result.metrics["multimodal_gain"].value == 0.0
    assert result.metrics["accuracy"].value == result.metrics["blind_accuracy"].value
    attention = _run(AttentionProbe(), constant_projector_llava, scenes)
    assert attention.metrics["blind_answer_shift"].value == pytest.approx(0.0, abs=1e-6)
    assert attention.metrics["blind_tv_distance"].value == pytest.approx(0.0, abs=1e-6)


def test_constant_projector_keeps_no_position_information(constant_projector_llava):
    probe = SpatialProbe()
    scenes = SceneSource().examples(60, 2, probe.data_request())
    result = _run(probe, constant_projector_llava, scenes)
    projector = result.scores["projector"]
    for task in ("half", "grid_cell", "colour"):  # constant features: never better than the permutation null
        assert projector[task]["null_p"] > 0.05 and projector[task]["chance_from"].startswith("label-permutation"), task
        assert projector[task]["difference"] < 0 or result.scores["vision_encoder"][task]["null_p"] > 0.05, task
    for task in ("centre_x", "centre_y"):
        assert projector[task]["score"] <= 0.0 + 1e-6, task  # R² of a constant readout is at most 0
    for readout in result.readouts.values():
        for stage in ("projector", *[s for s in result.stages if s.startswith("llm_layer")]):
            for task in ("half", "grid_cell", "left_of", "above"):
                stats = readout[stage][task]
                if stats["null_p"] is not None:
                    assert stats["null_p"] > 0.05, (stage, task)
                else:  # majority-class chance: a constant input predicts the training fold's majority at best
                    assert stats["score"] <= stats["chance"] + 1e-9, (stage, task)
                assert stats["ci_low"] <= stats["chance"], (stage, task)  # the CI includes chance
    assert result.metrics["position_retention"].value is None or result.metrics["position_retention"].value <= 0.05
    assert result.metrics["relation_retention"].value is None or result.metrics["relation_retention"].value <= 0.05


def test_identity_projector_keeps_everything(tiny_paths):
    """A projector that passes the patches through unchanged retains exactly what the encoder had: retention 1."""
    adapter = load_adapter(str(tiny_paths["llava"]))
    adapter.model.model.multi_modal_projector = torch.nn.Identity()  # vision and text widths are equal here
    probe = SpatialProbe(untrained_baseline=False, llm_layers=())
    result = _run(probe, adapter, SceneSource().examples(50, 2, probe.data_request()))
    for readout in result.readouts.values():
        for task, stats in readout["projector"].items():
            assert stats["score"] == readout["vision_encoder"][task]["score"], task
            if stats["retention"] is not None:
                assert stats["retention"] == pytest.approx(1.0), task
    assert result.cka["projector"] == pytest.approx(1.0)
    assert result.knn_overlap["projector"] == pytest.approx(1.0)


def test_spatial_results_repeat_exactly(adapters, monkeypatch):
    """Twice the same result, also when the readouts' fits run one at a time instead of on a thread pool."""
    import mmdiag.probes.spatial as spatial

    probe = SpatialProbe(llm_layers=("last",))
    scenes = SceneSource().examples(30, 4, probe.data_request())
    first = _run(probe, adapters["llava"], scenes).to_dict()
    monkeypatch.setattr(spatial, "MAX_FIT_THREADS", 1)
    second = _run(SpatialProbe(llm_layers=("last",)), adapters["llava"], scenes).to_dict()
    assert first == second


def test_vision_features_carry_colour_above_chance(adapters):
    """Random patch embeddings still carry pixel colour: the flattened readout must find some of it
    (measured 0.50 against a chance of 0.30 on these 60 scenes), unlike the constant projector above."""
    probe = SpatialProbe()
    scenes = SceneSource().examples(60, 2, probe.data_request())
    result = _run(probe, adapters["llava"], scenes)
    colour = result.scores["vision_encoder"]["colour"]
    assert colour["score"] >= colour["chance"] + 0.1


def test_constant_projector_ignores_every_edit(constant_projector_llava):
    """Image ignored: no answer changes under any edit (sensitivity 0), every yes survives, no blind input
    changes accuracy (multimodal gain 0 against each)."""
    result = _run(
        HallucinationProbe(captions=False, free_text=False), constant_projector_llava, generate_scenes(12, seed=1)
    )
    assert result.metrics["evidence_sensitivity"].value == 0.0
    assert set(result.counterfactuals) == {"remove", "swap", "mirror", "remove_cooccurring"}
    assert result.metrics["mirror_sensitivity"].value == 0.0
    for edit, stats in result.counterfactuals.items():
        assert stats["evidence_sensitivity"][0] == 0.0, edit
        assert stats["prior_persistence"][0] in (None, 1.0), edit
        # the truth flips and the answer does not: every pair is right on exactly one side
        assert stats["mcnemar"]["b"] + stats["mcnemar"]["c"] == stats["n"], edit
    for kind, scores in result.blind_pope.items():
        assert scores["multimodal_gain"] == 0.0, kind
    assert set(result.pope) == {"random", "popular", "adversarial"}


@pytest.mark.parametrize("family", ["llava", "blip2"])
def test_kv_cache_reuse_gives_the_same_scores(adapters, family):
    """One encoded image + prompt prefix serving all questions gives what a full forward per question gives."""
    adapter = adapters[family]
    scenes = generate_scenes(3, seed=5)
    images = [render(s) for s in scenes]
    questions = [
        "Is there a red circle in the image?",
        "Is the red circle left of the blue square?",
        "Is there a green triangle in the image?",
        "Describe the image.",
    ]
    shared = adapter.answer_scores_per_image(images, [questions] * len(images))
    for image, scores in zip(images, shared):
        full = adapter.answer_scores([image] * len(questions), questions)
        np.testing.assert_allclose(scores.p_yes, full.p_yes, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(scores.p_no, full.p_no, rtol=1e-5, atol=1e-8)


def test_examples_keep_the_exact_prompt_and_a_noise_seed_per_image(adapters):
    """Every question's prompt string as the processor received it, and the noise seeds, are in the record, so
    an example can be re-run outside mmdiag; the two noise images of two scenes differ."""
    from mmdiag.probes.hallucination import HallucinationProbe, image_seed

    adapter = adapters["llava"]
    probe = HallucinationProbe(free_text=False, captions=False)
    probe.setup(adapter)
    examples = probe.examples(as_data(generate_scenes(2, seed=5)), adapter)
    outputs = [probe.run_example(adapter, ex).values for ex in examples]
    for example, values in zip(examples, outputs):
        assert values["prompts"] == [adapter.format_prompt(q) for q in values["questions"]]
        assert all(q in p and p != q for q, p in zip(values["questions"], values["prompts"]))  # the template is there
        assert values["noise_seeds"] == {
            k: image_seed(probe.seed, example.example_id, k) for k in ("noise", "vcd_noise")
        }
        assert all(cf["prompt"] == adapter.format_prompt(cf["question"]) for cf in values["counterfactuals"])
    assert outputs[0]["noise_seeds"]["vcd_noise"] != outputs[1]["noise_seeds"]["vcd_noise"]
