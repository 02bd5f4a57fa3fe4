"""A tiny PaliGemma checkpoint: SigLIP tower -> linear projector -> Gemma, prefix-LM attention over image + prompt."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tokenizer import build_word_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec


def build_paligemma(out: Path, spec: TinySpec) -> None:
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    from mmdiag.checkpoints.tiny_parts import vision_kwargs

    image_processor = SiglipImageProcessor(
        size={"height": spec.image_size, "width": spec.image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    image_processor.image_seq_length = (spec.image_size // spec.patch_size) ** 2
    tokenizer = build_word_tokenizer(image_token=True, add_bos=False)  # the processor writes BOS after the image
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)  # adds location tokens
    text = GemmaConfig(
        vocab_size=len(processor.tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.hidden * 2,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        head_dim=spec.hidden // spec.heads,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(**vision_kwargs(spec)),
        text_config=text,
        image_token_id=processor.image_token_id,
        projection_dim=spec.hidden,
    )
    PaliGemmaForConditionalGeneration(config).eval().save_pretrained(out)
    processor.save_pretrained(out)
