"""A tiny Llama 4 checkpoint: 32 px tiles of 8 px patches (an unfold "conv" + CLS, 2-D RoPE tower), pixel shuffle
(2x2 patches -> 1 token) + MLP inside the vision model, a linear projector, and a Llama 4 LM whose layer 0 is a
RoPE layer with chunked attention (chunk 8 tokens: it bites on every prompt) and L2 q/k norm and whose layer 1 is a
NoPE global layer with query temperature tuning (``floor_scale`` 4: it bites too); MoE (4 experts, top-1, shared
expert) on layer 1 by default (``moe_layers``), dense ``feed_forward`` on layer 0. Real processor:
``Llama4Processor`` with ``Llama4ImageProcessor`` (up to 4 tiles + a global view) and Llama 4's chat template."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tiny_parts import text_kwargs
from mmdiag.checkpoints.tokenizer import build_word_tokenizer

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec

IMAGE_TOKENS = (
    "<|image_start|>",
    "<|image_end|>",
    "<|image|>",  # the "fake" image token: the prompt's placeholder, and the marker before the global view
    "<|patch|>",  # the token every image feature replaces (config.image_token_index)
    "<|tile_x_separator|>",
    "<|tile_y_separator|>",
)
CHAT_TOKENS = ("<|header_start|>", "<|header_end|>", "<|eot|>")


def build_llama4(
    out: Path, spec: TinySpec, chunk: int = 8, moe_layers: tuple[int, ...] | None = None, max_tiles: int = 4
) -> None:
    """``chunk``: the RoPE layers' attention chunk (tokens); ``moe_layers``: which layers are MoE (default: the last,
    Maverick-style interleaving; ``tuple(range(spec.layers))`` for Scout-style all-MoE); ``max_tiles``: the image
    processor's ``max_patches``."""
    from transformers import (
        Llama4Config,
        Llama4ForConditionalGeneration,
        Llama4ImageProcessor,
        Llama4Processor,
        Llama4TextConfig,
        Llama4VisionConfig,
    )

    from mmdiag.scenes.vocabulary import all_words

    words = build_word_tokenizer([*all_words(), "user", "assistant", "system"], add_bos=False)  # template writes <s>
    words.add_tokens(list(IMAGE_TOKENS + CHAT_TOKENS), special_tokens=True)
    tokenizer = words
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in IMAGE_TOKENS}
    layers = spec.layers
    text = Llama4TextConfig(
        **text_kwargs(tokenizer, spec, eos_token_id=tokenizer.convert_tokens_to_ids("<|eot|>")),  # experts' width
        intermediate_size_mlp=spec.hidden * 2,  # the dense layers'
        head_dim=spec.hidden // spec.heads,
        num_local_experts=4,
        num_experts_per_tok=1,
        moe_layers=list(moe_layers) if moe_layers is not None else [layers - 1],
        no_rope_layers=[1] * (layers - 1) + [0],  # 1 = RoPE (chunked), 0 = NoPE (global)
        attention_chunk_size=chunk,
        use_qk_norm=True,
        attn_temperature_tuning=True,
        floor_scale=4,
        attn_scale=0.1,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    shuffled = spec.hidden * 4  # 2x2 patches folded into channels: the adapter MLP's input width
    vision = Llama4VisionConfig(
        hidden_size=spec.hidden,
        intermediate_size=shuffled,  # Llama4VisionMLP2.fc1 takes intermediate_size: must equal hidden / ratio^2
        num_hidden_layers=spec.layers,
        num_attention_heads=2,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        pixel_shuffle_ratio=0.5,
        projector_input_dim=spec.hidden,
        projector_output_dim=spec.hidden,
        vision_output_dim=spec.hidden,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    config = Llama4Config(
        vision_config=vision,
        text_config=text,
        boi_token_index=ids["<|image_start|>"],
        eoi_token_index=ids["<|image_end|>"],
        image_token_index=ids["<|patch|>"],
    )
    Llama4ForConditionalGeneration(config).eval().save_pretrained(out)
    size = {"height": spec.image_size, "width": spec.image_size}
    Llama4Processor(
        image_processor=Llama4ImageProcessor(size=size, max_patches=max_tiles),
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        pixel_shuffle_ratio=0.5,
    ).save_pretrained(out)
