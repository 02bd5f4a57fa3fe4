"""A tiny InternVL checkpoint: InternViT on 32 px views (up to 4 tiles + thumbnail), pixel shuffle, Llama LM."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tokenizer import build_special_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec

IMAGE_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}


def build_internvl(out: Path, spec: TinySpec) -> None:
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        InternVLVisionConfig,
    )

    from mmdiag.checkpoints.tiny_parts import IMAGE_MEAN, IMAGE_STD, llama_config

    tokenizer = build_special_tokenizer(list(IMAGE_TOKENS.values()), IMAGE_TOKENS)
    vision = InternVLVisionConfig(
        hidden_size=spec.hidden,
        intermediate_size=spec.hidden * 2,
        num_hidden_layers=spec.layers,
        num_attention_heads=2,
        image_size=[spec.image_size] * 2,
        patch_size=[spec.patch_size] * 2,
    )
    config = InternVLConfig(
        vision_config=vision,
        text_config=llama_config(tokenizer, spec),
        image_token_id=tokenizer.context_image_token_id,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    InternVLForConditionalGeneration(config).eval().save_pretrained(out)
    size = {"height": spec.image_size, "width": spec.image_size}
    image_processor = GotOcr2ImageProcessor(
        size=size, crop_to_patches=True, min_patches=1, max_patches=4, image_mean=IMAGE_MEAN, image_std=IMAGE_STD
    )
    per_view = (spec.image_size // spec.patch_size // 2) ** 2
    InternVLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(size=size),
        image_seq_length=per_view,
    ).save_pretrained(out)
