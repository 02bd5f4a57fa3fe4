"""Where the image tokens of a tiled, pixel-shuffle family sit (InternVL, Idefics3 / SmolVLM).

Such a model cuts an image into *views* (tiles, and a thumbnail or global view), runs each through the tower, and
folds neighbouring patches into one token with a pixel shuffle. The fold is traced by running the model's own
shuffle on features that hold each patch's (row, col): each token's region is the box of the patches it folds,
placed inside its view's frame on the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.types import PreparedBatch

Frame = tuple[float, float, float, float]  # (y0, x0, y1, x1), fractions of the image


class PixelShuffleViews:
    """Mixin (put before the family's adapter base): ``token_regions`` from :meth:`view_frames` and a traced
    :meth:`shuffle`, which the family gives, with its ``vision_grid``."""

    def shuffle(self, coords: torch.Tensor) -> torch.Tensor:
        """The family's pixel shuffle applied to [1, rows, cols, channels] features (returns [1, ..., folded
        channels])."""
        raise NotImplementedError

    def view_frames(self, image: Image.Image) -> list[Frame]:
        """The part of ``image`` each view shows, in the order the processor writes the views' tokens."""
        raise NotImplementedError

    def shuffle_layout(self) -> np.ndarray:
        """[view tokens, folded patches, (row, col)]: the patches each token of a view folds, in channel order."""
        rows, cols = self.vision_grid()  # type: ignore[attr-defined]
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        shuffled = self.shuffle(torch.as_tensor(np.stack([r, c], axis=-1)[None], dtype=torch.float32))
        return shuffled.reshape(-1, shuffled.shape[-1] // 2, 2).numpy().round().astype(int)

    def view_blocks(self) -> np.ndarray:
        """[view tokens, 4] boxes (fractions of a view) of one view's tokens."""
        rows, cols = self.vision_grid()  # type: ignore[attr-defined]
        pairs = self.shuffle_layout()
        low, high = pairs.min(axis=1), pairs.max(axis=1) + 1
        return np.stack([low[:, 0] / rows, low[:, 1] / cols, high[:, 0] / rows, high[:, 1] / cols], axis=-1)

    def token_regions(self, batch: PreparedBatch, images: Sequence[Image.Image]) -> list[np.ndarray] | None:
        blocks = self.view_blocks()
        out = []
        for row, image in enumerate(images):
            views = [
                np.array([y0, x0, y0, x0]) + blocks * np.array([y1 - y0, x1 - x0, y1 - y0, x1 - x0])
                for y0, x0, y1, x1 in self.view_frames(image)
            ]
            regions = np.concatenate(views)
            if len(regions) != sum(end - start for start, end in batch.image_spans[row]):
                return None  # a layout this adapter does not understand: no regions rather than wrong ones
            out.append(regions)
        return out
