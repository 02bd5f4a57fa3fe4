"""Ground-truth object masks on any patch grid (for attention-on-object measures)."""

from __future__ import annotations

import numpy as np

from mmdiag.scenes.model import Scene
from mmdiag.scenes.render import object_mask

SUBSAMPLE = 8  # mask pixels per patch side


def object_patch_mask(scene: Scene, grid: tuple[int, int]) -> np.ndarray:
    """Boolean [rows, cols]: the patches (of a square image) that any object's pixels touch."""
    rows, cols = grid
    side = max(rows, cols) * SUBSAMPLE
    mask = np.zeros((side, side), dtype=bool)
    for obj in scene.objects:
        mask |= object_mask(obj, side)
    ys = np.linspace(0, side, rows + 1).astype(int)
    xs = np.linspace(0, side, cols + 1).astype(int)
    return np.array([[mask[ys[r]:ys[r + 1], xs[c]:xs[c + 1]].any() for c in range(cols)] for r in range(rows)])
