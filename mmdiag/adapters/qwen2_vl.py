"""Qwen2-VL and Qwen2.5-VL: a native-resolution ViT whose *patch merger* (2x2 neighbours -> one token) is the
projector, and a Qwen2 LM with M-RoPE (3-D positions for image tokens).

Module tree (transformers 5): ``model.model.visual`` (``.merger``), ``model.model.language_model``. The
processor resizes each image to multiples of patch x merge pixels (its aspect ratio kept) and reports the patch
grid in ``image_grid_thw``; the tower's patches arrive merge-window by merge-window, which the
``vision_encoder`` stage puts back in row-major order. The LLM's image tokens are the merged grid, row-major, so
each token's region follows from ``image_grid_thw``. Positions are computed from the whole input, so a cached
image prefix is not continued by text alone: every question is scored in full.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.capture import capture_io
from mmdiag.adapters.projector_lm import (
    PROBE_IMAGE_SIZE,
    ProjectorLMAdapter,
    grid_regions,
)
from mmdiag.adapters.types import PreparedBatch


class Qwen2VLAdapter(ProjectorLMAdapter):
    """Adapter for ``Qwen2VLForConditionalGeneration`` and ``Qwen2_5_VLForConditionalGeneration``."""

    family = "qwen2_vl"
    image_input_keys = ("pixel_values", "image_grid_thw")
    prompt_template = (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n<|im_start|>assistant\n"
    )
    reuses_image_prefix = False  # M-RoPE positions depend on the whole input

    @property
    def merge(self) -> int:
        return int(self.model.config.vision_config.spatial_merge_size)

    def vision_grid(self) -> tuple[int, int]:
        """The patch grid of a square image of the validation size (the grid follows each image's size)."""
        thw = self.image_inputs([Image.new("RGB", (PROBE_IMAGE_SIZE, PROBE_IMAGE_SIZE))])["image_grid_thw"][0]
        return int(thw[1]), int(thw[2])

    def token_grid(self) -> tuple[int, int] | None:
        return None  # one grid per image size: placed by token_regions

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        """Patches before the merger (row-major) and the merged tokens the LLM receives.

        Qwen2.5-VL's tower runs merge units in attention-window order and restores the order after the merger;
        the restoring permutation is read off by matching the merger's rows to ``get_image_features``' output, so
        the patches are put back in the same way whatever the installed version does. Features of a batch share one
        grid, so images of another size than the first are resized to it (as a fixed-resolution processor would)."""
        size = images[0].size
        inputs = self.image_inputs(
            [image if image.size == size else image.resize(size, Image.BICUBIC) for image in images]
        )
        thw = inputs["image_grid_thw"].cpu()
        with capture_io({"projector": self.projector_module()}) as captured:
            returned = self._core.get_image_features(**inputs).pooler_output
        pre, post = captured.first_input("projector"), captured.output_tensor("projector")
        merged = torch.cat(list(returned)) if isinstance(returned, (list, tuple)) else returned
        unit = self.merge**2
        order = torch.cdist(merged.float(), post.float()).argmin(dim=1)  # merged[j] is the merger's row order[j]
        pre = pre.reshape(post.shape[0], unit, -1)[order].reshape(-1, pre.shape[-1])
        t, h, w = (int(v) for v in thw[0])
        m = self.merge
        n_images = len(images)
        row_major = torch.as_tensor(_window_to_row_major(h, w, m), device=pre.device)
        vision = pre.reshape(n_images, t * h * w, -1)[:, : h * w][:, row_major]  # first frame (t = 1 for images)
        tokens = merged.reshape(n_images, -1, merged.shape[-1])
        grid = (h // m, w // m)
        return [
            StageFeatures("vision_encoder", vision, (h, w)),
            StageFeatures("projector", tokens, grid if tokens.shape[1] == grid[0] * grid[1] else None),
        ]

    def token_regions(self, batch: PreparedBatch, images: Sequence[Image.Image]) -> list[np.ndarray] | None:
        thw = batch.inputs["image_grid_thw"].cpu()
        out = []
        for row, (_, h, w) in enumerate(thw.tolist()):
            regions = grid_regions(h // self.merge, w // self.merge)
            if len(regions) != sum(end - start for start, end in batch.image_spans[row]):
                return None
            out.append(regions)
        return out

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.image_inputs(images)["pixel_values"]


def _window_to_row_major(h: int, w: int, m: int) -> np.ndarray:
    """Indices that reorder a frame's patches from the processor's merge-window order to row-major (h, w)."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    window = (rows // m) * (w // m) + cols // m
    return (window * m * m + (rows % m) * m + cols % m).ravel()
