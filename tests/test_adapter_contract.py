"""Contract tests run over every registered adapter family on tiny checkpoints loaded by path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE
from mmdiag.adapters.registry import default_registry
from mmdiag.checkpoints.tiny import FAMILIES, TinySpec
from mmdiag.families import family_of_tiny, tiny_builds

SPEC = TinySpec()
# the contract matrix, from the family declarations (mmdiag/families/*.py)
DUAL_FAMILIES = [f for f in FAMILIES if family_of_tiny(f).kind == DUAL_ENCODER]
GENERATIVE_FAMILIES = [f for f in FAMILIES if f not in DUAL_FAMILIES]
GRID_FAMILIES = [f for f in FAMILIES if family_of_tiny(f).tokens == "grid"]  # one patch grid; others: regions
QUERY_FAMILIES = [f for f in FAMILIES if family_of_tiny(f).tokens == "queries"]  # learned queries
GRID = (SPEC.image_size // SPEC.patch_size, SPEC.image_size // SPEC.patch_size)
IMAGES = [Image.new("RGB", (40, 40), (200, 30, 30)), Image.new("RGB", (64, 48), (30, 30, 200))]
QUESTIONS = ["Is there a red circle in the image?", "Is there a blue square left of the green triangle?"]


# architectures whose checkpoints the zoo tests build (tests/test_zoo.py trains and audits every variant)
COVERED_BY_ZOO_TESTS = {"MmdiagLlavaForConditionalGeneration"}


def test_every_registered_architecture_has_a_tiny_family(adapters: dict) -> None:
    registry = default_registry()
    served = {type(a) for a in adapters.values()}
    for architecture in registry.supported():
        if architecture in COVERED_BY_ZOO_TESTS:
            assert issubclass(registry.get(architecture), tuple(served))  # same contract, a served family's subclass
            continue
        assert registry.get(architecture) in served, f"{architecture} has no tiny checkpoint under test"


@pytest.mark.parametrize("family", FAMILIES)
def test_vision_features_sit_on_the_patch_grid(adapters: dict, family: str) -> None:
    adapter = adapters[family]
    assert adapter.vision_grid() == GRID
    vision = adapter.vision_features(IMAGES)
    assert vision.name == "vision_encoder"
    assert tuple(vision.tokens.shape) == (2, GRID[0] * GRID[1], SPEC.hidden)
    assert vision.grid == GRID


@pytest.mark.parametrize("family", FAMILIES)
def test_stage_shapes(adapters: dict, family: str) -> None:
    adapter = adapters[family]
    stages = adapter.feature_stages(IMAGES)
    names = [s.name for s in stages]
    tiny = tiny_builds()[family]
    expected = (list(family_of_tiny(family).stages), (2, tiny.stage_tokens, tiny.stage_width or SPEC.hidden))
    assert names == expected[0]
    assert tuple(stages[-1].tokens.shape) == expected[1]


@pytest.mark.parametrize("family", GENERATIVE_FAMILIES)
def test_image_spans_match_the_processor_input_ids(adapters: dict, family: str) -> None:
    adapter = adapters[family]
    batch = adapter.prepare(IMAGES, QUESTIONS)
    ids = batch.input_ids
    for row, spans in enumerate(batch.image_spans):
        positions = [i for s, e in spans for i in range(s, e)]
        assert positions == torch.nonzero(ids[row] == adapter.image_token_id).flatten().tolist()
        if family in GRID_FAMILIES:
            assert len(positions) == GRID[0] * GRID[1] and len(spans) == 1
        elif family in QUERY_FAMILIES:
            assert len(positions) == SPEC.num_query_tokens and len(spans) == 1
        else:  # every token placed on the image, or marked as showing no region (row ends)
            regions = batch.token_regions[row]
            assert regions.shape == (len(positions), 4)
            shown = regions[~np.isnan(regions[:, 0])]
            assert len(shown) > 0 and np.all((shown >= 0) & (shown <= 1))
            assert np.all(shown[:, 2] > shown[:, 0]) and np.all(shown[:, 3] > shown[:, 1])
    assert batch.token_grid == (GRID if family in GRID_FAMILIES else None)


@pytest.mark.parametrize("family", GENERATIVE_FAMILIES)
def test_last_positions_point_at_each_rows_last_real_token(adapters: dict, family: str) -> None:
    adapter = adapters[family]
    batch = adapter.prepare(
        IMAGES[:1] * 2, ["Is there a red circle?", "Is there a blue square left of the green triangle?"]
    )
    lengths = batch.attention_mask.sum(1)
    assert lengths[0] < lengths[1]  # right padding in row 0 (one image: anyres families make as many tokens)
    for row in range(2):
        last = int(batch.last_positions()[row])
        assert batch.attention_mask[row, last] == 1
        assert batch.attention_mask[row, last + 1 :].sum() == 0


@pytest.mark.parametrize("family", GENERATIVE_FAMILIES)
def test_yes_no_scores_are_probabilities_and_repeatable(adapters: dict, family: str) -> None:
    adapter = adapters[family]
    first = adapter.answer_scores(IMAGES, QUESTIONS)
    second = adapter.answer_scores(IMAGES, QUESTIONS)
    assert np.all((first.p_yes >= 0) & (first.p_no >= 0) & (first.p_yes + first.p_no <= 1 + 1e-6))
    assert np.all((first.p_yes_norm >= 0) & (first.p_yes_norm <= 1))
    np.testing.assert_array_equal(first.p_yes, second.p_yes)
    np.testing.assert_array_equal(first.p_no, second.p_no)


@pytest.mark.parametrize("family", GENERATIVE_FAMILIES)
def test_batched_scores_equal_one_by_one(adapters: dict, family: str) -> None:
    """Right padding must not change the first-answer-token distribution of the shorter row."""
    adapter = adapters[family]
    together = adapter.answer_scores(IMAGES, QUESTIONS)
    for i in range(2):
        alone = adapter.answer_scores([IMAGES[i]], [QUESTIONS[i]])
        np.testing.assert_allclose(alone.p_yes, together.p_yes[i : i + 1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("family", GENERATIVE_FAMILIES)
def test_generate_returns_text_and_lm_layers_are_exposed(adapters: dict, family: str) -> None:
    adapter = adapters[family]
    answers = adapter.generate(IMAGES[:1], ["Describe the image."], max_new_tokens=4)
    assert len(answers) == 1 and isinstance(answers[0], str)
    assert len(adapter.lm_layers()) == SPEC.layers
    indices = adapter.lm_attention_layer_indices()
    assert len(adapter.lm_attention_modules()) == len(indices) and set(indices) <= set(range(SPEC.layers))
    if family_of_tiny(family).attention == "hybrid-linear":  # softmax attention in some layers only
        assert 0 < len(indices) < SPEC.layers
    else:
        assert indices == list(range(SPEC.layers))
    assert adapter.kind == GENERATIVE


@pytest.mark.parametrize("family", DUAL_FAMILIES)
def test_dual_encoder_similarity(adapters: dict, family: str) -> None:
    adapter = adapters[family]
    texts = ["a photo of a red circle", "a photo of a blue square", "a photo of a green triangle"]
    sims = adapter.similarity(IMAGES, texts)
    assert tuple(sims.shape) == (2, 3)
    assert torch.all(sims.abs() <= 1 + 1e-5)
    assert not torch.allclose(sims[:, 0], sims[:, 1]), "captions must not collapse to one embedding"
    torch.testing.assert_close(sims, adapter.similarity(IMAGES, texts))
    assert adapter.kind == DUAL_ENCODER


@pytest.mark.parametrize("family", DUAL_FAMILIES)
def test_dual_encoders_refuse_generative_calls_with_a_clear_error(adapters: dict, family: str) -> None:
    from mmdiag.errors import CapabilityError

    with pytest.raises(CapabilityError, match="dual encoder|do not answer"):
        adapters[family].answer_scores(IMAGES, QUESTIONS)


def test_instructblip_image_tokens_read_the_question_so_no_prefix_is_shared(adapters: dict) -> None:
    """InstructBLIP's Q-Former reads the instruction: the LLM's image tokens differ between two questions about the
    same image, so scoring several questions of one image must equal scoring each alone (no shared image prefix)."""
    from mmdiag.adapters.generative import ScoreRequest

    adapter = adapters["instructblip"]
    assert adapter.image_tokens_read_the_prompt
    questions = ["Is there a red circle?", "Is there a blue square left of the green triangle?"]
    batch = adapter.prepare([IMAGES[0]] * 2, questions)
    assert not torch.equal(batch.inputs["qformer_input_ids"][0], batch.inputs["qformer_input_ids"][1])
    features = adapter.model.get_image_features(
        pixel_values=batch.inputs["pixel_values"],
        qformer_input_ids=batch.inputs["qformer_input_ids"],
        qformer_attention_mask=batch.inputs["qformer_attention_mask"],
    ).pooler_output
    assert not torch.allclose(features[0], features[1])  # the image tokens depend on the question
    together = adapter.answer_scores_batch([ScoreRequest(IMAGES[0], questions)])[0]
    for k, question in enumerate(questions):
        alone = adapter.answer_scores([IMAGES[0]], [question])
        np.testing.assert_allclose(together.p_yes[k], alone.p_yes[0], rtol=1e-5, atol=1e-7)


def test_siglip_reads_the_model_as_its_own_code_does(adapters: dict) -> None:
    """SigLIP: image embeddings are the vision tower's pooled output, texts are pooled at the last position of a
    max-length padding (as SigLIP is used), and the pooling head's per-head attention averages to the weights
    torch's own MultiheadAttention returns, summing to 1 over the patches."""
    adapter = adapters["siglip"]
    model, processor = adapter.model, adapter.processor
    pixels = processor(images=IMAGES, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(
        adapter.image_embeddings(IMAGES), model.get_image_features(pixel_values=pixels).pooler_output
    )
    texts = ["a red circle", "a blue square left of a green triangle"]
    enc = processor(
        text=texts,
        padding="max_length",
        max_length=model.config.text_config.max_position_embeddings,
        return_tensors="pt",
    )
    torch.testing.assert_close(
        adapter.text_embeddings(texts), model.get_text_features(input_ids=enc["input_ids"]).pooler_output
    )
    heads = adapter.cls_attention(IMAGES)  # [images, 1 pooling "layer", heads, patches]
    assert tuple(heads.shape) == (2, 1, 2, GRID[0] * GRID[1])
    torch.testing.assert_close(heads.sum(-1), torch.ones(2, 1, 2))
    hidden = model.vision_model(pixel_values=pixels).last_hidden_state
    probe = model.vision_model.head.probe.repeat(2, 1, 1)
    _, averaged = model.vision_model.head.attention(probe, hidden, hidden)  # torch's default: mean over heads
    torch.testing.assert_close(heads[:, 0].mean(1), averaged[:, 0])
    assert type(adapter.projector_module()).__name__ == "SiglipMultiheadAttentionPoolingHead"


def test_prebuilt_model_and_processor_are_accepted(tiny_paths: dict) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmdiag.adapters import load_adapter
    from mmdiag.adapters.llava import LlavaAdapter

    model = AutoModelForImageTextToText.from_pretrained(tiny_paths["llava"])
    processor = AutoProcessor.from_pretrained(tiny_paths["llava"])
    adapter = load_adapter(model, processor)
    assert isinstance(adapter, LlavaAdapter)
    assert adapter.answer_scores(IMAGES[:1], QUESTIONS[:1]).p_yes.shape == (1,)


def test_siglip2_reads_native_aspect_patches_as_its_own_code_does(adapters: dict) -> None:
    """SigLIP 2 (NaFlex): image embeddings are the tower's pooled output on the processor's patches, mask and grid;
    the pooling query's attention over the real patches sums to 1 per head; a wide image keeps its aspect ratio
    (a grid of more columns than rows) and its padding rows are left out of the ``vision_encoder`` stage."""
    adapter = adapters["siglip2"]
    model, processor = adapter.model, adapter.processor
    encoded = processor.image_processor(images=IMAGES[:1], return_tensors="pt")
    torch.testing.assert_close(adapter.image_embeddings(IMAGES[:1]), model.get_image_features(**encoded).pooler_output)
    heads = adapter.cls_attention(IMAGES[:1])
    torch.testing.assert_close(heads.sum(-1), torch.ones_like(heads.sum(-1)))
    wide = [Image.new("RGB", (64, 32), (30, 200, 30))]
    shape = processor.image_processor(images=wide, return_tensors="pt")["spatial_shapes"][0].tolist()
    assert shape[1] > shape[0]
    vision = adapter.vision_features(wide)
    assert vision.grid == tuple(shape) and vision.tokens.shape[1] == shape[0] * shape[1]


@pytest.mark.parametrize("family", GENERATIVE_FAMILIES)
def test_batched_yes_no_scoring_equals_one_question_at_a_time(adapters: dict, family: str) -> None:
    """Scoring many questions of several images together (packed after one image prefix, a shared KV cache, or
    full rows, whichever the family allows) gives what each (image, question) scored alone gives, to 2e-6 relative:
    packing measured 1.5e-7 at most, and suffix positions off by one already 1.3e-5 on these tiny models."""
    from mmdiag.adapters.generative import ScoreRequest

    adapter = adapters[family]
    questions = [QUESTIONS, QUESTIONS[::-1] + ["Is it red?"]]  # different counts, lengths and orders per image
    together = adapter.answer_scores_batch([ScoreRequest(image, qs) for image, qs in zip(IMAGES, questions)])
    for image, qs, scores in zip(IMAGES, questions, together):
        for k, question in enumerate(qs):
            alone = adapter.answer_scores([image], [question])
            np.testing.assert_allclose(
                scores.p_yes[k], alone.p_yes[0], rtol=2e-6, atol=1e-9, err_msg=f"{family}: {question}"
            )
            np.testing.assert_allclose(
                scores.p_no[k], alone.p_no[0], rtol=2e-6, atol=1e-9, err_msg=f"{family}: {question}"
            )


@pytest.mark.parametrize("family", GENERATIVE_FAMILIES)
def test_each_prompt_row_owns_its_image_inputs(adapters: dict, family: str) -> None:
    """pixel_rows covers the image inputs' first dimension row by row, in order (tiles: a variable number per row),
    so selecting rows, or editing one request's pixels, touches that row's image and no other."""
    adapter = adapters[family]
    batch = adapter.prepare([IMAGES[1], IMAGES[0], IMAGES[1]], QUESTIONS + QUESTIONS[:1])
    units = adapter.pixel_rows(batch)
    assert len(units) == 3 and units[0].start == 0
    assert all(a.stop == b.start and a.stop > a.start for a, b in zip(units, units[1:]))
    from mmdiag.adapters.qwen2_vl import Qwen2VLAdapter

    if "pixel_values" in batch.inputs and not isinstance(adapter, Qwen2VLAdapter):  # Qwen-style: flattened patches
        pixels = batch.inputs["pixel_values"]
        assert units[-1].stop == pixels.shape[0]
        torch.testing.assert_close(pixels[units[0]], pixels[units[2]])  # the same image in rows 0 and 2
        assert pixels[units[0]].shape != pixels[units[1]].shape or not torch.equal(pixels[units[0]], pixels[units[1]])
        picked = adapter.image_inputs_of_rows(batch, [2])["pixel_values"]
        torch.testing.assert_close(picked, pixels[units[2]])
