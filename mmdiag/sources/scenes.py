"""The synthetic scenes as a data source: the first implementation of the contract (and the default).

Scenes have exact ground truth by construction and can make every counterfactual of
:data:`~mmdiag.sources.contract.EDIT_KINDS`. This module is the only place the probes' data meets
:mod:`mmdiag.scenes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from mmdiag.errors import ConfigError
from mmdiag.scenes.edits import (
    EditError,
    insert_object,
    mirror,
    remove_object,
    swap_colour,
)
from mmdiag.scenes.generate import Cooccurrence, SceneRecipe, generate_scenes
from mmdiag.scenes.model import Scene, SceneObject
from mmdiag.scenes.model import relations_between as _relations_between
from mmdiag.scenes.render import object_mask, render
from mmdiag.scenes.vocabulary import COLOURS, OBJECT_TYPES, SHAPES, SIZES
from mmdiag.sources.contract import (
    DataRequest,
    Dataset,
    DataSource,
    EditUnavailable,
    Relation,
)


@dataclass(frozen=True)
class SceneExample:
    """A :class:`~mmdiag.scenes.model.Scene` seen through the example contract."""

    scene: Scene

    @property
    def example_id(self) -> str:
        return self.scene.scene_id

    @property
    def objects(self) -> Sequence[SceneObject]:
        return self.scene.objects

    @property
    def object_names(self) -> list[str]:
        return self.scene.object_names

    @property
    def edit(self) -> str | None:
        return self.scene.edit

    def has(self, name: str) -> bool:
        return self.scene.has(name)

    def relations(self) -> list[Relation]:
        return [Relation(r.subject, r.relation, r.object) for r in self.scene.relations()]

    def relations_between(self, subject: SceneObject, other: SceneObject) -> list[str]:
        return _relations_between(subject, other)

    def image(self, resolution: int) -> Image.Image:
        return render(self.scene, resolution)

    def object_mask(self, side: int) -> np.ndarray:
        mask = np.zeros((side, side), dtype=bool)
        for obj in self.scene.objects:
            mask |= object_mask(obj, side)
        return mask

    def without(self, name: str) -> SceneExample:
        return self._edited(remove_object, name)

    def recoloured(self, name: str, colour: str) -> SceneExample:
        return self._edited(swap_colour, name, colour)

    def mirrored(self, axis: str = "horizontal") -> SceneExample:
        return self._edited(mirror, axis)

    def with_object(self, name: str, at: tuple[float, float]) -> SceneExample:
        colour, _, shape = name.partition(" ")
        return self._edited(insert_object, colour, shape, "small", at=at)

    def to_dict(self) -> dict[str, Any]:
        return self.scene.to_dict()

    def _edited(self, edit: Any, *args: Any, **kwargs: Any) -> SceneExample:
        try:
            return SceneExample(edit(self.scene, *args, **kwargs))
        except (EditError, ValueError) as err:
            raise EditUnavailable(str(err)) from err


class SceneSource(DataSource):
    """Seeded synthetic scenes of coloured shapes (``recipe``: object counts, backgrounds, sizes, priors)."""

    name = "scenes"
    edits = frozenset({"remove", "recolour", "mirror", "insert"})

    def __init__(self, recipe: SceneRecipe | None = None) -> None:
        self.recipe = recipe

    def examples(self, n: int, seed: int, request: DataRequest | None = None, id_prefix: str = "") -> Dataset:
        base = self.recipe or SceneRecipe()
        recipe = base
        if request is not None:
            changes: dict[str, Any] = {
                k: v
                for k, v in (("min_objects", request.min_objects), ("max_objects", request.max_objects))
                if v is not None
            }
            if request.cooccurrence is not None:
                changes["cooccurrence"] = Cooccurrence(**dict(request.cooccurrence))
            recipe = replace(base, **changes)
        # the shared set keeps the ids "scene-..."; a probe's own set is named after the probe
        prefix = "scene" if recipe == base or not id_prefix else f"{id_prefix}-scene"
        return Dataset(self, [SceneExample(s) for s in generate_scenes(n, seed, recipe, prefix=prefix)])

    def vocabulary(self) -> list[str]:
        return list(OBJECT_TYPES)

    def check(self, n: int, seed: int, requests: Sequence[tuple[DataRequest | None, str]]) -> None:
        """Nothing to read (the scenes are rendered from the seed); a requested co-occurrence must be one the
        scenes can draw (known object types, probabilities in [0, 1])."""
        for request, prefix in requests:
            if request is not None and request.cooccurrence is not None:
                try:
                    Cooccurrence(**dict(request.cooccurrence))
                except (TypeError, ValueError) as err:
                    raise ConfigError(
                        f"probe '{prefix}' parameter 'cooccurrence': {err}: give anchor, partner, p and anchor_rate"
                    ) from err

    def attribute_values(self, attribute: str) -> list[str]:
        return {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES)}.get(attribute, [])

    def example_from_dict(self, data: Mapping[str, Any]) -> SceneExample:
        return SceneExample(Scene.from_dict(dict(data)))

    def params(self) -> dict[str, Any]:
        return {"recipe": (self.recipe or SceneRecipe()).to_dict()}


def as_data(scenes: Sequence[Scene] | Dataset, source: SceneSource | None = None) -> Dataset:
    """Scenes (e.g. from :func:`~mmdiag.scenes.generate.generate_scenes`) as a probe's :class:`Dataset`; a
    Dataset is returned unchanged."""
    if isinstance(scenes, Dataset):
        return scenes
    return Dataset(source or SceneSource(), [s if isinstance(s, SceneExample) else SceneExample(s) for s in scenes])
