"""A tiny Gemma 3 checkpoint: SigLIP tower on 32 px views (8 px patches, 4x4), the avg-pool projector down to
``mm_tokens_per_image`` = 4 tokens (2x2), a 2-layer Gemma 3 LM (one sliding-window layer with a 16-token window,
one full-attention layer) whose image tokens attend to each other bidirectionally, and pan-and-scan switched on
(crops from 16 px) so a non-square image is several image blocks (the whole image, then its crops).

Gemma3Processor's own class defaults (pan-and-scan off, crops from 256 px) override the image processor's saved
settings; the adapter honours the saved ones (``Gemma3Adapter._honour_saved_pan_and_scan``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tokenizer import build_special_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec

IMAGE_TOKENS = {
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
    "image_token": "<image_soft_token>",
}
TURN_TOKENS = ("<start_of_turn>", "<end_of_turn>")
MM_TOKENS_PER_IMAGE = 4  # 4x4 patches pooled 2x2: the projector's pooling is exercised
# the sliding layer's window: long enough for a short prompt's end to see the image (as Gemma 3's 1024 tokens do for
# one 256-token view), short enough that a longer prompt's end no longer does; check_gemma3 also builds a 3-token
# window, which cuts inside the 4-token bidirectional image block
SLIDING_WINDOW = 16


def build_gemma3(out: Path, spec: TinySpec, pan_and_scan: bool = True, sliding_window: int = SLIDING_WINDOW) -> None:
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    from mmdiag.checkpoints.tiny_parts import alternating_layers, text_kwargs, vision_kwargs

    tokenizer = build_special_tokenizer([*IMAGE_TOKENS.values(), *TURN_TOKENS], IMAGE_TOKENS)
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in IMAGE_TOKENS.items()}
    text = Gemma3TextConfig(
        **text_kwargs(
            tokenizer,
            spec,
            head_dim=spec.hidden // spec.heads,
            query_pre_attn_scalar=spec.hidden // spec.heads,
            sliding_window=sliding_window,
            layer_types=alternating_layers(spec, "sliding_attention"),
        )
    )
    config = Gemma3Config(
        vision_config=SiglipVisionConfig(**vision_kwargs(spec), vision_use_head=False),
        text_config=text,
        mm_tokens_per_image=MM_TOKENS_PER_IMAGE,
        image_token_index=ids["image_token"],
        boi_token_index=ids["boi_token"],
        eoi_token_index=ids["eoi_token"],
    )
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = Gemma3ForConditionalGeneration(config).eval()
        # transformers initialises the projection matrix to zeros: a tiny model must see its images
        projector = model.model.multi_modal_projector
        torch.nn.init.normal_(projector.mm_input_projection_weight, std=spec.hidden**-0.5)
    model.save_pretrained(out)
    image_processor = Gemma3ImageProcessor(
        size={"height": spec.image_size, "width": spec.image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pan_and_scan=pan_and_scan,
        pan_and_scan_min_crop_size=spec.image_size // 2,
        pan_and_scan_max_num_crops=4,
        pan_and_scan_min_ratio_to_activate=1.2,
    )
    Gemma3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_length=MM_TOKENS_PER_IMAGE
    ).save_pretrained(out)
