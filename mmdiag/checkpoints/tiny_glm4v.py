"""Tiny GLM-4.1V (``Glm4vForConditionalGeneration``) and GLM-4.5V (``Glm4vMoeForConditionalGeneration``, ``moe=True``)
checkpoints: 8 px patches, a 2-layer ViT, then GLM's connector (RMSNorm, a 2x2 stride-2 conv "downsample" that merges
each 2x2 window, and a gated-MLP "merger"), and a 2-layer GLM-4 LM with M-RoPE over partial rotary dims.

GLM-4.1V's LM rotates *interleaved* pairs (``rotate_half_llm``: x[0::2], x[1::2]) on the first half of each head
(``partial_rotary_factor`` 0.5); GLM-4.5V (MoE) rotates the usual halves. The text heads are ``spec.heads // 2``
(head dim 16) so the rotary half keeps 4 frequencies for M-RoPE's (t, h, w) sections.

Processor: ``Glm4vProcessor`` with ``Glm4vImageProcessor`` (torchvision; its ``size`` bounds count *two* frames,
t x h x w) and ``Glm4vVideoProcessor``; it needs ``<|image|>``, ``<|begin_of_video|>``, ``<|end_of_video|>`` in the
vocabulary and returns ``mm_token_type_ids``. Prompts start ``[gMASK]<sop>`` (no BOS is added).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tiny_parts import native_pixels, native_vision_kwargs, text_kwargs
from mmdiag.checkpoints.tokenizer import build_word_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec

SPECIAL_TOKENS = (
    "[gMASK]",
    "<sop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|endoftext|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
    "<|video|>",
)


def build_glm4v(out: Path, spec: TinySpec, moe: bool = False) -> None:
    import transformers

    prefix = "Glm4vMoe" if moe else "Glm4v"
    config_cls, model_cls = (getattr(transformers, prefix + n) for n in ("Config", "ForConditionalGeneration"))
    tokenizer = build_word_tokenizer(add_bos=False)
    tokenizer.add_tokens(list(SPECIAL_TOKENS), special_tokens=True)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    heads, kv_heads = max(1, spec.heads // 2), max(1, spec.kv_heads // 2)
    rotary_half = spec.hidden // heads // 2 // 2  # frequencies of the rotated (first) half of a head
    text = text_kwargs(
        tokenizer,
        spec,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        bos_token_id=None,  # GLM's prompt starts with [gMASK]<sop>, no BOS
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.5,
            "mrope_section": [rotary_half - 2 * (rotary_half // 4), rotary_half // 4, rotary_half // 4],
        },
    )
    if moe:
        text.update(
            n_routed_experts=4,
            num_experts_per_tok=2,
            n_shared_experts=1,
            moe_intermediate_size=spec.hidden,
            first_k_dense_replace=1,  # layer 0 dense, layer 1 sparse (GLM-4.5V: the first layer is dense)
            n_group=1,
            topk_group=1,
            head_dim=spec.hidden // heads,
            attention_bias=True,
        )
    vision = native_vision_kwargs(
        spec,
        intermediate_size=spec.hidden * 2,
        image_size=spec.image_size,  # the learned position grid: (image_size / patch_size)^2, resampled per image
        out_hidden_size=spec.hidden,
    )
    config = config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"],
        video_end_token_id=ids["<|end_of_video|>"],
    )
    model_cls(config).eval().save_pretrained(out)
    frames = 2  # GLM's smart_resize bounds t x h x w with t = temporal_patch_size
    pixels = native_pixels(spec, frames)
    processor = transformers.Glm4vProcessor(
        image_processor=transformers.Glm4vImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=transformers.Glm4vVideoProcessor(**pixels),
    )
    processor.save_pretrained(out)
