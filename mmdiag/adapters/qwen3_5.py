"""Qwen3.5 (``Qwen3_5ForConditionalGeneration``) and Qwen3.5-MoE (``Qwen3_5MoeForConditionalGeneration``).

Module tree (transformers >= 5.2): ``model.model.visual`` (Qwen3-VL-style tower without DeepStack: learned position
grid resampled to the image, 2-D RoPE; ``.merger`` folds 2x2 patches, the projector), ``model.model.language_model``
(``Qwen3_5TextModel`` / ``Qwen3_5MoeTextModel``): decoder layers whose token mixer is *either* ``linear_attn``
(``Qwen3_5GatedDeltaNet``: causal conv + gated delta rule, a recurrent state, no softmax attention) *or*
``self_attn`` (``Qwen3_5Attention``: softmax attention with per-head q/k RMS norms, partial interleaved M-RoPE, and an
output gate: ``q_proj`` emits ``[query | gate]`` per head and the output is multiplied by ``sigmoid(gate)``), per
``config.text_config.layer_types`` (released checkpoints: 3 linear then 1 full, repeating).

The vision side, processor (``Qwen3VLProcessor`` + ``Qwen2VLImageProcessor``: resized to multiples of patch x merge,
``image_grid_thw``, plus ``mm_token_type_ids`` for M-RoPE) and token layout
``<|vision_start|> <|image_pad|> x (h/2 * w/2) <|vision_end|>`` are Qwen2-VL's, so this extends
:class:`Qwen2VLAdapter` (the ``vision_encoder`` stage put back in row-major order, regions from ``image_grid_thw``).

What differs for probes:

* ``lm_layers()`` are *all* decoder layers (hidden states, interventions' layer windows, flow probes index them);
  ``lm_attention_modules()`` are only the full-attention layers' ``self_attn`` (the only softmax attention there is);
  :meth:`lm_attention_layer_indices` gives each one's decoder-layer index (``module.layer_idx``), which attention
  edits use too. The attention probe's per-layer arrays are indexed by attention module, not by decoder layer.
* Image tokens reach later layers through the linear-attention state as well: attention rows, knockout and PAI only
  see / edit the full-attention layers (a knockout of "all layers" leaves the linear layers' path open).
* ``packs_questions = False``: a custom 4D mask reaches only the softmax layers (``create_recurrent_attention_mask``
  returns None for a 4D mask), so packed questions would leak into each other through the recurrent state.
* ``reuses_image_prefix = False``: M-RoPE positions depend on the whole input (as Qwen2-VL) and, besides, the
  hybrid cache's ``LinearAttentionLayer`` has no ``batch_select_indices`` (a cached prefix cannot be copied per
  question; ``reorder_cache`` could).
* The chat template opens a ``<think>`` block by default; yes/no scoring renders it with ``enable_thinking=False``
  (the empty think block is part of the prompt) so the first answer token is the answer.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from mmdiag.adapters.qwen2_vl import Qwen2VLAdapter


class Qwen3_5Adapter(Qwen2VLAdapter):
    """Adapter for ``Qwen3_5ForConditionalGeneration`` and ``Qwen3_5MoeForConditionalGeneration``."""

    family = "qwen3_5"
    image_input_keys = ("pixel_values", "image_grid_thw")
    prompt_template = (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    reuses_image_prefix = False  # M-RoPE; and the linear-attention cache cannot be gathered per question
    packs_questions = False  # a 4D mask does not reach the Gated DeltaNet layers
    chat_template_kwargs: ClassVar[dict[str, Any]] = {"enable_thinking": False}

    # -- language model ----------------------------------------------------------------------
    def language_model_config(self) -> Any:
        return self.model.config.text_config

    def lm_attention_modules(self) -> list[torch.nn.Module]:
        """The softmax-attention modules (full-attention layers only), in layer order."""
        return [layer.self_attn for layer in self.lm_layers() if getattr(layer, "self_attn", None) is not None]

    def linear_attention_modules(self) -> list[torch.nn.Module]:
        """The Gated DeltaNet token mixers (no attention probabilities to read)."""
        return [layer.linear_attn for layer in self.lm_layers() if getattr(layer, "linear_attn", None) is not None]
