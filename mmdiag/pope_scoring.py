"""``mmdiag pope``: score answers produced by any system against POPE question files, no model loaded.

Answers are JSONL with ``question_id`` and the answer text under ``answer`` (or ``text``, as LLaVA's
scripts write it). Give one answers file for all question files (ids unique across them) or one per
question file, in the same order. Results are keyed by each question file's stem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdiag.data_paths import resolve_inside
from mmdiag.errors import MmdiagError
from mmdiag.metrics.pope import RULE_SPECS, RULES, score_answers
from mmdiag.scenes.pope_io import jsonl_rows, read_pope_jsonl

FIELDS = ("accuracy", "precision", "recall", "f1", "yes_ratio", "n", "unparsed", "tp", "fp", "tn", "fn",
          "unparsed_yes_label", "undefined", "peer_metrics")


def read_answers(path: str | Path) -> dict[str, str]:
    """question_id (as text) -> answer text; a malformed line is a one-line error naming file and line."""
    answers: dict[str, str] = {}
    for number, row in jsonl_rows(path, "answers"):
        text = row.get("answer", row.get("text"))
        if "question_id" not in row or not isinstance(text, str):
            raise MmdiagError(f"{path}:{number} needs question_id and an 'answer' (or 'text') string")
        answers[str(row["question_id"])] = text
    return answers


def score_pope(question_files: list[str | Path], answer_files: list[str | Path], rule: str = "pope") -> dict[str, dict[str, Any]]:
    """POPE metrics per question file; a question without an answer counts as unparsed."""
    if rule not in RULES:
        raise MmdiagError(f"unknown parsing rule '{rule}': choose one of {', '.join(RULES)}")
    if len(answer_files) not in (1, len(question_files)):
        raise MmdiagError("give one --answers file for all --questions files, or one per --questions file in the same order")
    shared = read_answers(answer_files[0]) if len(answer_files) == 1 else None
    results: dict[str, dict[str, Any]] = {}
    for index, question_file in enumerate(question_files):
        answers = shared if shared is not None else read_answers(answer_files[index])
        questions = read_pope_jsonl(question_file)
        scores = score_answers([answers.get(str(q.question_id)) for q in questions], [q.label for q in questions],
                               rule).to_dict()
        stem = Path(question_file).stem
        if stem in results:
            raise MmdiagError(f"two question files share the name {stem!r}: results are keyed by file stem, rename one")
        results[stem] = {key: scores[key] for key in FIELDS} | {"rule": rule, "reference": RULE_SPECS[rule].reference,
                                                                 "missing": sum(str(q.question_id) not in answers for q in questions)}
    return results


def answer_pope(adapter: Any, question_file: str | Path, answers_path: str | Path, image_dir: str | Path | None = None,
                progress: bool = True) -> Path:
    """Run a generative model on one POPE question file, appending one JSON line per answer to ``answers_path``.

    Decisions come from first-token logits (P(yes) > P(no)), with every question about one image sharing its
    encoded image and prompt prefix; the answer is written as "Yes"/"No" with ``p_yes``/``p_no``. Images are
    read from ``image_dir`` (default: the question file's folder, or its ``images/`` subfolder as
    ``mmdiag scenes`` writes it); an image path that leaves that folder (``..``, absolute, a symlink out) is a
    one-line error and is never read. Questions already answered in ``answers_path`` are skipped, so a killed run
    resumes where it stopped.
    """
    import json

    from tqdm.auto import tqdm

    from mmdiag.scenes.photos import load_image

    answers_path = Path(answers_path)
    done = set(read_answers(answers_path)) if answers_path.is_file() else set()
    folder = Path(image_dir) if image_dir else Path(question_file).parent
    if not folder.is_dir():
        raise MmdiagError(f"image folder {folder} does not exist: pass --image-dir, the folder of the POPE images")
    by_image: dict[Path, list[Any]] = {}
    for q in read_pope_jsonl(question_file):
        if str(q.question_id) not in done:
            entry = f"question_id {q.question_id}"
            path = resolve_inside(folder, q.image, source=str(question_file), entry=entry)
            if image_dir is None and not path.exists() and (folder / "images").is_dir():
                inner = resolve_inside(folder / "images", q.image, source=str(question_file), entry=entry)
                path = inner if inner.is_file() else path  # images/ as ``mmdiag scenes`` writes it
            by_image.setdefault(path, []).append(q)
    answers_path.parent.mkdir(parents=True, exist_ok=True)
    with answers_path.open("a", encoding="utf-8") as sink:
        for image_path, questions in tqdm(by_image.items(), desc=Path(question_file).stem, disable=not progress):
            scores = adapter.answer_scores_per_image([load_image(image_path)], [[q.text for q in questions]])[0]
            for q, p_yes, p_no in zip(questions, scores.p_yes, scores.p_no):
                row = {"question_id": q.question_id, "answer": "Yes" if p_yes > p_no else "No",
                       "p_yes": float(p_yes), "p_no": float(p_no)}
                sink.write(json.dumps(row) + "\n")
            sink.flush()
    return answers_path
