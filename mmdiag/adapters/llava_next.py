"""LLaVA-NeXT and LLaVA-OneVision: "anyres" images, a base view plus high-resolution tiles, with row-end tokens.

Module tree as LLaVA's, plus ``model.model.image_newline``. The processor resizes a copy of the image to the
tower's size (the *base view*) and cuts a resized, padded copy into tiles on the best of
``image_grid_pinpoints``; ``pack_image_features`` joins the tiles into one map, removes the padding ("unpad"),
may shrink it (OneVision's ``anyres_max_N``), and ends every row with the newline embedding.

Where each image token sits is read from the model's *own* packing: it is run on features that hold their
tile, row and column instead of activations, so unpadding, interpolation and newline placement are whatever
the installed transformers does. Spatial probes read the base view (tile 0: the whole image on the tower's
patch grid) before and after the projector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.llava import TowerGridLlavaAdapter
from mmdiag.adapters.projector_lm import grid_regions
from mmdiag.adapters.types import PreparedBatch

_NEWLINE = -1.0  # the coordinate features' marker of a row-end token


class LlavaNextAdapter(TowerGridLlavaAdapter):
    """Adapter for ``LlavaNextForConditionalGeneration`` (LLaVA-1.6)."""

    family = "llava_next"
    prompt_template = "[INST] <image>\n{question} [/INST]"
    image_input_keys = ("pixel_values", "image_sizes")

    def token_grid(self) -> tuple[int, int] | None:
        return None  # base view, tiles and row ends: placed by token_regions

    def tiles_per_image(self, image_sizes: torch.Tensor) -> list[int]:
        """How many views (base + tiles) the model cuts each image into, by its own rule."""
        from transformers.models.llava_next.modeling_llava_next import (
            image_size_to_num_patches,
        )

        config = self.model.config
        return [
            int(
                image_size_to_num_patches(
                    image_size=size,
                    grid_pinpoints=config.image_grid_pinpoints,
                    patch_size=config.vision_config.image_size,
                )
            )
            for size in image_sizes
        ]

    def stages_from_projector(
        self, pre: torch.Tensor, post: torch.Tensor, inputs: dict[str, torch.Tensor], n_images: int
    ) -> list[StageFeatures]:
        """The base view of every image: its rows in the tower's batch of views are the first of each image."""
        counts = self.tiles_per_image(inputs["image_sizes"])
        base = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)[:-1]]), device=pre.device)
        return super().stages_from_projector(pre[base], post[base], inputs, n_images)

    # -- where the image tokens sit ----------------------------------------------------------
    def _pack(
        self, features: list[torch.Tensor], image_sizes: torch.Tensor, newline: torch.Tensor
    ) -> list[torch.Tensor]:
        packed, _ = self._core.pack_image_features(
            features, image_sizes, vision_feature_select_strategy=self._strategy(), image_newline=newline
        )
        return packed

    def _strategy(self) -> str:
        return str(self.model.config.vision_feature_select_strategy)

    def token_regions(self, batch: PreparedBatch, images: Sequence[Image.Image]) -> list[np.ndarray] | None:
        sizes = batch.inputs["image_sizes"].cpu()
        counts = self.tiles_per_image(sizes)
        side = self.vision_grid()[0]
        out = []
        for row, (size, n_views) in enumerate(zip(sizes, counts)):
            regions = self.regions_of_one_image(size, n_views, side)
            n_tokens = sum(end - start for start, end in batch.image_spans[row])
            if len(regions) != n_tokens:  # a layout this adapter does not understand: no regions rather than wrong ones
                return None
            out.append(regions)
        return out

    def regions_of_one_image(self, image_size: torch.Tensor, n_views: int, side: int) -> np.ndarray:
        """[n_tokens, 4] boxes of one image's packed tokens (NaN for row ends), traced through the model's packing."""
        r, c = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        tiles = []
        for view in range(n_views):  # channels: (is a tile token, row in its view, col in its view, view index)
            tiles.append(np.stack([np.ones(side * side), r.ravel(), c.ravel(), np.full(side * side, view)], axis=-1))
        features = torch.as_tensor(np.stack(tiles), dtype=torch.float32)
        _, cols = self._tile_layout(image_size, n_views)
        if n_views > 1:  # a tile's row/col becomes its place on the map of all tiles (row-major tiles)
            view = features[1:, :, 3].long() - 1
            features[1:, :, 1] += (view // cols).float() * side
            features[1:, :, 2] += (view % cols).float() * side
        newline = torch.full((4,), _NEWLINE)
        packed = self._pack([features], image_size[None], newline)[0].numpy()
        regions = np.full((len(packed), 4), np.nan)
        base = grid_regions(side, side)
        n_base = side * side if n_views > 1 else len(packed) - 1
        regions[:n_base] = base[:n_base]
        tile = packed[n_base:]
        is_tile = tile[:, 0] > 0.5
        if is_tile.any():
            ys = np.unique(np.round(tile[is_tile, 1], 4))
            xs = np.unique(np.round(tile[is_tile, 2], 4))
            y_rank = np.searchsorted(ys, np.round(tile[is_tile, 1], 4))
            x_rank = np.searchsorted(xs, np.round(tile[is_tile, 2], 4))
            boxes = np.stack(
                [y_rank / len(ys), x_rank / len(xs), (y_rank + 1) / len(ys), (x_rank + 1) / len(xs)], axis=-1
            )
            regions[n_base + np.nonzero(is_tile)[0]] = boxes
        return regions

    def _tile_layout(self, image_size: torch.Tensor, n_views: int) -> tuple[int, int]:
        """(rows, cols) of the high-resolution tiles."""
        from transformers.models.llava_next.modeling_llava_next import (
            get_anyres_image_grid_shape,
        )

        if n_views <= 1:
            return 0, 0
        config = self.model.config
        rows, cols = get_anyres_image_grid_shape(
            image_size, config.image_grid_pinpoints, config.vision_config.image_size
        )
        return int(rows), int(cols)


class LlavaOnevisionAdapter(LlavaNextAdapter):
    """Adapter for ``LlavaOnevisionForConditionalGeneration`` (anyres_max_N: large maps are shrunk)."""

    family = "llava_onevision"
    prompt_template = "<|im_start|>user <image>\n{question}<|im_end|><|im_start|>assistant\n"

    def _pack(
        self, features: list[torch.Tensor], image_sizes: torch.Tensor, newline: torch.Tensor
    ) -> list[torch.Tensor]:
        aspect = getattr(self.model.config, "vision_aspect_ratio", "anyres_max_9")
        packed, _ = self._core.pack_image_features(
            features, image_sizes, image_newline=newline, vision_aspect_ratio=aspect
        )
        return packed
