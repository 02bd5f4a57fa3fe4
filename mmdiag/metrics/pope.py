"""POPE metrics (Li et al., EMNLP 2023) and the answer-parsing rules of the tools in the field.

Yes is the positive class. Every rule named after a peer reproduces that peer's numbers on the same answers
(tests/test_pope_peers.py checks each against golden files made by running the peer's own code, pinned, with
tests/golden/pope/make_goldens.py):

* ``pope``: the official ``evaluate.py`` of RUCAIBox/POPE (commit 3df3ba1);
* ``vcd``: ``experiments/eval/eval_pope.py`` of DAMO-NLP-SG/VCD (commit d6568ff);
* ``lmms-eval``: ``lmms_eval/tasks/pope/utils.py`` of lmms-eval 0.7.3;
* ``vlmevalkit``: ``YOrN_Extraction`` (``vlmeval/dataset/utils/yorn.py``) over ``process_punctuation``
  (``vlmeval/smp/misc.py``), scored as extracted == label and rated by ``POPE_rating``, exact matching (no LLM
  judge), VLMEvalKit commit e8e78f0.

Two things stay mmdiag's own in every rule: ``unparsed`` is a count of its own (an answer the rule cannot read
as yes or no is never counted correct), and a metric whose denominator is zero is ``None`` with the reason in
``undefined`` where the peers print 0. ``yes_ratio`` is the share of *predicted* yes; lmms-eval's
``pope_yes_ratio`` is the share of *ground-truth* yes (0.5 on balanced POPE) and is reported beside it as
``peer_metrics["lmms_eval_yes_ratio_ground_truth"]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

YES, NO, UNKNOWN = "yes", "no", None


def parse_pope(answer: str) -> str | None:
    """Official evaluate.py: first sentence, commas removed, a word "No"/"not"/"no" -> no, else yes."""
    words = answer.split(".")[0].replace(",", "").split(" ")
    return NO if any(w in ("No", "not", "no") for w in words) else YES


def parse_vcd(answer: str, label: str) -> str | None:
    """VCD's script: correct iff the answer contains "yes" (label yes) / "no" (label no) as a substring.

    Returned as the decision that makes the script's verdict hold, so metrics are computed alike.
    """
    text = answer.lower().strip()
    if label == YES:
        return YES if "yes" in text else NO
    return NO if "no" in text else YES


def parse_lmms_eval(answer: str) -> str | None:
    """lmms-eval 0.7.3: exact match of the lower-cased, stripped answer ("Yes." is not yes); else unparsed."""
    text = answer.lower().strip()
    return text if text in (YES, NO) else UNKNOWN


_VLMEVAL_PUNCT = [
    ";",
    r"/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_VLMEVAL_COMMA = re.compile(r"(\d)(,)(\d)")
_VLMEVAL_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")


def vlmevalkit_punctuation(text: str) -> str:
    """VLMEvalKit's ``process_punctuation``: each mark is deleted where it touches a space (or anywhere, once the
    text holds a digit,digit comma) and replaced by a space elsewhere; periods not between digits are deleted.

    ``re.sub``'s fourth argument there is ``count`` (``re.UNICODE`` = 32): at most 32 periods are removed, kept.
    """
    out = text
    for mark in _VLMEVAL_PUNCT:
        if (mark + " " in text or " " + mark in text) or _VLMEVAL_COMMA.search(text) is not None:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _VLMEVAL_PERIOD.sub("", out, re.UNICODE)


def parse_vlmevalkit(answer: str) -> str | None:
    """VLMEvalKit's ``YOrN_Extraction``: lower-case, punctuation processed, split on white space; "yes" without
    "no" -> yes; "no" without "yes" -> no; otherwise unknown (no LLM judge)."""
    words = vlmevalkit_punctuation(answer.lower()).split()
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes and not has_no:
        return YES
    if has_no and not has_yes:
        return NO
    return UNKNOWN


@dataclass(frozen=True)
class PopeRule:
    """A named way to read free-text answers: its parser, and how its reference counts what it cannot read."""

    name: str
    parse: Callable[[str, str], str | None]  # (answer, label) -> "yes" / "no" / None
    reference: str
    recall_counts_unparsed: bool = True  # an unparsed answer to a yes question is a false negative
    peer_metrics: Callable[[Sequence[str | None], Sequence[str]], dict[str, float | None]] | None = None


def _lmms_eval_extras(decisions: Sequence[str | None], labels: Sequence[str]) -> dict[str, float | None]:
    return {
        "lmms_eval_yes_ratio_ground_truth": (sum(label == YES for label in labels) / len(labels)) if labels else None
    }


RULE_SPECS: dict[str, PopeRule] = {
    "pope": PopeRule("pope", lambda answer, label: parse_pope(answer), "RUCAIBox/POPE evaluate.py @3df3ba1"),
    "vcd": PopeRule("vcd", parse_vcd, "DAMO-NLP-SG/VCD experiments/eval/eval_pope.py @d6568ff"),
    "lmms-eval": PopeRule(
        "lmms-eval",
        lambda answer, label: parse_lmms_eval(answer),
        "lmms-eval 0.7.3 lmms_eval/tasks/pope/utils.py",
        recall_counts_unparsed=False,
        peer_metrics=_lmms_eval_extras,
    ),
    "vlmevalkit": PopeRule(
        "vlmevalkit",
        lambda answer, label: parse_vlmevalkit(answer),
        "VLMEvalKit @e8e78f0 YOrN_Extraction + POPE_rating, exact matching",
    ),
}
RULES: dict[str, Callable[..., str | None]] = {name: spec.parse for name, spec in RULE_SPECS.items()}


def parse_answer(answer: str, rule: str = "pope", label: str | None = None) -> str | None:
    """Decision ("yes"/"no") for a free-text answer under a named rule; ``None`` if unparseable."""
    if rule not in RULE_SPECS:
        raise ValueError(f"unknown parsing rule '{rule}': choose one of {', '.join(RULE_SPECS)}")
    return RULE_SPECS[rule].parse(answer, label or YES)


def score_answers(answers: Sequence[str | None], labels: Sequence[str], rule: str = "pope") -> PopeScores:
    """POPE metrics of free-text ``answers`` (``None``: no answer, counted unparsed) under a named rule,
    equal to what the rule's reference code prints on the same answers wherever that is defined."""
    spec = RULE_SPECS[rule]
    decisions = [None if a is None else spec.parse(a, label) for a, label in zip(answers, labels)]
    scores = pope_scores(decisions, labels, recall_counts_unparsed=spec.recall_counts_unparsed)
    if spec.peer_metrics is None:
        return scores
    return PopeScores(**{**asdict(scores), "peer_metrics": spec.peer_metrics(decisions, labels)})


