"""HF transformers ``Siglip2Model`` (SigLIP 2, NaFlex): SigLIP with native-aspect patch sequences.

The image processor resizes each image, keeping its aspect ratio, to at most ``max_num_patches`` patches and
returns them flattened (``pixel_values`` [batch, max patches, channels x patch x patch]) with the patch grid of
each image (``spatial_shapes``) and which rows are real (``pixel_attention_mask``; padding rows come last).
Canonical parts as SigLIP's: ``vision_encoder`` = the real patch tokens in row-major order on that grid,
``projector`` = the masked attention-pooling head. Feature batches share one grid, so images of another size
than the first are resized to it (as a fixed-resolution processor would).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.hf_loading import LoadOptions, load_hf_model, load_hf_processor
from mmdiag.adapters.siglip import SiglipAdapter

PROBE_IMAGE_SIZE = 32


class Siglip2Adapter(SiglipAdapter):
    """Adapter for ``Siglip2Model`` checkpoints (the NaFlex variants)."""

    family = "siglip2"

    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions | None = None, **kwargs: Any) -> Siglip2Adapter:
        from transformers import Siglip2Model

        options = options or LoadOptions()
        processor = load_hf_processor(path, options)
        model = load_hf_model(Siglip2Model, path, options)
        return cls(model, processor, source=path)

    def image_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """The processor's patches, mask and grids, every image resized to the first one's size first."""
        size = images[0].size
        same = [image if image.size == size else image.resize(size, Image.BICUBIC) for image in images]
        encoded = self.processor.image_processor(images=same, return_tensors="pt")
        return {
            "pixel_values": encoded["pixel_values"].to(self.device, self.dtype),
            "pixel_attention_mask": encoded["pixel_attention_mask"].to(self.device),
            "spatial_shapes": encoded["spatial_shapes"].to(self.device),
        }

    def vision_grid(self) -> tuple[int, int]:
        """The patch grid of a square image (the grid follows each image's aspect ratio)."""
        rows, cols = self.image_inputs([Image.new("RGB", (PROBE_IMAGE_SIZE, PROBE_IMAGE_SIZE))])["spatial_shapes"][0]
        return int(rows), int(cols)

    def _tower(self, images: Sequence[Image.Image]) -> tuple[Any, dict[str, torch.Tensor], tuple[int, int]]:
        inputs = self.image_inputs(images)
        out = self.model.vision_model(**inputs)
        rows, cols = (int(v) for v in inputs["spatial_shapes"][0])
        return out, inputs, (rows, cols)

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        out, _, (rows, cols) = self._tower(images)
        return [
            StageFeatures("vision_encoder", out.last_hidden_state[:, : rows * cols], (rows, cols)),
            StageFeatures("image_embedding", out.pooler_output[:, None, :], None),
        ]

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self._tower(images)[0].pooler_output

    @torch.no_grad()
    def cls_attention(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """[n_images, 1, heads, n_patches]: the pooling head's probe query over the real patches, per head."""
        out, inputs, (rows, cols) = self._tower(images)
        hidden = out.last_hidden_state
        head = self.model.vision_model.head
        probe = head.probe.repeat(hidden.shape[0], 1, 1)
        _, weights = head.attention(
            probe,
            hidden,
            hidden,
            key_padding_mask=~inputs["pixel_attention_mask"].bool(),
            need_weights=True,
            average_attn_weights=False,
        )
        return weights[:, None, :, 0, : rows * cols].float()
