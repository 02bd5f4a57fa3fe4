"""Question sets over scenes: POPE presence splits, relation questions, caption prompts (the POPE recipe
itself is :mod:`mmdiag.metrics.pope_sampling`, shared by every data source)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mmdiag.metrics.pope_sampling import (  # noqa: F401 - the scene sets' question vocabulary, re-exported
    CAPTION_PROMPT,
    OPPOSITE,
    POPE_SPLITS,
    PRESENCE_TEMPLATE,
    RELATION_TEMPLATE,
    ObjectStatistics,
)
from mmdiag.metrics.pope_sampling import absent_objects as _absent_objects
from mmdiag.scenes.model import Scene
from mmdiag.scenes.vocabulary import OBJECT_TYPES


@dataclass(frozen=True)
class Question:
    """A yes/no question about one scene image, with its exact label."""

    question_id: int
    scene_id: str
    image: str
    text: str
    label: str  # "yes" | "no"
    split: str  # a POPE split, or "relation"
    subject: str
    relation: str | None = None
    other: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def pope_extra(self) -> dict:
        """The fields written after POPE's four official ones."""
        extra = {"scene_id": self.scene_id, "split": self.split, "object": self.subject}
        if self.relation:
            extra.update({"relation": self.relation, "other": self.other})
        return extra


def image_name(scene: Scene) -> str:
    """File name of a scene's image in an exported set."""
    return f"{scene.scene_id.replace('+', '_').replace(':', '-').replace(' ', '-')}.png"


def absent_objects(scene: Scene, split: str, k: int, stats: ObjectStatistics, rng: np.random.Generator) -> list[str]:
    """``k`` absent object types of the scene vocabulary chosen by the split's rule (see :mod:`pope_sampling`)."""
    return _absent_objects(scene.object_names, OBJECT_TYPES, split, k, stats, rng)


def presence_questions(
    scenes: Sequence[Scene],
    split: str = "random",
    per_scene: int = 3,
    seed: int = 0,
    stats: ObjectStatistics | None = None,
) -> list[Question]:
    """POPE questions: up to ``per_scene`` present objects (yes) and as many absent ones (no) per scene."""
    stats = stats or ObjectStatistics.of(scenes)
    questions: list[Question] = []
    for index, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, index, POPE_SPLITS.index(split) if split in POPE_SPLITS else 9])
        present = [str(t) for t in rng.permutation(scene.object_names)][:per_scene]
        absent = absent_objects(scene, split, len(present), stats, rng)
        for name, label in [(p, "yes") for p in present] + [(a, "no") for a in absent]:
            questions.append(
                Question(
                    len(questions),
                    scene.scene_id,
                    image_name(scene),
                    PRESENCE_TEMPLATE.format(object=name),
                    label,
                    split,
                    name,
                )
            )
    return questions


def relation_questions(scenes: Sequence[Scene]) -> list[Question]:
    """For every unambiguous relation: the true statement (yes) and its flipped twin (no)."""
    questions: list[Question] = []
    for scene in scenes:
        for rel in scene.relations():
            for relation, label in ((rel.relation, "yes"), (OPPOSITE[rel.relation], "no")):
                text = RELATION_TEMPLATE.format(subject=rel.subject, relation=relation, object=rel.object)
                questions.append(
                    Question(
                        len(questions),
                        scene.scene_id,
                        image_name(scene),
                        text,
                        label,
                        "relation",
                        rel.subject,
                        relation,
                        rel.object,
                    )
                )
    return questions


def caption_prompts(scenes: Sequence[Scene]) -> list[dict]:
    """A caption prompt per scene with its ground-truth object list (for CHAIR)."""
    return [
        {"scene_id": s.scene_id, "image": image_name(s), "prompt": CAPTION_PROMPT, "objects": s.object_names}
        for s in scenes
    ]
