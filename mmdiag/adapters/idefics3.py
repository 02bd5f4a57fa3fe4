"""Idefics3 and SmolVLM: SigLIP tower -> connector (pixel shuffle, then a linear map) -> LLM, on image splits.

Module tree (transformers 5): ``model.model.vision_model``, ``model.model.connector``, ``model.model.text_model``.
With ``do_image_splitting`` the processor resizes the image, cuts it into row-major tiles of the tower's size and
appends a global view of the whole image; each view becomes ``image_seq_len`` ``<image>`` tokens between
``<fake_token_around_image>`` and a ``<row_r_col_c>`` / ``<global-img>`` tag, so an image is several spans. Each
token's region is its block of patches inside its view, traced through the connector's own ``pixel_shuffle``.
Spatial probes read the global view (the whole image on the tower's patch grid).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.capture import capture_io
from mmdiag.adapters.projector_lm import ProjectorLMAdapter
from mmdiag.adapters.types import PreparedBatch


class Idefics3Adapter(ProjectorLMAdapter):
    """Adapter for ``Idefics3ForConditionalGeneration`` and ``SmolVLMForConditionalGeneration``."""

    family = "idefics3"
    architectures = ("Idefics3ForConditionalGeneration", "SmolVLMForConditionalGeneration")
    vision_attr = "vision_model"
    projector_attr = "connector"
    language_attr = "text_model"
    image_input_keys = ("pixel_values", "pixel_attention_mask")
    prompt_template = "User:<image>{question}<end_of_utterance>\nAssistant:"

    def vision_grid(self) -> tuple[int, int]:
        vision = self.model.config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        return side, side

    def token_grid(self) -> tuple[int, int] | None:
        return None  # tiles and a global view, several spans: placed by token_regions

    def _shuffle_layout(self) -> np.ndarray:
        """[view tokens, folded patches, (row, col)] of one view, traced through the connector's pixel shuffle."""
        rows, cols = self.vision_grid()
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        coords = torch.as_tensor(np.stack([r, c], axis=-1).reshape(1, rows * cols, 2), dtype=torch.float32)
        connector = self.projector_module()
        shuffled = connector.pixel_shuffle(coords, connector.scale_factor)
        return shuffled.reshape(shuffled.shape[1], -1, 2).numpy().round().astype(int)

    def _view_blocks(self) -> np.ndarray:
        rows, cols = self.vision_grid()
        pairs = self._shuffle_layout()
        low, high = pairs.min(axis=1), pairs.max(axis=1) + 1
        return np.stack([low[:, 0] / rows, low[:, 1] / cols, high[:, 0] / rows, high[:, 1] / cols], axis=-1)

    def view_frames(self, image: Image.Image) -> list[tuple[float, float, float, float]]:
        """The part of ``image`` each view shows (y0, x0, y1, x1 fractions), in prompt order: tiles, then global."""
        info = self.processor.image_processor(images=[[image]], return_row_col_info=True, return_tensors="pt")
        rows, cols = int(info["rows"][0][0]), int(info["cols"][0][0])
        tiles = [(r / rows, c / cols, (r + 1) / rows, (c + 1) / cols) for r in range(rows) for c in range(cols)]
        return tiles + [(0.0, 0.0, 1.0, 1.0)]

    def token_regions(self, batch: PreparedBatch, images: Sequence[Image.Image]) -> list[np.ndarray] | None:
        blocks = self._view_blocks()
        out = []
        for row, image in enumerate(images):
            views = [np.array([y0, x0, y0, x0]) + blocks * np.array([y1 - y0, x1 - x0, y1 - y0, x1 - x0])
                     for y0, x0, y1, x1 in self.view_frames(image)]
            regions = np.concatenate(views)
            if len(regions) != sum(end - start for start, end in batch.image_spans[row]):
                return None
            out.append(regions)
        return out

    def image_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """One global view per image (no splitting): the whole image on the tower's grid, for the feature stages."""
        encoded = self.processor.image_processor(images=[[image] for image in images], do_image_splitting=False,
                                                 return_tensors="pt")
        out = {key: torch.as_tensor(encoded[key]).to(self.device) for key in self.image_input_keys if key in encoded}
        out["pixel_values"] = out["pixel_values"].to(self.dtype)
        return out

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        inputs = self.image_inputs(images)
        with capture_io({"projector": self.projector_module()}) as captured:
            self._core.get_image_features(**inputs)
        patches = captured.first_input("projector")  # [images, patches, dim]: one view each
        tokens = captured.output_tensor("projector")
        return [StageFeatures("vision_encoder", patches, self.vision_grid()),
                StageFeatures("projector", tokens, _block_grid(self._shuffle_layout()))]


def _block_grid(layout: np.ndarray) -> tuple[int, int] | None:
    """(rows, cols) when the tokens of a view are its patch blocks in row-major order, else ``None``."""
    corners = layout.min(axis=1)  # each token's top-left patch
    rows, cols = np.unique(corners[:, 0]), np.unique(corners[:, 1])
    expected = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    return (len(rows), len(cols)) if len(corners) == len(expected) and np.array_equal(corners, expected) else None
