"""Tiny LLaVA-NeXT and LLaVA-OneVision checkpoints: a CLIP tower on 32 px tiles, anyres pinpoints up to 64 px."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tokenizer import build_word_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec


def pinpoints(spec: TinySpec) -> list[list[int]]:
    """Tile layouts of one or two tiles per side."""
    side = spec.image_size
    return [[side, side], [side, 2 * side], [2 * side, side], [2 * side, 2 * side]]


def build_llava_next(out: Path, spec: TinySpec, onevision: bool = False) -> None:
    import transformers
    from transformers import CLIPVisionConfig

    from mmdiag.checkpoints.tiny_parts import (
        IMAGE_MEAN,
        IMAGE_STD,
        llama_config,
        vision_kwargs,
    )

    prefix = "LlavaOnevision" if onevision else "LlavaNext"
    config_cls, model_cls, processor_cls, image_processor_cls = (
        getattr(transformers, prefix + name)
        for name in ("Config", "ForConditionalGeneration", "Processor", "ImageProcessor")
    )
    tokenizer = build_word_tokenizer(image_token=True)
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    if onevision:  # its processor also expands video placeholders
        tokenizer.add_tokens(["<video>"], special_tokens=True)
    config = config_cls(
        vision_config=CLIPVisionConfig(**vision_kwargs(spec)),
        text_config=llama_config(tokenizer, spec),
        image_token_id=image_token_id,
        image_grid_pinpoints=pinpoints(spec),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        **({"video_token_id": tokenizer.convert_tokens_to_ids("<video>")} if onevision else {}),
    )
    model_cls(config).eval().save_pretrained(out)
    size = spec.image_size
    image_processor = image_processor_cls(
        size={"height": size, "width": size} if onevision else {"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_grid_pinpoints=pinpoints(spec),
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
    )
    if onevision:
        video = transformers.LlavaOnevisionVideoProcessor(
            size={"height": size, "width": size}, image_mean=IMAGE_MEAN, image_std=IMAGE_STD
        )
        processor = processor_cls(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video,
            num_image_tokens=(size // spec.patch_size) ** 2 + 1,  # counts the CLS "default" drops
            vision_feature_select_strategy="default",
            vision_aspect_ratio="anyres_max_9",
        )
    else:
        processor = processor_cls(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=spec.patch_size,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
        )
    processor.save_pretrained(out)
