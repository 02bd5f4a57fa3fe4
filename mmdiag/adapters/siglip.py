"""HF transformers ``SiglipModel`` (SigLIP): a patch tower without a CLS token pooled by an attention head, and a
text tower pooled at the last position (texts padded to the full length, as SigLIP was trained).

Canonical parts: ``vision_encoder`` = the patch tokens of the vision transformer (a full grid, no CLS),
``projector`` = the multihead-attention pooling head that turns them into the image embedding. Where CLIP's
probes read the CLS token's attention over patches, SigLIP has no CLS: the pooling head's probe query is the
token that gathers the image, so its attention over patches (one layer, per head) stands in for it.
Similarities are cosines; SigLIP's sigmoid (``logit_scale``, ``logit_bias``) is monotone in them, so every
ranking the probes read is the model's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.dual_encoder import DualEncoderAdapter
from mmdiag.adapters.hf_loading import LoadOptions, load_hf_model, load_hf_processor
from mmdiag.adapters.llava import _processor_image_size


class SiglipAdapter(DualEncoderAdapter):
    """Adapter for ``SiglipModel`` checkpoints."""

    family = "siglip"
    pooling_query = "the pooling head's probe query (SigLIP has no CLS token)"

    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions | None = None, **kwargs: Any) -> SiglipAdapter:
        from transformers import SiglipModel

        options = options or LoadOptions()
        processor = load_hf_processor(path, options)
        model = load_hf_model(SiglipModel, path, options)
        return cls(model, processor, source=path)

    def vision_encoder_module(self) -> torch.nn.Module:
        return self.model.vision_model

    def projector_module(self) -> torch.nn.Module:
        return self.model.vision_model.head

    def vision_grid(self) -> tuple[int, int]:
        vision = self.model.config.vision_config
        height, width = _processor_image_size(self.processor.image_processor, vision.image_size)
        return height // vision.patch_size, width // vision.patch_size

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        out = self.model.vision_model(pixel_values=self.pixel_values(images))
        return [
            StageFeatures("vision_encoder", out.last_hidden_state, self.vision_grid()),
            StageFeatures("image_embedding", out.pooler_output[:, None, :], None),
        ]

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.model.vision_model(pixel_values=self.pixel_values(images)).pooler_output

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        length = self.model.config.text_config.max_position_embeddings
        enc = self.processor.tokenizer(
            list(texts), return_tensors="pt", padding="max_length", truncation=True, max_length=length
        ).to(self.device)
        return self.model.text_model(input_ids=enc["input_ids"]).pooler_output  # pooled at the last position

    @torch.no_grad()
    def cls_attention(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """[n_images, 1, heads, n_patches]: the pooling head's probe query over the patches, per head."""
        vision = self.model.vision_model
        hidden = vision(pixel_values=self.pixel_values(images)).last_hidden_state
        head = vision.head
        probe = head.probe.repeat(hidden.shape[0], 1, 1)
        _, weights = head.attention(probe, hidden, hidden, need_weights=True, average_attn_weights=False)
        return weights[:, None, :, 0, :].float()  # [B, heads, 1, N] -> [B, 1, heads, N]
