"""``mmdiag pope``: score answers produced by any system against POPE question files, no model loaded.

Answers are JSONL with ``question_id`` and the answer text under ``answer`` (or ``text``, as LLaVA's
scripts write it). Give one answers file for all question files (ids unique across them) or one per
question file, in the same order. Results are keyed by each question file's stem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdiag.errors import MmdiagError
from mmdiag.metrics.pope import RULE_SPECS, RULES, score_answers
from mmdiag.metrics.pope_io import jsonl_rows, read_pope_jsonl

FIELDS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "yes_ratio",
    "n",
    "unparsed",
    "tp",
    "fp",
    "tn",
    "fn",
    "unparsed_yes_label",
    "undefined",
    "peer_metrics",
)


def read_answers(path: str | Path) -> dict[str, str]:
    """question_id (as text) -> answer text; a malformed line is a one-line error naming file and line."""
    answers: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, row in jsonl_rows(path, "answers"):
        text = row.get("answer", row.get("text"))
        qid = row.get("question_id")
        if qid is None or isinstance(qid, bool) or not isinstance(qid, (int, str)) or not isinstance(text, str):
            raise MmdiagError(f"{path}:{number} needs question_id and an 'answer' (or 'text') string")
        key = str(qid)
        if key in answers and answers[key] != text:
            raise MmdiagError(
                f"{path}:{lines[key]} and line {number} answer question_id {qid} differently "
                f"({answers[key]!r} vs {text!r}): keep one answer per question"
            )
        answers[key], lines[key] = text, number
    return answers


def score_pope(
    question_files: list[str | Path], answer_files: list[str | Path], rule: str = "pope"
) -> dict[str, dict[str, Any]]:
    """POPE metrics per question file; a question without an answer counts as unparsed."""
    if rule not in RULES:
        raise MmdiagError(f"unknown parsing rule '{rule}': choose one of {', '.join(RULES)}")
    if len(answer_files) not in (1, len(question_files)):
        raise MmdiagError(
            "give one --answers file for all --questions files, or one per --questions file in the same order"
        )
    shared = read_answers(answer_files[0]) if len(answer_files) == 1 else None
    results: dict[str, dict[str, Any]] = {}
    for index, question_file in enumerate(question_files):
        answers = shared if shared is not None else read_answers(answer_files[index])
        questions = read_pope_jsonl(question_file)
        scores = score_answers(
            [answers.get(str(q.question_id)) for q in questions], [q.label for q in questions], rule
        ).to_dict()
        stem = Path(question_file).stem
        if stem in results:
            raise MmdiagError(f"two question files share the name {stem!r}: results are keyed by file stem, rename one")
        results[stem] = {key: scores[key] for key in FIELDS} | {
            "rule": rule,
            "reference": RULE_SPECS[rule].reference,
            "missing": sum(str(q.question_id) not in answers for q in questions),
        }
    return results
