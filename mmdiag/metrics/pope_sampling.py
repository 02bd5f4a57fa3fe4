"""The POPE recipe (Li et al., EMNLP 2023) over any annotated image set: question templates, object statistics
and the three ways of choosing absent objects.

POPE asks "Is there a <object> in the image?" for present objects (yes) and as many absent ones (no). The
splits differ only in how absent objects are chosen: ``random`` (uniformly among absent types), ``popular``
(the most frequent types in the set), ``adversarial`` (the types that co-occur most with the image's present
objects). Frequencies and co-occurrences are computed over the image set itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import permutations
from typing import Any

import numpy as np

POPE_SPLITS = ("random", "popular", "adversarial")
PRESENCE_TEMPLATE = "Is there a {object} in the image?"
RELATION_TEMPLATE = "Is the {subject} {relation} the {object}?"
CAPTION_PROMPT = "Describe the image."
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


@dataclass(frozen=True)
class ObjectStatistics:
    """How often each object type appears, and how often each ordered pair appears together."""

    frequency: Counter
    cooccurrence: Counter

    @classmethod
    def of(cls, images: Iterable[Any]) -> ObjectStatistics:
        """Over anything with ``object_names`` (scenes, data-source examples)."""
        frequency: Counter = Counter()
        cooccurrence: Counter = Counter()
        for image in images:
            names = image.object_names
            frequency.update(names)
            cooccurrence.update(permutations(names, 2))
        return cls(frequency, cooccurrence)


def absent_objects(
    present: Sequence[str],
    vocabulary: Sequence[str],
    split: str,
    k: int,
    stats: ObjectStatistics,
    rng: np.random.Generator,
) -> list[str]:
    """``k`` object types of ``vocabulary`` not in ``present``, chosen by the split's rule (ties broken by name,
    so it is deterministic; ``random`` draws from ``rng``)."""
    absent = [t for t in vocabulary if t not in present]
    k = min(k, len(absent))
    if split == "random":
        return [str(t) for t in rng.choice(absent, size=k, replace=False)]
    if split == "popular":
        return sorted(absent, key=lambda t: (-stats.frequency[t], t))[:k]
    if split == "adversarial":

        def together(t: str) -> int:
            return sum(stats.cooccurrence[(p, t)] for p in present)

        return sorted(absent, key=lambda t: (-together(t), -stats.frequency[t], t))[:k]
    raise ValueError(f"unknown POPE split '{split}': choose one of {', '.join(POPE_SPLITS)}")
