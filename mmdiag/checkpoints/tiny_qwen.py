"""Tiny Qwen2-VL and Qwen2.5-VL checkpoints: 8 px patches merged 2x2, a 2-layer Qwen2 LM with M-RoPE."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tokenizer import build_word_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec

VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


def vision_token_ids(tokenizer) -> dict[str, int]:  # noqa: ANN001 - a transformers tokenizer
    """The Qwen-VL config's vision token ids (image, video, vision start / end) in ``tokenizer``."""
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in VISION_TOKENS}
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def build_qwen2_vl(out: Path, spec: TinySpec, v2_5: bool = False) -> None:
    import transformers

    prefix = "Qwen2_5_VL" if v2_5 else "Qwen2VL"
    config_cls, model_cls, processor_cls = (
        getattr(transformers, prefix + n) for n in ("Config", "ForConditionalGeneration", "Processor")
    )
    tokenizer = build_word_tokenizer()
    tokenizer.add_tokens(list(VISION_TOKENS), special_tokens=True)
    head_dim = spec.hidden // spec.heads
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.hidden * 2,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [head_dim // 4, head_dim // 8, head_dim // 8],
        },
    )
    vision = dict(
        depth=spec.layers,
        hidden_size=spec.hidden,
        num_heads=2,
        patch_size=spec.patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    if v2_5:
        vision.update(
            intermediate_size=spec.hidden * 2,
            out_hidden_size=spec.hidden,
            window_size=2 * 2 * spec.patch_size,
            fullatt_block_indexes=[spec.layers - 1],
        )
    else:
        vision.update(embed_dim=spec.hidden, mlp_ratio=2)
    config = config_cls(
        text_config=text,
        vision_config=vision,
        **vision_token_ids(tokenizer),
    )
    model_cls(config).eval().save_pretrained(out)
    pixels = {
        "size": {"shortest_edge": (2 * spec.patch_size) ** 2, "longest_edge": (16 * spec.patch_size) ** 2},
        "patch_size": spec.patch_size,
        "merge_size": 2,
        "temporal_patch_size": 2,
    }
    processor = processor_cls(
        image_processor=transformers.Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=transformers.Qwen2VLVideoProcessor(**pixels),
    )
    processor.save_pretrained(out)
