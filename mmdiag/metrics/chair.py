"""CHAIR (Rohrbach et al., EMNLP 2018): object hallucination in generated captions.

CHAIR_i = hallucinated object mentions / all object mentions; CHAIR_s = captions with at least one
hallucinated object / all captions; recall = |ground truth ∩ mentioned| / |ground truth|. Mentions are
found with a synonym table mapping surface words (longest phrase first) to canonical objects: for the
synthetic scenes every ``<colour> <shape>`` pair (:meth:`SynonymTable.of_names` over a source's vocabulary) (a
shape named without a colour maps to no object, since it
cannot be checked). This is the scene-vocabulary CHAIR; CHAIR on COCO, with the original's rules and numbers,
is :mod:`mmdiag.metrics.coco_chair`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field


@dataclass
class ChairScores:
    chair_i: float | None
    chair_s: float | None
    recall: float | None
    mentions: int
    hallucinated: int
    captions: int
    per_caption: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class SynonymTable:
    """Surface phrase -> canonical object, matched longest phrase first on lower-cased word boundaries."""

    def __init__(self, synonyms: dict[str, str]) -> None:
        self.synonyms = {k.lower(): v for k, v in synonyms.items()}
        phrases = sorted(self.synonyms, key=lambda p: (-len(p.split()), p))
        self._pattern = re.compile(r"\b(" + "|".join(re.escape(p) for p in phrases) + r")\b") if phrases else None

    @classmethod
    def of_names(cls, names: Iterable[str]) -> SynonymTable:
        """A closed vocabulary of object names, each also in its "s" plural ("red circle", "red circles"; the
        synthetic scenes' table. "circle that is red" is not parsed)."""
        table = {}
        for name in names:
            table[name] = name
            table[name + "s"] = name
        return cls(table)

    def mentions(self, caption: str) -> list[str]:
        """Canonical objects mentioned in ``caption``, in order, each once."""
        if self._pattern is None:
            return []
        found: list[str] = []
        for match in self._pattern.finditer(caption.lower()):
            canonical = self.synonyms[match.group(1)]
            if canonical not in found:
                found.append(canonical)
        return found


def chair(captions: Sequence[str], truths: Sequence[Iterable[str]], table: SynonymTable) -> ChairScores:
    """CHAIR_i, CHAIR_s and recall of ``captions`` against each image's ground-truth objects."""
    if len(captions) != len(truths):
        raise ValueError("captions and ground-truth lists differ in length")
    mentions = hallucinated = bad_captions = hits = total_truth = 0
    rows = []
    for caption, truth in zip(captions, truths):
        truth_set = set(truth)
        said = table.mentions(caption)
        wrong = [m for m in said if m not in truth_set]
        mentions += len(said)
        hallucinated += len(wrong)
        bad_captions += bool(wrong)
        hits += len(truth_set & set(said))
        total_truth += len(truth_set)
        rows.append({"mentioned": said, "hallucinated": wrong})
    n = len(captions)
    return ChairScores(
        chair_i=hallucinated / mentions if mentions else None,
        chair_s=bad_captions / n if n else None,
        recall=hits / total_truth if total_truth else None,
        mentions=mentions,
        hallucinated=hallucinated,
        captions=n,
        per_caption=rows,
    )
