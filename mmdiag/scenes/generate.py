"""Seeded scene generation, optionally with a planted co-occurrence prior.

Scene ``i`` of a set is drawn from ``numpy.random.default_rng([seed, i])``: any scene can be rebuilt
alone from (recipe, seed, index), which is what per-example records and data-parallel splits rely on.
Objects in one scene are of distinct types (colour + shape), placed without overlap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mmdiag.scenes.model import Scene, SceneObject
from mmdiag.scenes.vocabulary import COLOURS, OBJECT_TYPES, SHAPES, SIZE_WORDS, SIZES

PLACEMENT_GAP = 0.04  # minimum empty border between objects (normalised)
BORDER = 0.03


@dataclass(frozen=True)
class Cooccurrence:
    """Plant a prior: when ``anchor`` is in a scene, ``partner`` is too with probability ``p``.

    ``anchor_rate`` is the share of scenes that contain the anchor at all. ``partner_size`` (a size name)
    draws every partner at that size, weakening its visual evidence (a prior only shows where seeing is hard).
    """

    anchor: str = "red circle"
    partner: str = "green triangle"
    p: float = 0.9
    anchor_rate: float = 0.5
    partner_size: str | None = None

    def __post_init__(self) -> None:
        for name in (self.anchor, self.partner):
            if name not in OBJECT_TYPES:
                raise ValueError(f"unknown object type '{name}': choose from {', '.join(OBJECT_TYPES)}")
        if self.partner_size is not None and self.partner_size not in SIZES:
            raise ValueError(f"unknown size '{self.partner_size}': choose one of {', '.join(SIZES)}")
        if self.anchor == self.partner or not (0 <= self.p <= 1 and 0 <= self.anchor_rate <= 1):
            raise ValueError("anchor and partner must differ; p and anchor_rate must lie in [0, 1]")


@dataclass(frozen=True)
class SceneRecipe:
    """Everything that determines a scene set besides its seed."""

    min_objects: int = 1
    max_objects: int = 3
    background: str = "plain"  # "plain" | "textured" | "mixed"
    sizes: tuple[str, ...] = SIZE_WORDS
    cooccurrence: Cooccurrence | None = None
    types: tuple[str, ...] = field(default=OBJECT_TYPES)

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects <= 4:
            raise ValueError("need 1 <= min_objects <= max_objects <= 4")
        if self.background not in ("plain", "textured", "mixed"):
            raise ValueError("background must be plain, textured or mixed")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SceneRecipe:
        data = dict(data)
        if data.get("cooccurrence"):
            data["cooccurrence"] = Cooccurrence(**data["cooccurrence"])
        for key in ("sizes", "types"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def generate_scene(recipe: SceneRecipe, seed: int, index: int, prefix: str = "scene") -> Scene:
    """Scene ``index`` of the set (recipe, seed); the same arguments always give the same scene."""
    rng = np.random.default_rng([seed, index])
    n = int(rng.integers(recipe.min_objects, recipe.max_objects + 1))
    names = _choose_types(rng, recipe, n)
    objects: list[SceneObject] = []
    for name in names:
        colour, shape = name.split(" ")
        size = str(rng.choice(recipe.sizes))
        if recipe.cooccurrence is not None and recipe.cooccurrence.partner_size and name == recipe.cooccurrence.partner:
            size = recipe.cooccurrence.partner_size
        obj = _place(rng, colour, shape, size, objects)
        if obj is not None:
            objects.append(obj)
    background = recipe.background if recipe.background != "mixed" else str(rng.choice(["plain", "textured"]))
    grey = int(rng.integers(215, 246))
    return Scene(
        scene_id=f"{prefix}-{seed}-{index:05d}",
        objects=tuple(objects),
        background=background,
        background_rgb=(grey, grey, grey),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def generate_scenes(n: int, seed: int = 0, recipe: SceneRecipe | None = None, prefix: str = "scene") -> list[Scene]:
    """``n`` scenes of a set."""
    recipe = recipe or SceneRecipe()
    return [generate_scene(recipe, seed, i, prefix) for i in range(n)]


def _choose_types(rng: np.random.Generator, recipe: SceneRecipe, n: int) -> list[str]:
    pool = [t for t in recipe.types if t in OBJECT_TYPES]
    prior = recipe.cooccurrence
    chosen: list[str] = []
    if prior is not None:
        pool = [t for t in pool if t not in (prior.anchor, prior.partner)]
        if rng.random() < prior.anchor_rate:
            chosen.append(prior.anchor)
            if rng.random() < prior.p and n >= 2:
                chosen.append(prior.partner)
    rest = [str(t) for t in rng.permutation(pool)]
    chosen += rest[: max(0, n - len(chosen))]
    return [str(t) for t in rng.permutation(chosen)] if len(chosen) > 1 else chosen


def _place(
    rng: np.random.Generator, colour: str, shape: str, size: str, placed: list[SceneObject]
) -> SceneObject | None:
    half = SIZES[size] / 2
    for _ in range(200):
        cx, cy = rng.uniform(BORDER + half, 1 - BORDER - half, size=2)
        candidate = SceneObject(colour, shape, size, round(float(cx), 4), round(float(cy), 4))
        if all(_apart(candidate, other) for other in placed):
            return candidate
    return None


def _apart(a: SceneObject, b: SceneObject) -> bool:
    ax0, ay0, ax1, ay1 = a.bbox()
    bx0, by0, bx1, by1 = b.bbox()
    return (
        ax1 + PLACEMENT_GAP <= bx0
        or bx1 + PLACEMENT_GAP <= ax0
        or ay1 + PLACEMENT_GAP <= by0
        or by1 + PLACEMENT_GAP <= ay0
    )


__all__ = ["COLOURS", "SHAPES", "Cooccurrence", "SceneRecipe", "generate_scene", "generate_scenes"]
