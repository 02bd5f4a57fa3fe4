"""Tiny Qwen3.5 (dense) and Qwen3.5-MoE checkpoints: the Qwen3-VL-style tower (8 px patches, learned position
grid interpolated to the image, merged 2x2), a hybrid LM of Gated DeltaNet (linear attention) and gated full
attention layers with interleaved M-RoPE, and the real processor (``Qwen3VLProcessor`` with a
``Qwen2VLImageProcessor``; ``AutoProcessor`` reloads the tokenizer as ``Qwen3_5Tokenizer`` whatever the saved
class says, see ``MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmdiag.checkpoints.tiny_parts import native_pixels, native_vision_kwargs, text_kwargs
from mmdiag.checkpoints.tiny_qwen import VISION_TOKENS, vision_token_ids

if TYPE_CHECKING:
    from mmdiag.checkpoints.tiny_parts import TinySpec

CHAT_TOKENS = ("<|im_start|>", "<|im_end|>", "<think>", "</think>")

# Qwen3.5's chat template reduced to what mmdiag renders: image then text in a user turn, an optional system turn,
# and the generation prompt, which opens a thinking block unless ``enable_thinking=False`` closes it empty (as the
# released template does)
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\n\n</think>\n\n' -}}"
    "{%- else -%}{{- '<think>\n' -}}{%- endif -%}{%- endif -%}"
)


def build_qwen3_5(out: Path, spec: TinySpec, moe: bool = False) -> None:
    """``moe``: ``Qwen3_5MoeForConditionalGeneration`` (sparse experts + shared expert in every layer)."""
    import transformers

    prefix = "Qwen3_5Moe" if moe else "Qwen3_5"
    config_cls, model_cls = (getattr(transformers, prefix + n) for n in ("Config", "ForConditionalGeneration"))
    tokenizer = build_qwen_tokenizer()
    head_dim = 2 * spec.hidden // spec.heads  # 16: a rotary part of 8 dims (partial 0.5) holds the 3 M-RoPE sections
    text = text_kwargs(
        tokenizer,
        spec,
        head_dim=head_dim,
        # layer 0 Gated DeltaNet, layer 1 gated softmax attention (the released models: 3 linear then 1 full)
        layer_types=["linear_attention"] * (spec.layers - 1) + ["full_attention"],
        linear_conv_kernel_dim=4,
        linear_key_head_dim=8,
        linear_value_head_dim=8,
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        bos_token_id=None,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.5,
            "mrope_section": [2, 1, 1],
            "mrope_interleaved": True,
        },
    )
    if moe:
        text.update(
            moe_intermediate_size=spec.hidden,
            shared_expert_intermediate_size=spec.hidden,
            num_experts=4,
            num_experts_per_tok=2,
        )
    grid = spec.image_size // spec.patch_size
    vision = native_vision_kwargs(
        spec,
        intermediate_size=spec.hidden * 2,
        out_hidden_size=spec.hidden,
        num_position_embeddings=grid * grid,  # the learned grid is 4x4, bilinearly resampled to other sizes
    )
    config = config_cls(
        text_config=text,
        vision_config=vision,
        **vision_token_ids(tokenizer),
    )
    model = model_cls(config).eval()
    import torch

    with torch.no_grad():  # decay rates A in [0.01, 0.1] (init draws up to 16): a state that outlives a few tokens,
        for layer in model.model.language_model.layers:  # as trained models' long-memory heads do
            if hasattr(layer, "linear_attn"):
                layer.linear_attn.A_log.uniform_(float(torch.tensor(0.01).log()), float(torch.tensor(0.1).log()))
    model.save_pretrained(out)
    pixels = native_pixels(spec)
    processor = transformers.Qwen3VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=transformers.Qwen3VLVideoProcessor(**pixels),
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)


def build_qwen_tokenizer():  # noqa: ANN201 - transformers type
    """Qwen3.5's own tokenizer class (byte-level BPE, no BOS, ``<|endoftext|>`` pads, ``<|im_end|>`` ends a turn)
    over the scene vocabulary, with the vision and chat special tokens."""
    from transformers import Qwen3_5Tokenizer

    from mmdiag.checkpoints.bpe_tokenizer import train_byte_bpe

    vocab, merges = train_byte_bpe()
    vocab = {"<|endoftext|>": 0, **{token: i + 1 for token, i in vocab.items()}}
    tokenizer = Qwen3_5Tokenizer(vocab=vocab, merges=merges)
    tokenizer.add_tokens(list(VISION_TOKENS + CHAT_TOKENS), special_tokens=True)
    tokenizer.add_special_tokens({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    return tokenizer
