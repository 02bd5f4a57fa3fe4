"""InstructBLIP: BLIP-2's architecture whose Q-Former also reads the instruction, so the image tokens the LLM
sees depend on the question.

Canonical parts as BLIP-2 (``vision_encoder``, the Q-Former's query outputs, ``projector``, decoder-only
``lm_layers``; the LLM's image tokens are the query tokens, first in the sequence, with no patch grid).
Consequences: yes/no questions about one image share no image prefix (each runs in full), and the
representation stages of the spatial probe are read with one fixed, neutral instruction
(:data:`FEATURE_INSTRUCTION`) so that every image is encoded alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from mmdiag.adapters.blip2 import Blip2Adapter
from mmdiag.adapters.encoder_decoder import EncoderDecoderLM
from mmdiag.adapters.hf_loading import LoadOptions, load_hf_model, load_hf_processor

FEATURE_INSTRUCTION = "Describe the image."


class InstructBlipAdapter(Blip2Adapter):
    """Adapter for ``InstructBlipForConditionalGeneration`` with a decoder-only language model."""

    family = "instructblip"
    image_tokens_read_the_prompt = True

    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions | None = None, **kwargs: Any) -> InstructBlipAdapter:
        from transformers import InstructBlipForConditionalGeneration

        options = options or LoadOptions()
        processor = load_hf_processor(path, options, required=("image_processor", "tokenizer", "qformer_tokenizer"))
        model = load_hf_model(InstructBlipForConditionalGeneration, path, options)
        return cls.wrap(model, processor, source=path, **kwargs)

    @classmethod
    def with_t5(cls, model: torch.nn.Module, processor: Any, **kwargs: Any) -> InstructBlipAdapter:
        return InstructBlipT5Adapter(model, processor, **kwargs)

    def _image_feature_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        instruction = self.processor.qformer_tokenizer(
            [self.format_prompt(FEATURE_INSTRUCTION)] * len(images), return_tensors="pt", padding=True
        )
        return {
            "pixel_values": self.pixel_values(images),
            "qformer_input_ids": instruction["input_ids"].to(self.device),
            "qformer_attention_mask": instruction["attention_mask"].to(self.device),
        }


class InstructBlipT5Adapter(EncoderDecoderLM, InstructBlipAdapter):
    """InstructBLIP with a T5 language model (``Salesforce/instructblip-flan-t5-xl`` and the like)."""

    family = "instructblip_t5"
