"""Known answers for the families beyond LLaVA-1.5 and BLIP-2 with OPT (LLaVA-NeXT/OneVision, PaliGemma,
Qwen2-VL/2.5-VL, InternVL, Idefics3, BLIP-2 / InstructBLIP with T5): where their image tokens sit, parts of
attention summing to 1, the patch order before the
connector, and a constant connector making each of them image-blind (and the probes saying so)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from PIL import Image

from mmdiag.adapters.capture import hooks
from mmdiag.adapters.projector_lm import grid_regions
from mmdiag.blind_inputs import mean_colour
from mmdiag.checkpoints.tiny import FAMILIES
from mmdiag.families import family_of_tiny
from mmdiag.probes.attention import AttentionProbe
from mmdiag.probes.hallucination import HallucinationProbe
from mmdiag.scenes.generate import generate_scenes
from mmdiag.scenes.render import render
from mmdiag.sources.scenes import as_data

GENERATIVE = [f for f in FAMILIES if family_of_tiny(f).kind == "generative"]
MODERN = [f for f in GENERATIVE if f not in ("llava", "blip2", "instructblip")]  # beyond LLaVA-1.5 and BLIP-2/OPT
QUESTION = "Is there a red circle in the image?"


def _constant(module: torch.nn.Module, args: tuple, kwargs: dict, output: object) -> torch.Tensor:
    """A connector that ignores its input: the same vector at every token, whatever the image."""
    tensor = output if isinstance(output, torch.Tensor) else output[0]
    return torch.linspace(-1, 1, tensor.shape[-1], dtype=tensor.dtype, device=tensor.device).expand_as(tensor).clone()


@pytest.mark.parametrize("family", MODERN)
def test_a_constant_connector_makes_the_model_image_blind(adapters: dict, family: str) -> None:
    """The model reads the image (the first answer token's logits move between a scene and its mean colour); with
    the connector's output
    replaced by a constant it no longer does, and the hallucination probe's multimodal gain is exactly 0."""
    adapter = adapters[family]
    image = render(generate_scenes(1, seed=2)[0])
    with torch.no_grad():
        seen = adapter.first_answer_logits(adapter.prepare([image, mean_colour(image)], [QUESTION] * 2))
    assert (seen[0] - seen[1]).abs().max() > 1e-4, "the unmodified model must read the image"
    with hooks([(module, _constant) for module, _ in adapter.connector_modules()]):
        with torch.no_grad():
            blind = adapter.first_answer_logits(adapter.prepare([image, mean_colour(image)], [QUESTION] * 2))
        torch.testing.assert_close(blind[0], blind[1], rtol=1e-5, atol=1e-5)
        probe = HallucinationProbe(captions=False, free_text=False)
        probe.setup(adapter)
        examples = probe.examples(as_data(generate_scenes(6, seed=1)), adapter)
        outputs = [probe.run_example(adapter, ex) for ex in examples]
        records = [{"example_id": ex.example_id, **o.values} for ex, o in zip(examples, outputs)]
        result = probe.aggregate(adapter, records, [o.arrays for o in outputs])
    assert result.metrics["multimodal_gain"].value == 0.0
    assert all(scores["multimodal_gain"] == 0.0 for scores in result.blind_pope.values())


@pytest.mark.parametrize("family", MODERN)
def test_attention_parts_sum_to_one_with_generated_answer_tokens(adapters: dict, family: str) -> None:
    """Streamed rows over the parts (BOS, system, image, instruction, generated) sum to 1 at the prompt end and at
    teacher-forced answer tokens (token types continued for PaliGemma, M-RoPE positions for Qwen)."""
    adapter = adapters[family]
    probe = AttentionProbe(generate_tokens=2, untrained_baseline=False)
    prompt = adapter.prepare([render(generate_scenes(1, seed=3)[0])], [QUESTION])
    prompt_end = int(prompt.last_positions()[0])
    batch, _ = probe._with_answer(adapter, prompt)
    measured = probe._measure(adapter, batch, prompt_end)
    # the prompt end (T5: the decoder's start) and the first answer token, unless the answer ended at once
    assert 1 <= measured["masses"].shape[2] <= 2 and (measured["masses"].shape[2] == 2 or adapter.is_encoder_decoder)
    np.testing.assert_allclose(measured["masses"].sum(-1), 1.0, atol=1e-5)
    config = adapter.language_model_config()
    types = getattr(config, "layer_types", None) or ["full_attention"] * measured["masses"].shape[0]
    kinds = [types[i] for i in adapter.lm_attention_layer_indices()]
    unchunked = [i for i, kind in enumerate(kinds) if kind != "chunked_attention"]  # Llama 4: the image may be in
    assert measured["masses"][unchunked][..., 2].min() > 0  # an earlier chunk; elsewhere the image is attended to


def test_llava_next_regions_follow_the_tiles_and_row_ends(adapters: dict) -> None:
    """A 64x32 (w x h) image picks the 32x64 pinpoint: one row of two tiles, no padding. Tokens: the base view on
    the 4x4 patch grid, then the tiles' 4x8 map row by row, each row closed by a row-end token (no region)."""
    adapter = adapters["llava_next"]
    batch = adapter.prepare([Image.new("RGB", (64, 32))], [QUESTION])
    regions = batch.token_regions[0]
    expected_tiles = grid_regions(4, 8).reshape(4, 8, 4)
    expected = np.concatenate(
        [grid_regions(4, 4)] + [np.vstack([row, np.full((1, 4), np.nan)]) for row in expected_tiles]
    )
    np.testing.assert_allclose(regions, expected)


def test_internvl_and_idefics3_regions_follow_their_views(adapters: dict) -> None:
    """A 64x32 image: InternVL cuts two 32 px tiles (left, right) then a thumbnail; Idefics3 and SmolVLM (resized to
    a 64 px long side) the same two tiles then the global view. Each view's 4 tokens fold 2x2 patches, row-major."""
    blocks = grid_regions(2, 2)
    left = blocks * [1, 0.5, 1, 0.5]
    right = left + [0, 0.5, 0, 0.5]
    for family in ("internvl", "idefics3", "smolvlm"):
        batch = adapters[family].prepare([Image.new("RGB", (64, 32))], [QUESTION])
        np.testing.assert_allclose(batch.token_regions[0], np.concatenate([left, right, blocks]), err_msg=family)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_patches_are_put_back_in_row_major_order(adapters: dict, family: str) -> None:
    """The merger folds each 2x2 block of row-major patches into one token: applying it to the ``vision_encoder``
    stage's blocks gives the ``projector`` stage. A 64 px image makes 8x8 patches, so Qwen2.5-VL's attention
    windows reorder its merge units and the restoring permutation is exercised."""
    adapter = adapters[family]
    images = [render(scene, 64) for scene in generate_scenes(2, seed=6)]
    vision, projector = adapter.feature_stages(images)
    rows, cols = vision.grid
    assert (rows, cols) == (8, 8) and projector.grid == (4, 4)
    grid = vision.tokens.reshape(2, rows // 2, 2, cols // 2, 2, -1).permute(0, 1, 3, 2, 4, 5)  # [b, R, C, 2, 2, d]
    blocks = grid.reshape(2 * (rows // 2) * (cols // 2) * 4, -1)
    with torch.no_grad():
        merged = adapter.projector_module()(blocks.to(adapter.dtype))
    torch.testing.assert_close(merged.reshape(projector.tokens.shape), projector.tokens, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", MODERN)
def test_yes_no_scores_are_the_first_decoding_step_of_generate(adapters: dict, family: str) -> None:
    """P(yes), P(no) are read where transformers' own ``generate`` takes its first step (a decoder-only LM's prompt
    end, an encoder-decoder's first decoder step): its one-step scores give the same distribution."""
    adapter = adapters[family]
    images = [render(scene) for scene in generate_scenes(2, seed=8)]
    questions = [QUESTION, "Is the red circle left of the blue square?"]
    if not adapter.is_encoder_decoder:  # one row each: generate continues a decoder-only row after its padding
        images, questions = images[:1], questions[:1]
    scores = adapter.answer_scores(images, questions)
    batch = adapter.prepare(images, questions)
    with torch.no_grad():
        out = adapter.model.generate(
            **batch.inputs, max_new_tokens=1, do_sample=False, output_scores=True, return_dict_in_generate=True
        )
    probs = torch.softmax(out.scores[0].float(), -1)
    yes_ids, no_ids = adapter._yes_no_ids
    np.testing.assert_allclose(scores.p_yes, probs[:, yes_ids].sum(-1).numpy(), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(scores.p_no, probs[:, no_ids].sum(-1).numpy(), rtol=1e-5, atol=1e-12)


def test_t5_attention_reads_the_decoders_cross_attention(adapters: dict) -> None:
    """The attention probe's masses for BLIP-2 with T5 are T5's own cross-attention probabilities summed over the
    encoder tokens of each part, and the record says which attention it read."""
    adapter = adapters["blip2_t5"]
    probe = AttentionProbe(untrained_baseline=False)
    prompt = adapter.prepare([render(generate_scenes(1, seed=3)[0])], [QUESTION])
    batch, _ = probe._with_answer(adapter, prompt)
    measured = probe._measure(adapter, batch, int(prompt.last_positions()[0]))
    with adapter.eager_attention():
        out = adapter.forward(batch, output_attentions=True)
    ids = batch.input_ids[0].tolist()
    image = [i for i, t in enumerate(ids) if t == adapter.image_token_id]
    text = [i for i in range(len(ids)) if i not in image and batch.attention_mask[0, i]]
    for layer, att in enumerate(out.language_model_outputs.cross_attentions):
        row = att[0, :, 0].double().numpy()  # [heads, encoder tokens] at the decoder's start
        np.testing.assert_allclose(measured["masses"][layer, :, 0, 2], row[:, image].sum(-1), atol=1e-6)
        np.testing.assert_allclose(measured["masses"][layer, :, 0, 3], row[:, text].sum(-1), atol=1e-6)
    assert "cross-attention" in adapter.attention_source


def test_mistral3_merger_folds_the_row_major_patches_and_tokens_follow_the_image_size(adapters: dict) -> None:
    """Mistral 3: re-applying the projector (norm, 2x2 patch merger, MLP) to the ``vision_encoder`` stage gives the
    ``projector`` stage, so the patches are row-major on the image's grid; a 64x32 image (w x h) keeps its aspect:
    resized to 32x16 px, a 2x4 patch grid merged to one row of two tokens, each placed on its half (one [IMG] span)."""
    adapter = adapters["mistral3"]
    images = [render(scene, 64) for scene in generate_scenes(2, seed=6)]
    vision, projector = adapter.feature_stages(images)
    assert vision.grid == (4, 4) and projector.grid == (2, 2)
    sizes = torch.tensor([[32, 32], [32, 32]])
    with torch.no_grad():
        merged = adapter.projector_module()(vision.tokens.reshape(-1, vision.tokens.shape[-1]), sizes)
    torch.testing.assert_close(merged.reshape(projector.tokens.shape), projector.tokens, atol=1e-5, rtol=1e-5)
    batch = adapter.prepare([Image.new("RGB", (64, 32))], [QUESTION])
    assert [end - start for start, end in batch.image_spans[0]] == [2]
    np.testing.assert_allclose(batch.token_regions[0], grid_regions(1, 2))


def test_gemma3_sliding_window_shorter_than_the_prompt_keeps_scores_exact(tmp_path) -> None:
    """A 3-token window cuts inside Gemma 3's bidirectional image block and drops cached keys: several questions of
    one image (a cached prefix, never packed) still equal each question alone, with and without an attention edit
    (edits address absolute positions, so under one the questions run in full)."""
    from mmdiag.adapters import load_adapter
    from mmdiag.adapters.generative import ScoreRequest
    from mmdiag.checkpoints.tiny_gemma3 import build_gemma3
    from mmdiag.checkpoints.tiny_parts import TinySpec
    from mmdiag.interventions.registry import InterventionRegistry

    build_gemma3(tmp_path / "gemma3", TinySpec(), pan_and_scan=False, sliding_window=3)
    adapter = load_adapter(str(tmp_path / "gemma3"))
    image = render(generate_scenes(1, seed=4)[0])
    questions = [QUESTION, "Is the red circle left of the blue square?", "Is it red?"]
    for intervention in (None, InterventionRegistry().create("knockout:layers=0-1")):
        with intervention.applied(adapter) if intervention else contextlib.nullcontext():
            (together,) = adapter.answer_scores_batch([ScoreRequest(image, questions)])
            for k, question in enumerate(questions):
                alone = adapter.answer_scores([image], [question])
                np.testing.assert_allclose(together.p_yes[k], alone.p_yes[0], rtol=2e-6, atol=1e-9)


def test_gemma3_block_ids_fallback_is_transformers_rule() -> None:
    """The adapter's own block numbering (used where transformers has no ``get_block_sequence_ids_for_mask``) equals
    transformers' on random token types: a new group at every run of image tokens, from 0 per row, -1 for text."""
    from transformers.models.gemma3.modeling_gemma3 import get_block_sequence_ids_for_mask

    from mmdiag.adapters.gemma3 import _block_ids

    types = (torch.rand(16, 40, generator=torch.Generator().manual_seed(0)) < 0.4).long()
    torch.testing.assert_close(_block_ids(types), get_block_sequence_ids_for_mask(types))
    assert int(_block_ids(types).max()) > 1  # several runs per row: the numbering is exercised
