"""InternVL (transformers-native ``InternVLForConditionalGeneration``): InternViT -> pixel shuffle (2x2 neighbours
folded into channels) -> MLP projector -> LLM, on dynamic tiles.

Module tree as LLaVA's. With ``crop_to_patches`` the image processor resizes the image to the tile canvas whose
aspect ratio is closest to the image's (``get_optimal_tiled_canvas``), cuts it into row-major tiles and, when there
is more than one, appends a thumbnail of the whole image; each view becomes ``image_seq_length`` tokens. Every
token's region is its 2x2 patch block inside its view, traced through the model's own ``pixel_shuffle``. Spatial
probes read the first view of a one-tile image: the whole image at the tower's size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.llava import LlavaAdapter
from mmdiag.adapters.pixel_shuffle import PixelShuffleViews
from mmdiag.adapters.types import PreparedBatch


class InternVLAdapter(PixelShuffleViews, LlavaAdapter):
    """Adapter for ``InternVLForConditionalGeneration`` (InternVL 2.5 / 3 in transformers' format)."""

    family = "internvl"
    prompt_template = "<|im_start|>user\n<IMG_CONTEXT>\n{question}<|im_end|>\n<|im_start|>assistant\n"

    def pixel_rows(self, batch: PreparedBatch) -> list[slice]:
        """Each row's tiles in ``pixel_values`` (all rows' views concatenated): its image tokens / tokens per view."""
        per_view = int(self.processor.image_seq_length)
        views = [sum(end - start for start, end in spans) // per_view for spans in batch.image_spans]
        bounds = np.concatenate([[0], np.cumsum(views)]).astype(int)
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    def vision_grid(self) -> tuple[int, int]:
        size = self.model.config.vision_config.image_size
        patch = self.model.config.vision_config.patch_size
        height, width = (size, size) if isinstance(size, int) else size
        p_h, p_w = (patch, patch) if isinstance(patch, int) else patch
        return int(height) // int(p_h), int(width) // int(p_w)

    def token_grid(self) -> tuple[int, int] | None:
        return None  # views and pixel-shuffled blocks: placed by token_regions

    def shuffle(self, coords: torch.Tensor) -> torch.Tensor:
        return self._core.pixel_shuffle(coords, scale_factor=self.model.config.downsample_ratio)

    def view_frames(self, image: Image.Image) -> list[tuple[float, float, float, float]]:
        """The part of ``image`` (y0, x0, y1, x1 fractions) each view shows, in the processor's order."""
        from transformers.models.got_ocr2.image_processing_got_ocr2 import get_optimal_tiled_canvas

        processor = self.processor.image_processor
        if not getattr(processor, "crop_to_patches", False) or int(processor.max_patches) <= 1:
            return [(0.0, 0.0, 1.0, 1.0)]
        size = processor.size
        cols, rows = get_optimal_tiled_canvas(
            (image.height, image.width),
            (size["height"], size["width"]),
            int(processor.min_patches),
            int(processor.max_patches),
        )
        frames = [(r / rows, c / cols, (r + 1) / rows, (c + 1) / cols) for r in range(rows) for c in range(cols)]
        return frames + [(0.0, 0.0, 1.0, 1.0)] if len(frames) > 1 else frames  # the thumbnail comes last

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        """Each image's first view: the tower's patches (the projector's input, unfolded back onto the patch grid)
        and the projector's tokens (one per 2x2 block)."""
        from mmdiag.adapters.capture import capture_io

        inputs = self.image_inputs(images)
        views = [len(self.view_frames(image)) for image in images]
        first = torch.as_tensor(np.concatenate([[0], np.cumsum(views)[:-1]]), device=self.device)
        with capture_io({"projector": self.projector_module()}) as captured:
            self._core.get_image_features(**inputs)
        folded = captured.first_input("projector")[first]  # [images, view tokens, folded * channels]
        tokens = captured.output_tensor("projector")[first]
        layout = self.shuffle_layout()
        rows, cols = self.vision_grid()
        n_folded = layout.shape[1]
        unfolded = folded.reshape(folded.shape[0], folded.shape[1], n_folded, -1)
        patches = torch.empty(
            folded.shape[0], rows * cols, unfolded.shape[-1], dtype=folded.dtype, device=folded.device
        )
        index = torch.as_tensor(layout[..., 0] * cols + layout[..., 1], device=folded.device)  # [view tokens, folded]
        patches[:, index.reshape(-1)] = unfolded.reshape(folded.shape[0], -1, unfolded.shape[-1])
        side = int(round(tokens.shape[1] ** 0.5))
        return [
            StageFeatures("vision_encoder", patches, (rows, cols)),
            StageFeatures("projector", tokens, (side, side) if side * side == tokens.shape[1] else None),
        ]
