"""Rendering scenes with PIL, crisp (no anti-aliasing) so object masks are exact.

Objects never overlap, so re-rendering a scene without an object changes exactly that object's
pixels back to the background, which the edit tests check.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from mmdiag.scenes.model import Scene, SceneObject
from mmdiag.scenes.vocabulary import COLOURS


def background(scene: Scene, resolution: int) -> np.ndarray:
    """The background as an [H, W, 3] uint8 array (plain colour, or a seeded low-contrast texture)."""
    base = np.empty((resolution, resolution, 3), dtype=np.int16)
    base[:] = scene.background_rgb
    if scene.background == "textured":
        rng = np.random.default_rng(scene.texture_seed)
        cells = max(2, resolution // 8)
        coarse = rng.integers(-18, 19, size=(cells, cells, 1))
        texture = np.kron(coarse, np.ones((resolution // cells + 1, resolution // cells + 1, 1), dtype=np.int16))
        base += texture[:resolution, :resolution]
    if scene.flip_h:
        base = base[:, ::-1]
    if scene.flip_v:
        base = base[::-1]
    return np.ascontiguousarray(np.clip(base, 0, 255).astype(np.uint8))


def object_mask(obj: SceneObject, resolution: int) -> np.ndarray:
    """Boolean [H, W] mask of the pixels ``obj`` paints."""
    canvas = Image.new("1", (resolution, resolution), 0)
    _draw(ImageDraw.Draw(canvas), obj, resolution, fill=1)
    return np.array(canvas, dtype=bool)


def render(scene: Scene, resolution: int = 64) -> Image.Image:
    """The scene as an RGB image of ``resolution`` x ``resolution`` pixels."""
    image = Image.fromarray(background(scene, resolution), "RGB")
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        _draw(draw, obj, resolution, fill=COLOURS[obj.colour])
    return image


def _draw(draw: ImageDraw.ImageDraw, obj: SceneObject, resolution: int, fill: object) -> None:
    x0, y0, x1, y1 = (v * resolution for v in obj.bbox())
    box = [round(x0), round(y0), round(x1) - 1, round(y1) - 1]
    if obj.shape == "circle":
        draw.ellipse(box, fill=fill)
    elif obj.shape == "square":
        draw.rectangle(box, fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) / 2, box[1])], fill=fill)
    else:  # pragma: no cover - SceneObject validates shapes
        raise ValueError(obj.shape)
