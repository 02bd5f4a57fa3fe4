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
from typing import Any

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.capture import capture_io
from mmdiag.adapters.pixel_shuffle import PixelShuffleViews
from mmdiag.adapters.projector_lm import ProjectorLMAdapter


class Idefics3Adapter(PixelShuffleViews, ProjectorLMAdapter):
    """Adapter for ``Idefics3ForConditionalGeneration`` and ``SmolVLMForConditionalGeneration``."""

    family = "idefics3"
    image_input_keys = ("pixel_values", "pixel_attention_mask")
    prompt_template = "User:<image>{question}<end_of_utterance>\nAssistant:"

    def processor_images(self, images: Sequence[Image.Image]) -> list[Any]:
        """One list per prompt: SmolVLM's processor reads a flat list as one prompt's images."""
        return [[image] for image in images]

    def vision_grid(self) -> tuple[int, int]:
        vision = self.model.config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        return side, side

    def token_grid(self) -> tuple[int, int] | None:
        return None  # tiles and a global view, several spans: placed by token_regions

    def shuffle(self, coords: torch.Tensor) -> torch.Tensor:
        connector = self.projector_module()
        return connector.pixel_shuffle(coords.reshape(1, -1, coords.shape[-1]), connector.scale_factor)

    def view_frames(self, image: Image.Image) -> list[tuple[float, float, float, float]]:
        """The part of ``image`` each view shows (y0, x0, y1, x1 fractions), in prompt order: tiles, then global."""
        info = self.processor.image_processor(images=[[image]], return_row_col_info=True, return_tensors="pt")
        rows, cols = int(info["rows"][0][0]), int(info["cols"][0][0])
        tiles = [(r / rows, c / cols, (r + 1) / rows, (c + 1) / cols) for r in range(rows) for c in range(cols)]
        return tiles + [(0.0, 0.0, 1.0, 1.0)]

    def image_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """One global view per image (no splitting): the whole image on the tower's grid, for the feature stages."""
        encoded = self.processor.image_processor(
            images=[[image] for image in images], do_image_splitting=False, return_tensors="pt"
        )
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
        return [
            StageFeatures("vision_encoder", patches, self.vision_grid()),
            StageFeatures("projector", tokens, _block_grid(self.shuffle_layout())),
        ]


def _block_grid(layout: np.ndarray) -> tuple[int, int] | None:
    """(rows, cols) when the tokens of a view are its patch blocks in row-major order, else ``None``."""
    corners = layout.min(axis=1)  # each token's top-left patch
    rows, cols = np.unique(corners[:, 0]), np.unique(corners[:, 1])
    expected = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    return (len(rows), len(cols)) if len(corners) == len(expected) and np.array_equal(corners, expected) else None
