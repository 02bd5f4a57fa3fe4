"""``mmdiag pope``: score answers produced by any system against POPE question files, no model loaded.

Answers come in any format :mod:`mmdiag.metrics.answer_formats` reads. Files that carry their labels (lmms-eval
sample logs, VLMEvalKit predictions) are scored alone, per split and as their tool aggregates them. Others are
matched to ``--questions`` files: one answers file for all of them, or one per question file in the same order.
Question ids are unique only within a split: answers are matched per (split, id) when they name their split, and a
shared answers file whose ids repeat across the question files without a split is refused, never merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmdiag.errors import MmdiagError
from mmdiag.metrics.answer_formats import NATIVE_RULE, POPE_SPLITS, Answer, AnswerFile, read_answer_file
from mmdiag.metrics.pope import RULE_SPECS, RULES, score_answers
from mmdiag.metrics.pope_io import PopeQuestion, read_pope_jsonl

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
    """question_id (as text) -> answer text of a JSON-lines answers file (mmdiag's own ``pope --model`` output);
    a malformed line, or one id answered twice differently, is a one-line error naming file and line."""
    index = _index(read_answer_file(path, "jsonl"), by_split=False)
    return {qid: answer.text for (_, qid), answer in index.items() if answer.text is not None}


def score_pope(
    question_files: Sequence[str | Path],
    answer_files: Sequence[str | Path],
    rule: str | None = None,
    fmt: str = "auto",
) -> dict[str, dict[str, Any]]:
    """POPE metrics per question file (or per split of a self-labelled answers file).

    ``rule`` defaults to the one the answers' own tool scores with (lmms-eval logs: lmms-eval; VLMEvalKit files:
    vlmevalkit; otherwise the official POPE rule). A question without an answer counts as unparsed.
    """
    if rule is not None and rule not in RULES:
        raise MmdiagError(f"unknown parsing rule '{rule}': choose one of {', '.join(RULES)}")
    if not answer_files:
        raise MmdiagError("give --answers: a file of answers (or --model to answer the questions first)")
    files = [read_answer_file(path, fmt) for path in answer_files]
    labelled = [f for f in files if f.self_contained]
    if labelled:
        if len(labelled) != len(files):
            raise MmdiagError(
                "do not mix answers files that carry their labels (lmms-eval, VLMEvalKit) with ones that need "
                "--questions: score them in two runs"
            )
        if question_files:
            raise MmdiagError(
                f"{labelled[0].path} is a {labelled[0].format} file and carries its own labels: drop --questions"
            )
        return _score_labelled(files, rule)
    if not question_files:
        raise MmdiagError(f"{files[0].path} ({files[0].format}) holds no labels: give its POPE --questions file(s)")
    return _score_against_questions([Path(q) for q in question_files], files, rule)


def _result(file: AnswerFile, texts: list[str | None], labels: list[str], rule: str | None, **extra: Any) -> dict:
    rule = rule or NATIVE_RULE[file.format]
    scores = score_answers(texts, labels, rule).to_dict()
    return (
        {key: scores[key] for key in FIELDS}
        | {"rule": rule, "reference": RULE_SPECS[rule].reference, "format": file.format, "answers": str(file.path)}
        | extra
    )


def _put(results: dict[str, dict], key: str, value: dict) -> None:
    if key in results:
        raise MmdiagError(f"two inputs give results named {key!r}: results are keyed by file stem or task, rename one")
    results[key] = value


def _score_labelled(files: list[AnswerFile], rule: str | None) -> dict[str, dict[str, Any]]:
    """Each file as its tool aggregates it (lmms-eval: the task over all its samples; VLMEvalKit: ``Overall``
    over the rows exploded by category), and per split."""
    results: dict[str, dict[str, Any]] = {}
    for file in files:
        splits = sorted({a.split for a in file.answers if a.split is not None})
        whole = file.group if file.format == "lmms-eval" else f"{file.group}/Overall"
        answers = list(file.answers)
        split = splits[0] if len(splits) == 1 and file.format == "lmms-eval" else None
        _put(results, whole, _result(file, [a.text for a in answers], [a.label for a in answers], rule, split=split))
        if file.format == "vlmevalkit" or len(splits) > 1:
            for split in splits:
                part = [a for a in answers if a.split == split]
                _put(
                    results,
                    f"{file.group}/{split}",
                    _result(file, [a.text for a in part], [a.label for a in part], rule, split=split),
                )
    return results


def _index(file: AnswerFile, by_split: bool) -> dict[tuple[str | None, str], Answer]:
    """(split, question id) -> answer; the same question answered twice differently is refused."""
    index: dict[tuple[str | None, str], Answer] = {}
    for answer in file.answers:
        key = (answer.split if by_split else None, answer.question_id)
        prior = index.get(key)
        if prior is not None and prior.text != answer.text:
            where = f" of split {answer.split}" if by_split and answer.split else ""
            hint = (
                ""
                if by_split
                else "; if the file answers several splits (POPE ids repeat in each), give every answer its "
                "'split' (random, popular, adversarial) or give one answers file per question file"
            )
            raise MmdiagError(
                f"{prior.where} and {answer.where} answer question_id {answer.question_id}{where} differently "
                f"({prior.text!r} vs {answer.text!r}): keep one answer per question{hint}"
            )
        index[key] = answer
    return index


def question_split(question: PopeQuestion, path: Path) -> str:
    """A question's split: its own ``split`` field, else the POPE split its file's name says, else the file stem."""
    own = question.extra.get("split")
    if isinstance(own, str) and own:
        return own
    return next((s for s in POPE_SPLITS if s in path.stem), path.stem)


def _score_against_questions(
    question_files: list[Path], files: list[AnswerFile], rule: str | None
) -> dict[str, dict[str, Any]]:
    questions = {path: read_pope_jsonl(path) for path in question_files}
    if len(files) not in (1, len(question_files)):
        raise MmdiagError(
            "give one --answers file for all --questions files, or one per --questions file in the same order"
        )
    by_order = [f for f in files if f.format == "pope-answers"]
    if by_order and len(files) != len(question_files):
        raise MmdiagError(
            f"{by_order[0].path} is a POPE answer file (question + answer, no ids): it is matched line by line "
            "to one question file; give one answers file per --questions file, in the same order"
        )
    shared = files[0] if len(files) == 1 and len(question_files) > 1 else None
    if shared is not None and not shared.has_splits:
        _refuse_repeating_ids(questions, shared)
    results: dict[str, dict[str, Any]] = {}
    for position, (path, qs) in enumerate(questions.items()):
        file = shared or files[position]
        texts = _texts_for(file, path, qs, by_split=file.has_splits)
        missing = sum(text is None for text in texts)
        result = _result(file, texts, [q.label for q in qs], rule, missing=missing)
        _put(results, path.stem, result)
    return results


def _texts_for(file: AnswerFile, path: Path, qs: list[PopeQuestion], by_split: bool) -> list[str | None]:
    if file.format == "pope-answers":
        if len(file.answers) != len(qs):
            raise MmdiagError(
                f"{file.path} holds {len(file.answers)} answers and {path} {len(qs)} questions: a POPE answer "
                "file is matched line by line to its question file; give the answers to exactly these questions"
            )
        return [a.text for a in file.answers]
    index = _index(file, by_split)
    texts = []
    for q in qs:
        answer = index.get((question_split(q, path) if by_split else None, str(q.question_id)))
        texts.append(None if answer is None else answer.text)
    if qs and all(text is None for text in texts):
        raise MmdiagError(
            f"no answer in {file.path} matches a question of {path} (question ids"
            f"{' and splits' if by_split else ''} differ): check that the files belong together"
        )
    return texts


def _refuse_repeating_ids(questions: dict[Path, list[PopeQuestion]], file: AnswerFile) -> None:
    owner: dict[str, Path] = {}
    for path, qs in questions.items():
        for q in qs:
            qid = str(q.question_id)
            if owner.setdefault(qid, path) != path:
                raise MmdiagError(
                    f"question_id {qid} is in {owner[qid]} and in {path} (POPE ids repeat in each split), so one "
                    f"answers file without a 'split' on each answer cannot tell them apart: give one --answers per "
                    f"--questions file, in the same order, or add a 'split' to each answer of {file.path}"
                )
