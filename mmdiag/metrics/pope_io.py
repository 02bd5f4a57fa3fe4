"""The official POPE question format (JSONL), written and read, so external tools can run our sets.

One object per line: ``{"question_id": 0, "image": "COCO_val2014_000000548882.jpg", "text":
"Is there a dining table in the image?", "label": "yes"}`` (official files may also carry ``image_id``;
any extra keys are kept in ``extra``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdiag.errors import MmdiagError

REQUIRED = ("question_id", "image", "text", "label")


@dataclass(frozen=True)
class PopeQuestion:
    """A question as the POPE format holds it."""

    question_id: int | str
    image: str
    text: str
    label: str
    extra: dict[str, Any] = field(default_factory=dict)


def write_pope_jsonl(questions: Iterable[Any], path: str | Path) -> Path:
    """Write questions in the official format (our extra fields go after the four official ones): any objects
    with ``question_id``, ``image``, ``text`` and ``label``, and ``extra`` or ``pope_extra()`` for the rest."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for q in questions:
            row: dict[str, Any] = {"question_id": q.question_id, "image": q.image, "text": q.text, "label": q.label}
            row.update(q.pope_extra() if hasattr(q, "pope_extra") else getattr(q, "extra", {}))
            f.write(json.dumps(row) + "\n")
    return path


def json_entries(path: str | Path, what: str, text: str | None = None) -> Iterator[tuple[str, Any]]:
    """(where, value) of a JSON-lines file or a JSON array (``text``: its content, when already read); a missing
    file or malformed entry is a one-line error naming the file and the line (or item)."""
    path = Path(path)
    text = read_text(path, what) if text is None else text
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise MmdiagError(f"{path}:{err.lineno} is not JSON ({err.msg}): {what} files hold JSON entries") from err
        for index, value in enumerate(items, start=1):
            yield f"{path} item {index}", value
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise MmdiagError(
                f"{path}:{number} is not JSON ({err.msg}): {what} files hold one JSON entry per line "
                "(or a JSON array of them)"
            ) from err
        yield f"{path}:{number}", value


def json_records(path: str | Path, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, object) of a JSON-lines file or a JSON array of objects (:func:`json_entries`, objects only)."""
    for where, value in json_entries(path, what):
        yield json_object(value, where, what)


def json_object(row: Any, where: str, what: str) -> tuple[str, dict[str, Any]]:
    """(where, row) when ``row`` is a JSON object, else a one-line error."""
    if not isinstance(row, dict):
        raise MmdiagError(f"{where} is a JSON {type(row).__name__}, not an object: {what} files hold JSON objects")
    return where, row


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file; a missing or binary file is a one-line error."""
    if not path.is_file():
        raise MmdiagError(f"{what} file {path} does not exist: check the path")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise MmdiagError(
            f"{what} file {path} is not UTF-8 text (byte {err.start}): give a JSON-lines, JSON, TSV or xlsx file"
        ) from err


def read_pope_jsonl(path: str | Path) -> list[PopeQuestion]:
    """Read a POPE question file (JSON lines, or a JSON array as POPE's SEEM-based files are); a malformed
    entry is a one-line error naming file and line."""
    questions = []
    lines: dict[str, str] = {}
    for where, row in json_records(path, "question"):
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise MmdiagError(f"{where} lacks {', '.join(missing)}: POPE lines need question_id, image, text, label")
        for key in ("image", "text", "label"):
            if not isinstance(row[key], str) or not row[key].strip():
                raise MmdiagError(f"{where} has {key} {row[key]!r}: POPE lines give it as a non-empty string")
        qid = row["question_id"]
        if isinstance(qid, bool) or not isinstance(qid, (int, str)):
            raise MmdiagError(f"{where} has question_id {qid!r}: an integer or a string")
        if str(qid) in lines:
            raise MmdiagError(
                f"{lines[str(qid)]} and {where} share question_id {qid}: ids must be "
                "unique within a file (give each split its own file); fix one"
            )
        lines[str(qid)] = where
        label = row["label"].strip().lower()
        if label not in ("yes", "no"):
            raise MmdiagError(f"{where} has label {row['label']!r}: POPE labels are yes or no")
        questions.append(
            PopeQuestion(
                row["question_id"],
                row["image"],
                row["text"],
                label,
                {k: v for k, v in row.items() if k not in REQUIRED},
            )
        )
    return questions
