"""A tiny Mistral 3 checkpoint: a Pixtral tower (8 px patches, 2-D RoPE), a 2x2 patch merger in the projector, a
2-layer Mistral LM, and the real ``PixtralProcessor`` ([IMG] per merged patch, [IMG_BREAK] after each row, [IMG_END]
last)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tiny_parts import IMAGE_MEAN, IMAGE_STD, text_kwargs
from mmdiag.checkpoints.tokenizer import build_word_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec

IMAGE_TOKENS = ("[IMG]", "[IMG_BREAK]", "[IMG_END]")
MERGE = 2


def build_mistral3(out: Path, spec: TinySpec) -> None:
    from transformers import (
        Mistral3Config,
        Mistral3ForConditionalGeneration,
        MistralConfig,
        PixtralImageProcessor,
        PixtralProcessor,
        PixtralVisionConfig,
    )

    tokenizer = build_word_tokenizer()
    tokenizer.add_tokens(list(IMAGE_TOKENS), special_tokens=True)
    vision = PixtralVisionConfig(
        hidden_size=spec.hidden,
        intermediate_size=spec.hidden * 2,
        num_hidden_layers=spec.layers,
        num_attention_heads=2,
        head_dim=spec.hidden // 2,
        image_size=spec.image_size,  # the largest side the 2-D RoPE covers
        patch_size=spec.patch_size,
    )
    text = MistralConfig(**text_kwargs(tokenizer, spec, head_dim=spec.hidden // spec.heads, sliding_window=None))
    config = Mistral3Config(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"),
        spatial_merge_size=MERGE,
        vision_feature_layer=-1,
    )
    Mistral3ForConditionalGeneration(config).eval().save_pretrained(out)
    image_processor = PixtralImageProcessor(
        size={"longest_edge": spec.image_size},
        patch_size={"height": spec.patch_size * MERGE, "width": spec.patch_size * MERGE},  # whole merged patches
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
    )
    PixtralProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=spec.patch_size, spatial_merge_size=MERGE
    ).save_pretrained(out)
