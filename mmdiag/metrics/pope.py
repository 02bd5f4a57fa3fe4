"""POPE metrics (Li et al., EMNLP 2023) and the answer-parsing rules of the tools in the field.

Yes is the positive class. ``yes_ratio`` is the share of *predicted* yes (lmms-eval's aggregate counts
ground-truth yes instead, which is always 0.5 on balanced POPE; that is not copied here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

YES, NO, UNKNOWN = "yes", "no", None


def parse_pope(answer: str) -> str | None:
    """Official evaluate.py: first sentence, commas removed, a word "No"/"not"/"no" -> no, else yes."""
    words = answer.split(".")[0].replace(",", "").split(" ")
    return NO if any(w in ("No", "not", "no") for w in words) else YES


def parse_vcd(answer: str, label: str) -> str | None:
    """VCD's script: correct iff the answer contains "yes" (label yes) / "no" (label no) as a substring.

    Returned as the decision that makes the script's verdict hold, so metrics are computed alike.
    """
    text = answer.lower()
    if label == YES:
        return YES if "yes" in text else NO
    return NO if "no" in text else YES


def parse_lmms_eval(answer: str) -> str | None:
    """lmms-eval: exact match of the lower-cased, stripped answer; anything else is unparsed."""
    text = answer.strip().lower().rstrip(".")
    return text if text in (YES, NO) else UNKNOWN


def parse_vlmevalkit(answer: str) -> str | None:
    """VLMEvalKit: "yes" without "no" -> yes; "no" without "yes" -> no; otherwise unknown."""
    words = set(answer.lower().replace(",", " ").replace(".", " ").replace("!", " ").split())
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes and not has_no:
        return YES
    if has_no and not has_yes:
        return NO
    return UNKNOWN


RULES: dict[str, Callable[..., str | None]] = {
    "pope": parse_pope,
    "vcd": parse_vcd,
    "lmms-eval": parse_lmms_eval,
    "vlmevalkit": parse_vlmevalkit,
}


def parse_answer(answer: str, rule: str = "pope", label: str | None = None) -> str | None:
    """Decision ("yes"/"no") for a free-text answer under a named rule; ``None`` if unparseable."""
    if rule not in RULES:
        raise ValueError(f"unknown parsing rule '{rule}': choose one of {', '.join(RULES)}")
    if rule == "vcd":
        return parse_vcd(answer, label or YES)
    return RULES[rule](answer)


@dataclass(frozen=True)
class PopeScores:
    """Accuracy, precision, recall, F1 and predicted-yes ratio; unparsed answers counted apart.

    Unparsed answers count as wrong and as predicted "no" (they are not a yes), as VLMEvalKit
    treats unknowns without a judge.
    """

    accuracy: float
    precision: float
    recall: float
    f1: float
    yes_ratio: float
    n: int
    unparsed: int
    tp: int
    fp: int
    tn: int
    fn: int

    def to_dict(self) -> dict:
        return asdict(self)


def pope_scores(decisions: Sequence[str | None], labels: Sequence[str]) -> PopeScores:
    """POPE metrics of decisions ("yes"/"no"/None) against labels ("yes"/"no")."""
    if len(decisions) != len(labels):
        raise ValueError("decisions and labels differ in length")
    tp = fp = tn = fn = unparsed = 0
    for decision, label in zip(decisions, labels):
        if decision is None:
            unparsed += 1
            decision = NO
        if decision == YES and label == YES:
            tp += 1
        elif decision == YES:
            fp += 1
        elif label == NO:
            tn += 1
        else:
            fn += 1
    n = len(labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PopeScores(
        accuracy=(tp + tn) / n if n else 0.0,
        precision=precision,
        recall=recall,
        f1=f1,
        yes_ratio=(tp + fp) / n if n else 0.0,
        n=n,
        unparsed=unparsed,
        tp=tp, fp=fp, tn=tn, fn=fn,
    )
