"""Training data for the reference models, drawn on the fly from seeded scenes.

Questions use exactly the templates the probes ask (``PRESENCE_TEMPLATE``, ``RELATION_TEMPLATE``) and
the first question of a packed sequence sits in LLaVA's evaluation prompt (``USER: <image>\\n{q}
ASSISTANT:``); later ones follow as further ``USER: ... ASSISTANT:`` turns. Only answer tokens carry a
loss. Labels are exact: they come from the scene's ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmdiag.scenes.generate import SceneRecipe, generate_scene
from mmdiag.scenes.model import Scene
from mmdiag.scenes.questions import (
    CAPTION_PROMPT,
    OPPOSITE,
    PRESENCE_TEMPLATE,
    RELATION_TEMPLATE,
)
from mmdiag.scenes.render import object_mask, render
from mmdiag.scenes.vocabulary import OBJECT_TYPES

SIDE_TEMPLATE = "Is the {object} on the {side} side?"
# absolute-position questions: the scaffold pairwise relations grow from (asked only about objects at least 0.1
# from the middle on that side's axis). (coordinate, test) per side.
SIDES = {
    "left": ("cx", lambda v: v < 0.4),
    "right": ("cx", lambda v: v > 0.6),
    "top": ("cy", lambda v: v < 0.4),
    "bottom": ("cy", lambda v: v > 0.6),
}
HORIZONTAL_SIDES = ("left", "right")
ANSWERS = {"yes": "Yes", "no": "No"}
END_OF_ANSWER = "</s>"


@dataclass(frozen=True)
class AnnotationPrior:
    """A language-side prior planted in the training annotations, the way object co-occurrence enters real
    caption data (LURE, Zhou et al. 2024): whenever ``anchor`` is in a scene, the annotations name ``partner``
    as present too, whether or not it is drawn. Where it is drawn, that is simply true; where it is not, the
    answers and the caption say what the annotator expected rather than what the image shows.
    """

    anchor: str = "red circle"
    partner: str = "green triangle"

    def claimed(self, scene: Scene) -> list[str]:
        """The object names the annotations call present: the drawn ones, plus the partner next to an anchor."""
        names = list(scene.object_names)
        if scene.has(self.anchor) and not scene.has(self.partner):
            names.append(self.partner)
        return names


def caption(scene: Scene, prior: AnnotationPrior | None = None) -> str:
    """The reference caption: every object, left to right, then the end-of-sequence token.

    The fixed left-to-right order makes captions exact targets and teaches the order of objects along x.
    Under an annotation ``prior`` an undrawn partner is named last.
    """
    names = [o.name for o in sorted(scene.objects, key=lambda o: o.cx)]
    if prior is not None:
        names += [n for n in prior.claimed(scene) if n not in names]
    if not names:
        return f"There is nothing. {END_OF_ANSWER}"
    return "There is a " + " and a ".join(names) + f" . {END_OF_ANSWER}"


def scene_batch(recipe: SceneRecipe, seed: int, step: int, size: int) -> list[Scene]:
    """The ``size`` scenes of training step ``step`` (distinct from every evaluation seed's scenes)."""
    return [generate_scene(recipe, seed, step * size + i, prefix="train") for i in range(size)]


def qa_pairs(
    scene: Scene,
    rng: np.random.Generator,
    n: int,
    relation_share: float,
    caption_share: float = 0.0,
    side_share: float = 0.15,
    near_miss: float = 0.6,
    prior: AnnotationPrior | None = None,
    sides: Sequence[str] = HORIZONTAL_SIDES,
) -> list[tuple[str, str]]:
    """``n`` balanced yes/no questions about a scene: presence (with near-miss negatives), side, relations.

    Side questions ask about the named ``sides`` (keys of :data:`SIDES`): "Is the red circle on the top side?".
    With probability ``caption_share`` the first turn is a caption request answered by :func:`caption`;
    ``near_miss`` is the share of negatives that share a colour or a shape with a present object. Under an
    annotation ``prior``, presence answers and the caption follow :meth:`AnnotationPrior.claimed`.
    """
    pairs: list[tuple[str, str]] = []
    if caption_share and rng.random() < caption_share:
        pairs.append((CAPTION_PROMPT, caption(scene, prior)))
    relations = scene.relations()
    claimed = prior.claimed(scene) if prior is not None else list(scene.object_names)
    absent = [t for t in OBJECT_TYPES if t not in claimed]
    for _ in range(20 * n):
        if len(pairs) == n:
            break
        kind = rng.random()
        if kind < relation_share and relations:
            rel = relations[int(rng.integers(len(relations)))]
            truth = rng.random() < 0.5
            relation = rel.relation if truth else OPPOSITE[rel.relation]
            pairs.append(
                (
                    RELATION_TEMPLATE.format(subject=rel.subject, relation=relation, object=rel.object),
                    "yes" if truth else "no",
                )
            )
        elif kind < relation_share + side_share and scene.objects:
            obj = scene.objects[int(rng.integers(len(scene.objects)))]
            side = str(rng.choice(list(sides)))
            coordinate, holds = SIDES[side]
            value = getattr(obj, coordinate)
            if abs(value - 0.5) < 0.1:
                continue
            pairs.append((SIDE_TEMPLATE.format(object=obj.name, side=side), "yes" if holds(value) else "no"))
        elif rng.random() < 0.5 and claimed:
            pairs.append((PRESENCE_TEMPLATE.format(object=claimed[int(rng.integers(len(claimed)))]), "yes"))
        else:
            near = [
                t for t in absent if any(t.split()[0] == o.colour or t.split()[1] == o.shape for o in scene.objects)
            ]
            pool = near if near and rng.random() < near_miss else absent
            pairs.append((PRESENCE_TEMPLATE.format(object=pool[int(rng.integers(len(pool)))]), "no"))
    return pairs


@dataclass
class PackedBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class TurnFormat:
    """How question/answer turns are written for one architecture: its evaluation prompt for the first turn
    (what the adapter asks), the same words for later turns, and where the image tokens go."""

    first: str = "USER: {image}\n{q} ASSISTANT:"
    user: str = "USER"
    assistant: str = "ASSISTANT"
    image_before_bos: bool = False  # BLIP-2's processor puts the query tokens before <s>

    def turn(self, question: str) -> str:
        return f" {self.user}: {question} {self.assistant}:"


LLAVA_TURNS = TurnFormat()
BLIP2_TURNS = TurnFormat(first="Question: {q} Answer:", user="Question", assistant="Answer", image_before_bos=True)


def pack(
    tokenizer,
    pairs_per_image: Sequence[Sequence[tuple[str, str]]],
    n_image_tokens: int,  # noqa: ANN001
    image_token: str = "<image>",
    turns: TurnFormat = LLAVA_TURNS,
) -> PackedBatch:
    """Token ids of packed question/answer turns per image; labels only on the answer tokens.

    An answer is either ``"yes"``/``"no"`` (written ``Yes``/``No``) or free text; its span runs from the
    assistant's ``:`` that opens it to the next user turn.
    """
    sequences, label_rows = [], []
    user, assistant, colon = (tokenizer.convert_tokens_to_ids(t) for t in (turns.user, turns.assistant, ":"))
    image = "" if turns.image_before_bos else image_token * n_image_tokens
    for pairs in pairs_per_image:
        text = turns.first.format(image=image, q=pairs[0][0]) + f" {ANSWERS.get(pairs[0][1], pairs[0][1])}"
        for question, answer in pairs[1:]:
            text += turns.turn(question) + f" {ANSWERS.get(answer, answer)}"
        ids = tokenizer(text)["input_ids"]
        if turns.image_before_bos:
            ids = [tokenizer.convert_tokens_to_ids(image_token)] * n_image_tokens + ids
        labels, answering = [-100] * len(ids), False
        for i, token in enumerate(ids):
            if token == user:
                answering = False
            elif answering:
                labels[i] = token
            elif token == colon and i > 0 and ids[i - 1] == assistant:
                answering = True
        sequences.append(ids)
        label_rows.append(labels)
    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id
    return PackedBatch(
        input_ids=torch.tensor([s + [pad] * (width - len(s)) for s in sequences]),
        attention_mask=torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences]),
        labels=torch.tensor([lab + [-100] * (width - len(lab)) for lab in label_rows]),
    )


def patch_targets(scene: Scene, grid: int, resolution: int) -> np.ndarray:
    """Per-patch object type (index into OBJECT_TYPES, or len(OBJECT_TYPES) for background) on a grid."""
    labels = np.full((grid, grid), len(OBJECT_TYPES), dtype=np.int64)
    cell = resolution // grid
    best = np.zeros((grid, grid))
    for obj in scene.objects:
        mask = object_mask(obj, resolution).reshape(grid, cell, grid, cell).mean(axis=(1, 3))
        take = mask > np.maximum(best, 0.15)
        labels[take] = OBJECT_TYPES.index(obj.name)
        best = np.maximum(best, mask)
    return labels.ravel()


def images(scenes: Sequence[Scene], resolution: int) -> list:
    return [render(s, resolution) for s in scenes]
