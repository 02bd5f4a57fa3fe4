"""Tiny Idefics3 and SmolVLM checkpoints: SigLIP-style tower on 32 px views, images split up to 64 px, pixel-shuffle
connector (SmolVLM is Idefics3's architecture with its own processor, which also handles video)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tokenizer import build_word_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec


def build_idefics3(out: Path, spec: TinySpec, smolvlm: bool = False) -> None:
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
        Idefics3VisionConfig,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
        SmolVLMVisionConfig,
    )

    from mmdiag.checkpoints.tiny_parts import llama_config

    tokenizer = build_word_tokenizer()
    tokenizer.add_tokens(
        ["<global-img>"] + [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)], special_tokens=True
    )
    image_processor = (SmolVLMImageProcessor if smolvlm else Idefics3ImageProcessor)(
        size={"longest_edge": 2 * spec.image_size},
        max_image_size={"longest_edge": spec.image_size},
        do_image_splitting=True,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    scale = 2
    seq_len = (spec.image_size // spec.patch_size // scale) ** 2
    if smolvlm:  # its tokenizer names the image tokens; it needs num2words
        tokenizer.add_tokens(["<image>", "<fake_token_around_image>", "<end_of_utterance>"], special_tokens=True)
        tokenizer.image_token, tokenizer.fake_image_token, tokenizer.global_image_token = (
            "<image>",
            "<fake_token_around_image>",
            "<global-img>",
        )
        tokenizer.end_of_utterance_token = "<end_of_utterance>"
        video = SmolVLMVideoProcessor(
            size={"longest_edge": 2 * spec.image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
        )
        processor = SmolVLMProcessor(
            image_processor=image_processor, tokenizer=tokenizer, video_processor=video, image_seq_len=seq_len
        )
    else:
        processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=seq_len)
    vision = (SmolVLMVisionConfig if smolvlm else Idefics3VisionConfig)(
        hidden_size=spec.hidden,
        intermediate_size=spec.hidden * 2,
        num_hidden_layers=spec.layers,
        num_attention_heads=2,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
    )
    config = (SmolVLMConfig if smolvlm else Idefics3Config)(
        vision_config=vision,
        text_config=llama_config(processor.tokenizer, spec),
        scale_factor=scale,
        image_token_id=processor.image_token_id,
    )
    model_class = SmolVLMForConditionalGeneration if smolvlm else Idefics3ForConditionalGeneration
    model_class(config).eval().save_pretrained(out)
    processor.save_pretrained(out)
