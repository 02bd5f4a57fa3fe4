"""Question sets over scenes: POPE presence splits, relation questions, caption prompts.

POPE (Li et al., EMNLP 2023) asks "Is there a <object> in the image?" for present objects (yes) and as
many absent ones (no). The splits differ only in how absent objects are chosen:
``random`` (uniformly among absent types), ``popular`` (the most frequent types in the set),
``adversarial`` (the types that co-occur most with the scene's present objects). Frequencies and
co-occurrences are computed over the scene set itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import permutations

import numpy as np

from mmdiag.scenes.model import Scene
from mmdiag.scenes.vocabulary import OBJECT_TYPES

POPE_SPLITS = ("random", "popular", "adversarial")
PRESENCE_TEMPLATE = "Is there a {object} in the image?"
RELATION_TEMPLATE = "Is the {subject} {relation} the {object}?"
CAPTION_PROMPT = "Describe the image."
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


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


@dataclass(frozen=True)
class ObjectStatistics:
    """How often each object type appears, and how often each ordered pair appears together."""

    frequency: Counter
    cooccurrence: Counter

    @classmethod
    def of(cls, scenes: Sequence[Scene]) -> ObjectStatistics:
        frequency: Counter = Counter()
        cooccurrence: Counter = Counter()
        for scene in scenes:
            names = scene.object_names
            frequency.update(names)
            cooccurrence.update(permutations(names, 2))
        return cls(frequency, cooccurrence)


def image_name(scene: Scene) -> str:
    """File name of a scene's image in an exported set."""
    return f"{scene.scene_id.replace('+', '_').replace(':', '-').replace(' ', '-')}.png"


def absent_objects(scene: Scene, split: str, k: int, stats: ObjectStatistics, rng: np.random.Generator) -> list[str]:
    """``k`` absent object types chosen by the split's rule (ties broken by name, so it is deterministic)."""
    absent = [t for t in OBJECT_TYPES if not scene.has(t)]
    k = min(k, len(absent))
    if split == "random":
        return [str(t) for t in rng.choice(absent, size=k, replace=False)]
    if split == "popular":
        return sorted(absent, key=lambda t: (-stats.frequency[t], t))[:k]
    if split == "adversarial":
        def together(t: str) -> int:
            return sum(stats.cooccurrence[(p, t)] for p in scene.object_names)

        return sorted(absent, key=lambda t: (-together(t), -stats.frequency[t], t))[:k]
    raise ValueError(f"unknown POPE split '{split}': choose one of {', '.join(POPE_SPLITS)}")


def presence_questions(scenes: Sequence[Scene], split: str = "random", per_scene: int = 3, seed: int = 0,
                       stats: ObjectStatistics | None = None) -> list[Question]:
    """POPE questions: up to ``per_scene`` present objects (yes) and as many absent ones (no) per scene."""
    stats = stats or ObjectStatistics.of(scenes)
    questions: list[Question] = []
    for index, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, index, POPE_SPLITS.index(split) if split in POPE_SPLITS else 9])
        present = [str(t) for t in rng.permutation(scene.object_names)][:per_scene]
        absent = absent_objects(scene, split, len(present), stats, rng)
        for name, label in [(p, "yes") for p in present] + [(a, "no") for a in absent]:
            questions.append(Question(len(questions), scene.scene_id, image_name(scene),
                                      PRESENCE_TEMPLATE.format(object=name), label, split, name))
    return questions


def relation_questions(scenes: Sequence[Scene]) -> list[Question]:
    """For every unambiguous relation: the true statement (yes) and its flipped twin (no)."""
    questions: list[Question] = []
    for scene in scenes:
        for rel in scene.relations():
            for relation, label in ((rel.relation, "yes"), (OPPOSITE[rel.relation], "no")):
                text = RELATION_TEMPLATE.format(subject=rel.subject, relation=relation, object=rel.object)
                questions.append(Question(len(questions), scene.scene_id, image_name(scene), text, label,
                                          "relation", rel.subject, relation, rel.object))
    return questions


def caption_prompts(scenes: Sequence[Scene]) -> list[dict]:
    """A caption prompt per scene with its ground-truth object list (for CHAIR)."""
    return [{"scene_id": s.scene_id, "image": image_name(s), "prompt": CAPTION_PROMPT, "objects": s.object_names}
            for s in scenes]
