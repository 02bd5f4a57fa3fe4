"""Mistral 3 (Mistral Small 3.1 / 3.2, and Pixtral-style checkpoints in ``Mistral3ForConditionalGeneration``): a
Pixtral tower at the image's own aspect ratio, a projector that norms, merges 2x2 patches (``patch_merger``) and maps
them into a Mistral LM.

Module tree (transformers 5): ``model.model.vision_tower``, ``model.model.multi_modal_projector`` (``norm`` ->
``patch_merger`` -> MLP), ``model.model.language_model``. The processor resizes each image to fit ``longest_edge``,
its aspect kept, and writes one ``[IMG]`` per merged patch, row by row, with ``[IMG_BREAK]`` ending every row and
``[IMG_END]`` the last: the image tokens are the ``[IMG]`` runs (one span per row), placed row-major on the merged grid
of ``image_sizes``; the break and end tokens are text. The tower reads all images of a batch as one sequence with a
block-diagonal mask, so its patches arrive image by image, row-major; the merger drops a last odd row or column, whose
pixels no token shows. Positions are plain 1-D, so questions pack after one image prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.capture import capture_io
from mmdiag.adapters.projector_lm import PROBE_IMAGE_SIZE, ProjectorLMAdapter, grid_regions
from mmdiag.adapters.types import PreparedBatch


class Mistral3Adapter(ProjectorLMAdapter):
    """Adapter for ``Mistral3ForConditionalGeneration``."""

    family = "mistral3"
    prompt_template = "[INST][IMG]{question}[/INST]"
    image_input_keys = ("pixel_values", "image_sizes")

    @property
    def merge(self) -> int:
        return int(self.model.config.spatial_merge_size)

    @property
    def patch(self) -> int:
        return int(self.model.config.vision_config.patch_size)

    def _patch_grid(self, size: Sequence[int]) -> tuple[int, int]:
        return int(size[0]) // self.patch, int(size[1]) // self.patch

    def vision_grid(self) -> tuple[int, int]:
        """The patch grid of a square image of the validation size (the grid follows each image's size)."""
        image = Image.new("RGB", (PROBE_IMAGE_SIZE, PROBE_IMAGE_SIZE))
        return self._patch_grid(self.image_inputs([image])["image_sizes"][0].tolist())

    def token_grid(self) -> tuple[int, int] | None:
        return None  # one grid per image size: placed by token_regions

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        """Each image's patches (the projector's input, row-major) and its merged tokens (row-major on the merged
        grid). A batch shares one grid: images of another size than the first are resized to it."""
        size = images[0].size
        inputs = self.image_inputs([im if im.size == size else im.resize(size, Image.BICUBIC) for im in images])
        rows, cols = self._patch_grid(inputs["image_sizes"][0].tolist())
        with capture_io({"projector": self.projector_module()}) as captured:
            self._core.get_image_features(**inputs)
        pre, post = captured.first_input("projector"), captured.output_tensor("projector")
        n = len(images)
        merged = (rows // self.merge, cols // self.merge)
        return [
            StageFeatures("vision_encoder", pre.reshape(n, rows * cols, -1), (rows, cols)),
            StageFeatures("projector", post.reshape(n, merged[0] * merged[1], -1), merged),
        ]

    def token_regions(self, batch: PreparedBatch, images: Sequence[Image.Image]) -> list[np.ndarray] | None:
        out = []
        side = self.patch * self.merge
        for row, (height, width) in enumerate(batch.inputs["image_sizes"].tolist()):
            rows, cols = int(height) // side, int(width) // side
            regions = grid_regions(rows, cols, (0.0, 0.0, rows * side / height, cols * side / width))
            if len(regions) != sum(end - start for start, end in batch.image_spans[row]):
                return None  # a layout this adapter does not understand: no regions rather than wrong ones
            out.append(regions)
        return out
