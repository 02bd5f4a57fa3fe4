"""HF transformers ``CLIPModel``: vision tower (CLS + patches) and text tower, each with a projection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.dual_encoder import DualEncoderAdapter
from mmdiag.adapters.hf_loading import LoadOptions, load_hf_model, load_hf_processor
from mmdiag.adapters.llava import _processor_image_size


class HFClipAdapter(DualEncoderAdapter):
    """Adapter for ``CLIPModel`` checkpoints."""

    family = "clip"

    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions | None = None, **kwargs: Any) -> HFClipAdapter:
        from transformers import CLIPModel

        options = options or LoadOptions()
        processor = load_hf_processor(path, options)
        model = load_hf_model(CLIPModel, path, options)
        return cls(model, processor, source=path)

    def vision_encoder_module(self) -> torch.nn.Module:
        return self.model.vision_model

    def projector_module(self) -> torch.nn.Module:
        return self.model.visual_projection

    def vision_grid(self) -> tuple[int, int]:
        vision = self.model.config.vision_config
        height, width = _processor_image_size(self.processor.image_processor, vision.image_size)
        return height // vision.patch_size, width // vision.patch_size

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        out = self.model.vision_model(pixel_values=self.pixel_values(images))
        embedding = self.model.visual_projection(out.pooler_output)
        return [
            StageFeatures("vision_encoder", out.last_hidden_state[:, 1:], self.vision_grid()),
            StageFeatures("image_embedding", embedding[:, None, :], None),
        ]

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        out = self.model.vision_model(pixel_values=self.pixel_values(images))
        return self.model.visual_projection(out.pooler_output)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        enc = self.processor.tokenizer(list(texts), return_tensors="pt", padding=True).to(self.device)
        out = self.model.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return self.model.text_projection(out.pooler_output)

    @torch.no_grad()
    def cls_attention(self, images: Sequence[Image.Image]) -> torch.Tensor:
        config = self.model.vision_model.config
        previous = config._attn_implementation
        config._attn_implementation = "eager"
        try:
            out = self.model.vision_model(pixel_values=self.pixel_values(images), output_attentions=True)
        finally:
            config._attn_implementation = previous
        # each layer [B, H, 1+N, 1+N]: keep the CLS query row over the patch keys
        return torch.stack([a[:, :, 0, 1:].float() for a in out.attentions], dim=1)
