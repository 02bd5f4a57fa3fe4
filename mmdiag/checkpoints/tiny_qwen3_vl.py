"""Tiny Qwen3-VL (and Qwen3-VL-MoE) checkpoints: 8 px patches merged 2x2 by the merger, a DeepStack merger per
listed vision layer (its output is added to the hidden states of an early LLM layer at the image positions), a
2-layer Qwen3 LM (per-head q/k RMS norms) with interleaved M-RoPE.

Qwen3-VL has no processor-side image class of its own: ``AutoImageProcessor`` maps ``qwen3_vl`` to
``Qwen2VLImageProcessor`` (16 px patches in the real checkpoints, mean/std 0.5); the processor is
``Qwen3VLProcessor`` (image tokens, and ``mm_token_type_ids`` the model needs for its 3-D positions) with a
``Qwen3VLVideoProcessor`` (torchvision) for videos.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tiny_parts import native_pixels, native_vision_kwargs, text_kwargs
from mmdiag.checkpoints.tiny_qwen import VISION_TOKENS, vision_token_ids
from mmdiag.checkpoints.tokenizer import build_word_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec


def build_qwen3_vl(out: Path, spec: TinySpec, moe: bool = False) -> None:
    import transformers

    prefix = "Qwen3VLMoe" if moe else "Qwen3VL"
    config_cls, model_cls = (getattr(transformers, prefix + n) for n in ("Config", "ForConditionalGeneration"))
    tokenizer = build_word_tokenizer()
    tokenizer.add_tokens(list(VISION_TOKENS), special_tokens=True)
    head_dim = spec.hidden // spec.heads
    half = head_dim // 2  # M-RoPE sections (t, h, w) cover the rotary half; interleaved t h w t h w ...
    text = text_kwargs(
        tokenizer,
        spec,
        head_dim=head_dim,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [half - 2 * (half // 4), half // 4, half // 4],
            "mrope_interleaved": True,
        },
    )
    if moe:
        text.update(
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=spec.hidden,
            decoder_sparse_step=1,
            norm_topk_prob=True,
        )
    grid = spec.image_size // spec.patch_size
    vision = native_vision_kwargs(
        spec,
        intermediate_size=spec.hidden * 2,
        out_hidden_size=spec.hidden,
        num_position_embeddings=grid * grid,  # a square learned grid, resampled to each image's patch grid
        deepstack_visual_indexes=list(range(spec.layers)),  # after vision layer i -> added after LLM layer i
    )
    config = config_cls(
        text_config=text,
        vision_config=vision,
        **vision_token_ids(tokenizer),
    )
    model_cls(config).eval().save_pretrained(out)
    pixels = native_pixels(spec, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    processor = transformers.Qwen3VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=transformers.Qwen3VLVideoProcessor(**pixels),
    )
    processor.save_pretrained(out)
