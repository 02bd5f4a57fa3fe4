"""Streamed attention rows equal transformers' materialised eager attentions (the reference) to 1e-5."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mmdiag.adapters import load_adapter
from mmdiag.adapters.attention_rows import AttentionRows, eager_rows
from mmdiag.checkpoints.tiny import FAMILIES, TinySpec, build_tiny

IMAGES = [Image.new("RGB", (32, 32), (200, 30, 30)), Image.new("RGB", (32, 32), (30, 30, 200))]
QUESTIONS = ["Is there a red circle?", "Is there a blue square left of the green triangle in the image?"]


def streamed(adapter, batch, positions):
    collected = {}
    recorder = AttentionRows(
        adapter.lm_attention_modules(),
        positions,
        batch.attention_mask,
        lambda layer, probs: collected.__setitem__(layer, probs),
        prefix=adapter.bidirectional_prefix(batch),
    )
    with recorder.active():
        logits = adapter.forward(batch).logits
    return [collected[i] for i in range(len(collected))], logits


def reference(adapter, batch, positions, family):
    with adapter.eager_attention():
        return eager_rows(
            lambda: adapter.forward(batch, output_attentions=True),
            lambda out: (
                out.language_model_outputs.attentions if family in ("blip2", "instructblip") else out.attentions
            ),
            positions,
        )


def rows_to_check(batch):
    last = batch.last_positions()
    return torch.stack([last, last - 1, torch.full_like(last, 2)], dim=1)  # several query rows, incl. early ones


# T5 families read T5's own returned probabilities (relative position bias; short inputs): tests/test_modern_families.py
@pytest.mark.parametrize(
    "family", [f for f in FAMILIES if f not in ("clip", "siglip", "siglip2", "open_clip") and not f.endswith("_t5")]
)
def test_streamed_rows_equal_eager_reference(adapters, family):
    adapter = adapters[family]
    batch = adapter.prepare(IMAGES, QUESTIONS)  # right padding: row 0 is shorter
    positions = rows_to_check(batch)
    rows, logits = streamed(adapter, batch, positions)
    expected = reference(adapter, batch, positions, family)
    assert adapter.language_model_config()._attn_implementation == "sdpa"  # the main forward stayed on SDPA
    assert len(rows) == len(expected) == len(adapter.lm_attention_modules())  # hybrid models: softmax layers only
    for got, want in zip(rows, expected):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        torch.testing.assert_close(got.sum(-1), torch.ones_like(got.sum(-1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, adapter.forward(batch).logits)  # hooks do not change the forward


@pytest.mark.parametrize("text_model", ["mistral_window", "qwen3_norms"])
def test_sliding_window_and_head_norms(tmp_path, text_model):
    """Mistral's sliding window and Qwen3's per-head q/k norms, in a LLaVA shell."""
    from transformers import (
        AutoProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        MistralConfig,
        Qwen3Config,
    )

    base = build_tiny("llava", tmp_path / "base", TinySpec())
    processor = AutoProcessor.from_pretrained(base)
    common = dict(
        vocab_size=len(processor.tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    text = (
        MistralConfig(**common, sliding_window=6)
        if text_model == "mistral_window"
        else Qwen3Config(**common, head_dim=8)
    )
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=4,
        image_seq_length=16,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(tmp_path / "m")
    processor.save_pretrained(tmp_path / "m")
    adapter = load_adapter(str(tmp_path / "m"))
    batch = adapter.prepare(IMAGES, QUESTIONS)
    positions = rows_to_check(batch)
    rows, _ = streamed(adapter, batch, positions)
    for got, want in zip(rows, reference(adapter, batch, positions, "llava")):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    if text_model == "mistral_window":
        assert (rows[0][0, :, 0, : int(positions[0, 0]) - 6 + 1] == 0).all()  # keys outside the window get nothing