@dataclass(frozen=True)
class PopeScores:
    """Accuracy, precision, recall, F1 and predicted-yes ratio; unparsed answers counted apart.

    ``tp``/``fp``/``tn``/``fn`` count parsed decisions; an unparsed answer is never correct (accuracy), never a
    predicted yes (precision, yes-ratio), and a false negative for recall and F1 when its label is yes, unless
    the rule's reference leaves it out (lmms-eval: ``recall_counts_unparsed`` false). A metric whose denominator
    is zero is ``None`` (never 0) and ``undefined`` says why. F1 is 2·TP / (2·TP + FP + FN), equal to the harmonic
    mean of precision and recall wherever both exist and to the peers' 0 where TP = 0.
    """

    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    yes_ratio: float | None
    n: int
    unparsed: int
    tp: int
    fp: int
    tn: int
    fn: int
    unparsed_yes_label: int = 0
    undefined: dict[str, str] = field(default_factory=dict)
    peer_metrics: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(top: int, bottom: int, name: str, reason: str, undefined: dict[str, str]) -> float | None:
    if bottom:
        return top / bottom
    undefined[name] = reason
    return None


def pope_scores(
    decisions: Sequence[str | None], labels: Sequence[str], recall_counts_unparsed: bool = True
) -> PopeScores:
    """POPE metrics of decisions ("yes"/"no"/None for unparsed) against labels ("yes"/"no")."""
    if len(decisions) != len(labels):
        raise ValueError("decisions and labels differ in length")
    tp = fp = tn = fn = unparsed = unparsed_yes = 0
    for decision, label in zip(decisions, labels):
        if decision is None:
            unparsed += 1
            unparsed_yes += label == YES
        elif decision == YES:
            tp, fp = (tp + 1, fp) if label == YES else (tp, fp + 1)
        else:
            tn, fn = (tn + 1, fn) if label == NO else (tn, fn + 1)
    missed = fn + (unparsed_yes if recall_counts_unparsed else 0)
    n = len(labels)
    undefined: dict[str, str] = {}
    return PopeScores(
        accuracy=_ratio(tp + tn, n, "accuracy", "no questions", undefined),
        precision=_ratio(tp, tp + fp, "precision", "no answer was yes (TP + FP = 0)", undefined),
        recall=_ratio(
            tp,
            tp + missed,
            "recall",
            "no yes question was answered yes or no (TP + FN = 0)"
            if not recall_counts_unparsed
            else "no question has the label yes (TP + FN = 0)",
            undefined,
        ),
        f1=_ratio(2 * tp, 2 * tp + fp + missed, "f1", "no yes label and no yes answer (2TP + FP + FN = 0)", undefined),
        yes_ratio=_ratio(tp + fp, n, "yes_ratio", "no questions", undefined),
        n=n,
        unparsed=unparsed,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        unparsed_yes_label=unparsed_yes,
        undefined=undefined,
    )
