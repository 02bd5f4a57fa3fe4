"""A second data source, written the way a third party would: one file, no mmdiag.scenes import.

Coloured boxes pasted on crops of a real photograph (scikit-learn's ``china.jpg``), with exact boxes, masks and
relations. It can remove an object and mirror the image, but not recolour or insert one — so the probes must
say what they cannot measure on it instead of failing or guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from sklearn.datasets import load_sample_image

from mmdiag.sources.contract import DataRequest, Dataset, DataSource, EditUnavailable, Relation

COLOURS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (40, 170, 60)}
NAMES = [f"{c} square" for c in COLOURS]  # words the tiny test tokenizers know
SIDE = 0.2


@dataclass(frozen=True)
class Box:
    name: str
    cx: float
    cy: float

    @property
    def attributes(self) -> Mapping[str, str]:
        return {}  # this source does not annotate attributes: colour/shape probes must say so

    def bbox(self) -> tuple[float, float, float, float]:
        return (self.cx - SIDE / 2, self.cy - SIDE / 2, self.cx + SIDE / 2, self.cy + SIDE / 2)

    def grid_cell(self, rows: int = 3, cols: int = 3) -> tuple[int, int]:
        return min(int(self.cy * rows), rows - 1), min(int(self.cx * cols), cols - 1)


@dataclass(frozen=True)
class PhotoBoxes:
    example_id: str
    objects: tuple[Box, ...]
    crop: tuple[int, int]  # top-left of a 256 x 256 crop of the photograph
    flipped: bool = False
    edit: str | None = None
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]

    def has(self, name: str) -> bool:
        return name in self.object_names

    def relations_between(self, subject: Box, other: Box) -> list[str]:
        out = []
        if other.cx - subject.cx > 0.08:
            out.append("left of")
        elif subject.cx - other.cx > 0.08:
            out.append("right of")
        if other.cy - subject.cy > 0.08:
            out.append("above")
        elif subject.cy - other.cy > 0.08:
            out.append("below")
        return out

    def relations(self) -> list[Relation]:
        return [
            Relation(a.name, r, b.name)
            for a in self.objects
            for b in self.objects
            if a is not b
            for r in self.relations_between(a, b)
        ]

    def image(self, resolution: int) -> Image.Image:
        photo = load_sample_image("china.jpg")
        y, x = self.crop
        img = Image.fromarray(photo[y : y + 256, x : x + 256]).resize((resolution, resolution))
        if self.flipped:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        draw = ImageDraw.Draw(img)
        for box in self.objects:
            draw.rectangle(self._pixels(box, resolution), fill=COLOURS[box.name.split()[0]])
        return img

    def object_mask(self, side: int) -> np.ndarray:
        canvas = Image.new("1", (side, side), 0)
        draw = ImageDraw.Draw(canvas)
        for box in self.objects:
            draw.rectangle(self._pixels(box, side), fill=1)
        return np.array(canvas, dtype=bool)

    @staticmethod
    def _pixels(box: Box, resolution: int) -> list[int]:
        x0, y0, x1, y1 = (v * resolution for v in box.bbox())
        return [round(x0), round(y0), round(x1) - 1, round(y1) - 1]

    def without(self, name: str) -> PhotoBoxes:
        if not self.has(name):
            raise EditUnavailable(f"{self.example_id} has no {name}")
        return replace(
            self,
            objects=tuple(o for o in self.objects if o.name != name),
            edit="remove",
            example_id=f"{self.example_id}+remove:{name}",
        )

    def mirrored(self, axis: str = "horizontal") -> PhotoBoxes:
        if axis != "horizontal":
            raise EditUnavailable("only left-right mirroring")
        return replace(
            self,
            objects=tuple(replace(o, cx=round(1 - o.cx, 6)) for o in self.objects),
            flipped=not self.flipped,
            edit="mirror",
            example_id=f"{self.example_id}+mirror",
        )

    def recoloured(self, name: str, colour: str) -> PhotoBoxes:
        raise EditUnavailable("this source cannot recolour a box")

    def with_object(self, name: str, at: tuple[float, float]) -> PhotoBoxes:
        raise EditUnavailable("this source cannot insert a box")

    def to_dict(self) -> dict[str, Any]:
        return {
            "example_id": self.example_id,
            "objects": [vars(o) for o in self.objects],
            "crop": list(self.crop),
            "flipped": self.flipped,
            "edit": self.edit,
        }


class PhotoBoxSource(DataSource):
    name = "photo-boxes"
    edits = frozenset({"remove", "mirror"})

    def __init__(self, max_boxes: int = 2) -> None:
        self.max_boxes = max_boxes

    def examples(self, n: int, seed: int, request: DataRequest | None = None, id_prefix: str = "") -> Dataset:
        low = request.min_objects if request and request.min_objects else 1
        high = request.max_objects if request and request.max_objects else self.max_boxes
        out: list[PhotoBoxes] = []
        for index in range(n):
            rng = np.random.default_rng([seed, index])
            count = int(rng.integers(low, high + 1))
            names = [NAMES[i] for i in rng.permutation(len(NAMES))[:count]]
            xs = rng.permutation([0.2, 0.5, 0.8])[:count]
            boxes = tuple(Box(name, float(x), float(rng.uniform(0.2, 0.8))) for name, x in zip(names, xs))
            crop = (int(rng.integers(0, 170)), int(rng.integers(0, 380)))
            out.append(PhotoBoxes(f"photo-{seed}-{index:04d}", boxes, crop))
        return Dataset(self, out)

    def vocabulary(self) -> list[str]:
        return list(NAMES)

    def example_from_dict(self, data: Mapping[str, Any]) -> PhotoBoxes:
        return PhotoBoxes(
            data["example_id"],
            tuple(Box(**o) for o in data["objects"]),
            tuple(data["crop"]),
            data["flipped"],
            data["edit"],
        )
