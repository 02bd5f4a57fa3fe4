"""What the hallucination probe asks about one scene: POPE questions per split, counterfactual pairs, blinds.

Everything here is pure bookkeeping over data-source examples with exact ground truth (the contract of
:mod:`mmdiag.sources.contract`), so it is tested without a model. An edit the source cannot make is skipped.

- POPE (Li et al., EMNLP 2023): the present objects (label yes) and, per split, as many absent ones (label no)
  chosen at random, among the most frequent types, or among the types that co-occur most with the scene's
  objects (statistics over the whole scene set). A question shared by several splits is asked once.
- Counterfactual pairs, each with the answer before and after the edit known exactly:
  ``remove`` (an object erased: "Is there a X?" yes -> no), ``swap`` (its colour changed: the old name
  yes -> no), ``mirror`` (the scene flipped left-right: "Is A left of B?" yes -> no), and
  ``remove_cooccurring`` (the scene's pair of objects seen together most often across the set, each erased in
  turn while the other stays: a co-occurrence prior learned in either direction survives the evidence here).
- Relation questions (correctness, not only reaction): for up to ``per_axis`` pairs of objects per axis with an
  unambiguous left/right (or above/below) relation, the true statement ("Is A left of B?" yes) and its converse
  ("Is A right of B?" no), so the answers are balanced and a yes-sayer, a no-sayer and a model that mirrors every
  relation all score 0.5 or less.
- Blind inputs: blank grey, the image's mean colour, Gaussian noise, and VCD's diffusion noise on the pixels.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from mmdiag.metrics.pope_sampling import (
    POPE_SPLITS,
    PRESENCE_TEMPLATE,
    RELATION_TEMPLATE,
    ObjectStatistics,
    absent_objects,
)
from mmdiag.sources.contract import EditUnavailable, Example

BLINDS = ("blank", "mean_colour", "noise", "vcd_noise")
AXES = {"horizontal": ("left of", "right of"), "vertical": ("above", "below")}
CONVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
RELATIONS_PER_AXIS = 2  # object pairs per axis and scene (two questions each: the statement and its converse)
EDITS = ("remove", "swap", "mirror", "remove_cooccurring")
YES, NO = "yes", "no"


@dataclass(frozen=True)
class PopeItem:
    """One presence question and the splits it belongs to."""

    object: str
    label: str
    splits: tuple[str, ...]
    question: str | None = None  # asked verbatim (a POPE file's line) instead of the template

    @property
    def text(self) -> str:
        return self.question if self.question is not None else PRESENCE_TEMPLATE.format(object=self.object)


@dataclass(frozen=True)
class CounterfactualItem:
    """A question asked on a scene and on its edited twin, with the exact answer on each."""

    edit: str
    question: str
    before: str
    after: str
    scene_after: Example
    subject: str  # the object the question is about


def pope_items(
    scene: Example, index: int, stats: ObjectStatistics, seed: int, per_scene: int, vocabulary: list[str]
) -> list[PopeItem]:
    """Up to ``per_scene`` present objects, and as many absent ones (of ``vocabulary``) per split, merged across
    splits; an example that brings its own questions (``pope_questions``, a POPE file) is asked those, verbatim,
    with a question shared by several splits asked once."""
    fixed = getattr(scene, "pope_questions", None)
    if fixed:
        merged: dict[tuple[str, str, str], list[str]] = {}
        for q in fixed:
            merged.setdefault((q.object, q.label, q.text), []).append(q.split)
        return [
            PopeItem(obj, label, tuple(dict.fromkeys(splits)), text) for (obj, label, text), splits in merged.items()
        ]
    rng = np.random.default_rng([seed, index, 3])
    # several instances of one category (photos) are one question
    present = [str(t) for t in rng.permutation(list(dict.fromkeys(scene.object_names)))][:per_scene]
    items: dict[tuple[str, str], list[str]] = {(name, YES): list(POPE_SPLITS) for name in present}
    for split in POPE_SPLITS:
        split_rng = np.random.default_rng([seed, index, POPE_SPLITS.index(split)])
        for name in absent_objects(scene.object_names, vocabulary, split, len(present), stats, split_rng):
            items.setdefault((name, NO), []).append(split)
    return [PopeItem(name, label, tuple(splits)) for (name, label), splits in items.items()]


@dataclass(frozen=True)
class RelationItem:
    """A relation statement about the unedited scene with its exact answer."""

    question: str
    label: str
    axis: str


def relation_items(scene: Example, index: int, seed: int, per_axis: int = RELATIONS_PER_AXIS) -> list[RelationItem]:
    """Balanced relation questions: per axis, up to ``per_axis`` object pairs (seeded choice) each asked as the
    statement that holds (yes) and its converse (no). Pairs of one object type (photos with two cups) are left out:
    the question could not say which is meant."""
    names = scene.object_names
    relations = [r for r in scene.relations() if names.count(r.subject) == 1 and names.count(r.object) == 1]
    rng = np.random.default_rng([seed, index, 17])
    items = []
    for axis, kinds in AXES.items():
        seen, pairs = set(), []
        for r in relations:  # each unordered pair once, stated from its first subject
            if r.relation in kinds and frozenset((r.subject, r.object)) not in seen:
                seen.add(frozenset((r.subject, r.object)))
                pairs.append(r)
        for k in sorted(rng.permutation(len(pairs))[:per_axis].tolist()):
            r = pairs[k]
            for relation, label in ((r.relation, YES), (CONVERSE[r.relation], NO)):
                items.append(
                    RelationItem(
                        RELATION_TEMPLATE.format(subject=r.subject, relation=relation, object=r.object), label, axis
                    )
                )
    return items


def counterfactual_items(
    scene: Example,
    index: int,
    seed: int,
    stats: ObjectStatistics | None = None,
    colours: list[str] | None = None,
    edits: frozenset[str] = frozenset({"remove", "recolour", "mirror"}),
) -> list[CounterfactualItem]:
    """One pair per edit kind the example allows and its source can make (``edits``): ``remove``, ``swap``
    (recolour into one of ``colours`` that makes a new object), ``mirror`` (needs a left/right relation) and
    ``remove_cooccurring`` (needs two objects and the set's ``stats``)."""
    if not scene.objects:
        return []
    rng = np.random.default_rng([seed, index, 11])
    target = scene.objects[int(rng.integers(len(scene.objects)))]
    items = []
    if "remove" in edits:
        with contextlib.suppress(EditUnavailable):  # e.g. an object filling the whole photo
            items.append(
                CounterfactualItem(
                    "remove",
                    PRESENCE_TEMPLATE.format(object=target.name),
                    YES,
                    NO,
                    scene.without(target.name),
                    target.name,
                )
            )
    current = target.attributes.get("colour")
    swaps = []
    if "recolour" in edits and current is not None:
        for colour in colours or []:
            if colour != current:
                with contextlib.suppress(EditUnavailable):
                    swaps.append(scene.recoloured(target.name, colour))
    if swaps:
        items.append(
            CounterfactualItem(
                "swap",
                PRESENCE_TEMPLATE.format(object=target.name),
                YES,
                NO,
                swaps[int(rng.integers(len(swaps)))],
                target.name,
            )
        )
    horizontal = [r for r in scene.relations() if r.relation in ("left of", "right of")]
    if horizontal and "mirror" in edits:
        rel = horizontal[int(rng.integers(len(horizontal)))]
        text = RELATION_TEMPLATE.format(subject=rel.subject, relation=rel.relation, object=rel.object)
        with contextlib.suppress(EditUnavailable):
            items.append(CounterfactualItem("mirror", text, YES, NO, scene.mirrored("horizontal"), rel.subject))
    if stats is not None and len(set(scene.object_names)) >= 2 and "remove" in edits:
        for name in most_cooccurring_pair(scene, stats):
            with contextlib.suppress(EditUnavailable):
                items.append(
                    CounterfactualItem(
                        "remove_cooccurring", PRESENCE_TEMPLATE.format(object=name), YES, NO, scene.without(name), name
                    )
                )
    return items


def most_cooccurring_pair(scene: Example, stats: ObjectStatistics) -> tuple[str, str]:
    """The two present objects seen together most often across the set (ties broken by name)."""
    names = sorted(set(scene.object_names))
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    return sorted(pairs, key=lambda ab: (-stats.cooccurrence[ab], ab))[0]
