"""Counterfactual edits of synthetic scenes, each with its exact new ground truth.

An edit returns a new :class:`Scene` (the original is untouched) whose id records the edit, so its
ground truth follows from the objects: removing an object re-renders the scene without it (its pixels
return to the background, nothing else changes); mirroring flips the layout and the background
texture, so left/right (or above/below) relations swap. Shapes keep their upright orientation.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mmdiag.scenes.generate import _apart, _place
from mmdiag.scenes.model import Scene, SceneObject
from mmdiag.scenes.vocabulary import COLOURS, SHAPES


class EditError(ValueError):
    """The edit cannot be applied to this scene (missing object, clash of object types, no room)."""


def remove_object(scene: Scene, name: str) -> Scene:
    """The scene without the object ``name`` ("red circle")."""
    if not scene.has(name):
        raise EditError(f"{scene.scene_id} has no {name}")
    return scene.with_objects(tuple(o for o in scene.objects if o.name != name), f"remove:{name}")


def swap_colour(scene: Scene, name: str, colour: str) -> Scene:
    """Recolour object ``name``; the new type must not already be in the scene."""
    return _swap(scene, name, colour=colour)


def swap_shape(scene: Scene, name: str, shape: str) -> Scene:
    """Reshape object ``name`` (same centre and size); the new type must not already be in the scene."""
    return _swap(scene, name, shape=shape)


def _swap(scene: Scene, name: str, colour: str | None = None, shape: str | None = None) -> Scene:
    if not scene.has(name):
        raise EditError(f"{scene.scene_id} has no {name}")
    if colour is not None and colour not in COLOURS or shape is not None and shape not in SHAPES:
        raise EditError(f"unknown colour/shape {colour or shape}")
    old = scene.get(name)
    new = replace(old, colour=colour or old.colour, shape=shape or old.shape)
    if new.name != name and scene.has(new.name):
        raise EditError(f"{scene.scene_id} already has a {new.name}")
    objects = tuple(new if o.name == name else o for o in scene.objects)
    return scene.with_objects(objects, f"swap:{name}->{new.name}")


def insert_object(
    scene: Scene, colour: str, shape: str, size: str = "small", seed: int = 0, at: tuple[float, float] | None = None
) -> Scene:
    """Add an object of a type not yet present, at ``at`` or at a free seeded position."""
    name = f"{colour} {shape}"
    if scene.has(name):
        raise EditError(f"{scene.scene_id} already has a {name}")
    if at is not None:
        obj = SceneObject(colour, shape, size, float(at[0]), float(at[1]))
        if not all(_apart(obj, other) for other in scene.objects) or min(obj.bbox()) < 0 or max(obj.bbox()) > 1:
            raise EditError(f"a {name} at {at} would overlap another object or leave the image")
    else:
        obj = _place(np.random.default_rng([seed, len(scene.objects), 17]), colour, shape, size, list(scene.objects))
        if obj is None:
            raise EditError(f"no free room for a {size} {name} in {scene.scene_id}")
    return scene.with_objects((*scene.objects, obj), f"insert:{name}")


def mirror(scene: Scene, axis: str = "horizontal") -> Scene:
    """Mirror the layout and background left-right ("horizontal") or top-bottom ("vertical")."""
    if axis == "horizontal":
        objects = tuple(replace(o, cx=round(1 - o.cx, 6)) for o in scene.objects)
        return scene.with_objects(objects, "mirror:h", flip_h=not scene.flip_h)
    if axis == "vertical":
        objects = tuple(replace(o, cy=round(1 - o.cy, 6)) for o in scene.objects)
        return scene.with_objects(objects, "mirror:v", flip_v=not scene.flip_v)
    raise EditError(f"unknown mirror axis '{axis}': use horizontal or vertical")
