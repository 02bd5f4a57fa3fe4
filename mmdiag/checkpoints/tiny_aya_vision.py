"""A tiny Aya Vision checkpoint: SigLIP tower on 32 px views (8 px patches, 4x4), the pixel-shuffle projector (2x2
patches folded into one token, LayerNorm, SwiGLU MLP) -> 4 tokens per view, GotOcr2 tiles (up to 4) + a global
thumbnail, and a 2-layer Cohere2 LM (one sliding-window layer with interleaved RoPE, one full-attention layer with no
position embedding at all, as Cohere2 alternates them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tokenizer import build_special_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec

IMAGE_TOKENS = (
    "<image>",  # the placeholder the prompt carries
    "<|START_OF_IMG|>",
    "<|END_OF_IMG|>",
    "<|IMG_PATCH|>",  # the image token the model's features replace
    "<|IMG_LINE_BREAK|>",
    "TILE",
    "TILE_GLOBAL",
)
TURN_TOKENS = ("<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>")
# longer than any tiny prompt, as Aya Vision 8B's 4096 is longer than its longest image prompt (13 views x 169 tokens):
# the packed path is exact; check_aya_vision also builds an 8-token window, which cuts inside the prompt
SLIDING_WINDOW = 256


def build_aya_vision(out: Path, spec: TinySpec, sliding_window: int = SLIDING_WINDOW) -> None:
    from transformers import (
        AyaVisionConfig,
        AyaVisionForConditionalGeneration,
        AyaVisionProcessor,
        Cohere2Config,
        GotOcr2ImageProcessor,
        SiglipVisionConfig,
    )

    from mmdiag.checkpoints.tiny_parts import alternating_layers, text_kwargs, vision_kwargs

    tokenizer = build_special_tokenizer([*IMAGE_TOKENS, *TURN_TOKENS])
    text = Cohere2Config(
        **text_kwargs(
            tokenizer,
            spec,
            head_dim=spec.hidden // spec.heads,
            sliding_window=sliding_window,
            layer_types=alternating_layers(spec, "sliding_attention"),
        )
    )
    config = AyaVisionConfig(
        vision_config=SiglipVisionConfig(**vision_kwargs(spec), vision_use_head=False),
        text_config=text,
        downsample_factor=2,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        image_token_index=tokenizer.convert_tokens_to_ids("<|IMG_PATCH|>"),
    )
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        AyaVisionForConditionalGeneration(config).eval().save_pretrained(out)
    image_processor = GotOcr2ImageProcessor(
        size={"height": spec.image_size, "width": spec.image_size},
        crop_to_patches=True,
        min_patches=1,
        max_patches=4,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    AyaVisionProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        img_size=spec.image_size,
        downsample_factor=2,
    ).save_pretrained(out)
