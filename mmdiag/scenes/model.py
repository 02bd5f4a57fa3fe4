"""Scenes as data: objects with exact geometry, and the ground truth derived from them.

Geometry is in normalised image coordinates (0..1, y downwards), so a scene renders at any
resolution and its ground truth (bbox, centre, grid cell, pairwise relations) is exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mmdiag.scenes.vocabulary import COLOURS, SHAPES, SIZES

RELATION_MARGIN = 0.08  # centres closer than this along an axis define no relation on that axis


@dataclass(frozen=True)
class SceneObject:
    """One object: a coloured shape of a size class centred at (cx, cy)."""

    colour: str
    shape: str
    size: str
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if self.colour not in COLOURS or self.shape not in SHAPES or self.size not in SIZES:
            raise ValueError(f"unknown object {self.colour}/{self.shape}/{self.size}")

    @property
    def name(self) -> str:
        """The object type as the vocabulary spells it: "red circle"."""
        return f"{self.colour} {self.shape}"

    @property
    def attributes(self) -> dict[str, str]:
        """What the object is besides where: colour, shape and size class."""
        return {"colour": self.colour, "shape": self.shape, "size": self.size}

    @property
    def extent(self) -> float:
        return SIZES[self.size]

    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in normalised coordinates."""
        h = self.extent / 2
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)

    def grid_cell(self, rows: int = 3, cols: int = 3) -> tuple[int, int]:
        """(row, col) of the centre on a rows x cols grid."""
        return min(int(self.cy * rows), rows - 1), min(int(self.cx * cols), cols - 1)


@dataclass(frozen=True)
class Relation:
    """``subject relation object``, e.g. "red circle" "left of" "blue square"."""

    subject: str
    relation: str
    object: str

    def text(self) -> str:
        return f"{self.subject} {self.relation} {self.object}"


def relations_between(a: SceneObject, b: SceneObject, margin: float = RELATION_MARGIN) -> list[str]:
    """The relations that hold for ``a`` with respect to ``b`` (unambiguous ones only)."""
    found = []
    if b.cx - a.cx > margin:
        found.append("left of")
    elif a.cx - b.cx > margin:
        found.append("right of")
    if b.cy - a.cy > margin:
        found.append("above")
    elif a.cy - b.cy > margin:
        found.append("below")
    return found


@dataclass(frozen=True)
class Scene:
    """A scene: its id, objects, background, and the seed of its background texture."""

    scene_id: str
    objects: tuple[SceneObject, ...]
    background: str = "plain"  # "plain" | "textured"
    background_rgb: tuple[int, int, int] = (235, 235, 235)
    texture_seed: int = 0
    flip_h: bool = False  # the background texture is mirrored (set by the mirror edit)
    flip_v: bool = False
    edit: str | None = None  # which counterfactual edit produced this scene, if any
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]

    def has(self, name: str) -> bool:
        return name in self.object_names

    def get(self, name: str) -> SceneObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(name)

    def relations(self, margin: float = RELATION_MARGIN) -> list[Relation]:
        """Every unambiguous pairwise relation between distinct objects."""
        return [
            Relation(a.name, rel, b.name)
            for a in self.objects
            for b in self.objects
            if a is not b
            for rel in relations_between(a, b, margin)
        ]

    def with_objects(self, objects: tuple[SceneObject, ...], edit: str, **changes: Any) -> Scene:
        """A counterfactual copy: new objects (and fields), the edit recorded in its id."""
        edits = f"{self.edit}+{edit}" if self.edit else edit
        return replace(self, objects=objects, edit=edits, scene_id=f"{self.scene_id}+{edit}", **changes)

    def ground_truth(self, resolution: int, grid: int = 3) -> dict[str, Any]:
        """Objects with class, colour, pixel bbox, centre and grid cell; relations as triples."""
        objects = []
        for o in self.objects:
            x0, y0, x1, y1 = o.bbox()
            objects.append(
                {
                    "name": o.name,
                    "colour": o.colour,
                    "shape": o.shape,
                    "size": o.size,
                    "bbox": [round(v * resolution, 2) for v in (x0, y0, x1, y1)],
                    "centre": [round(o.cx * resolution, 2), round(o.cy * resolution, 2)],
                    "grid_cell": list(o.grid_cell(grid, grid)),
                }
            )
        return {"objects": objects, "relations": [[r.subject, r.relation, r.object] for r in self.relations()]}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["objects"] = [asdict(o) for o in self.objects]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        fields = dict(data)
        fields["objects"] = tuple(SceneObject(**o) for o in data["objects"])
        fields["background_rgb"] = tuple(data.get("background_rgb", (235, 235, 235)))
        return cls(**fields)
