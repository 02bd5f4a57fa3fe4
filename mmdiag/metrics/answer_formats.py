"""The answer files of the field, read as their tools write them: one list of answers, whatever wrote it.

Formats (``detect_format`` picks one from the file; ``--format`` names it):

* ``jsonl``: one object per line with ``question_id`` and the answer under ``answer`` or ``text`` (mmdiag's own
  ``pope --model`` output, LLaVA's and VCD's answer files), optionally a ``split``; a JSON array of such objects
  is read alike.
* ``pope-answers``: the official POPE answer file (``{"question", "answer"}`` per line, RUCAIBox/POPE README and
  ``answer/example.json``): no ids, matched by order to one question file.
* ``lmms-eval``: an lmms-eval ``--log_samples`` file of a POPE task (``<date>_samples_pope_random.jsonl``; every
  layout since 0.3: ``filtered_resps`` as a list or, from 0.7, a string; ``doc`` present up to 0.3.x), or the
  0.2-era JSON with a ``logs`` list. The question id, the label and the task's split are in the file.
* ``vlmevalkit``: a VLMEvalKit POPE prediction file (``<model>_POPE.xlsx``; ``.tsv`` or ``.json`` with
  ``PRED_FORMAT``; ``.jsonl``): columns ``index, question, answer, category, prediction``. A row whose
  ``category`` lists several splits (``"adversarial,popular,random"``) answers each of them, as ``POPE_rating``
  explodes it.

Files whose every answer carries its label (the POPE logs of lmms-eval and VLMEvalKit) are scored without a question
file. The lmms-eval task and the VLMEvalKit TSV that ``mmdiag export`` writes come back in the same two formats,
keyed by the export's index.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdiag.errors import MmdiagError
from mmdiag.metrics.pope_io import json_object, json_records, read_text

FORMATS = ("jsonl", "pope-answers", "lmms-eval", "vlmevalkit")
# the parsing rule whose numbers each format's own tool prints
NATIVE_RULE = {"jsonl": "pope", "pope-answers": "pope", "lmms-eval": "lmms-eval", "vlmevalkit": "vlmevalkit"}
POPE_SPLITS = ("random", "popular", "adversarial")
# lmms-eval's POPE tasks and the split each one reads (lmms_eval/tasks/pope/*.yaml, ``test_split``)
LMMS_EVAL_TASKS = {"pope_random": "random", "pope_pop": "popular", "pope_adv": "adversarial", "pope": None}
EXPORT_METRIC = "mmdiag_answer"  # the metric key of the lmms-eval task ``mmdiag export`` writes
_LMMS_EVAL_NAME = re.compile(r"_samples_(?P<task>[A-Za-z0-9_\-]+)\.jsonl$")
# what pandas' read_csv reads as missing (its default na_values): VLMEvalKit then scores ``str(nan)``
_PANDAS_NA = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """One answer: the question it answers (its id within ``split``), the text, and the label when the file has it.

    ``text`` is None when the file holds no answer for the question (an empty cell), scored as unparsed.
    """

    question_id: str
    text: str | None
    split: str | None = None
    label: str | None = None
    where: str = ""


@dataclass(frozen=True)
class AnswerFile:
    """The answers of one file, in file order, with the format they were read as."""

    path: Path
    format: str
    answers: tuple[Answer, ...]
    group: str  # what results from this file are named after: the lmms-eval task, else the file stem

    @property
    def self_contained(self) -> bool:
        """Every answer carries its label (a POPE log of lmms-eval or VLMEvalKit): scored without question files."""
        return all(a.label is not None for a in self.answers)

    @property
    def has_splits(self) -> bool:
        return any(a.split is not None for a in self.answers)


def detect_format(path: str | Path) -> str:
    """The answer format of a file, from its name and its first entry; an unknown layout is a one-line error."""
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".tsv"):
        return "vlmevalkit"
    if _lmms_eval_logs(path) is not None:
        return "lmms-eval"
    first = next(json_records(path, "answers"), None)
    if first is None:
        raise MmdiagError(f"answers file {path} is empty: it holds no answers")
    keys = set(first[1])
    if keys & {"pope_accuracy", "filtered_resps"}:
        return "lmms-eval"
    if {"index", "prediction"} <= keys:
        return "vlmevalkit"
    if {"question_id", "image", "text", "label"} <= keys and "answer" not in keys:
        raise MmdiagError(
            f"{path} holds POPE questions (question_id, image, text, label), not answers: pass it with --questions"
        )
    if "question_id" in keys:
        return "jsonl"
    if {"question", "answer"} <= keys:
        return "pope-answers"
    raise MmdiagError(
        f"{first[0]} has keys {', '.join(sorted(keys)) or 'none'}: not an answers layout mmdiag knows "
        f"(question_id + answer; question + answer, POPE's; an lmms-eval sample log; a VLMEvalKit prediction "
        f"file); name it with --format {{{','.join(FORMATS)}}}"
    )


def read_answer_file(path: str | Path, fmt: str = "auto") -> AnswerFile:
    """Read an answers file as ``fmt`` (one of :data:`FORMATS`, or ``auto`` to detect it)."""
    path = Path(path)
    if fmt == "auto":
        fmt = detect_format(path)
    readers = {
        "jsonl": _read_jsonl,
        "pope-answers": _read_pope_answers,
        "lmms-eval": _read_lmms_eval,
        "vlmevalkit": _read_vlmevalkit,
    }
    if fmt not in readers:
        raise MmdiagError(f"unknown answers format '{fmt}': choose auto or one of {', '.join(FORMATS)}")
    answers, group = readers[fmt](path)
    if not answers:
        raise MmdiagError(f"answers file {path} holds no answers: check that it is the right file")
    return AnswerFile(path, fmt, tuple(answers), group)


def _id(value: Any, where: str, field: str) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MmdiagError(f"{where} has {field} {value!r}: an integer or a string")
    return str(value)


def _read_jsonl(path: Path) -> tuple[list[Answer], str]:
    answers = []
    for where, row in json_records(path, "answers"):
        text = row.get("answer", row.get("text"))
        if "question_id" not in row or not isinstance(text, str):
            raise MmdiagError(f"{where} needs question_id and an 'answer' (or 'text') string")
        split = row.get("split")
        answers.append(Answer(_id(row["question_id"], where, "question_id"), text, split, None, where))
    return answers, path.stem


def _read_pope_answers(path: Path) -> tuple[list[Answer], str]:
    answers = []
    for index, (where, row) in enumerate(json_records(path, "answers")):
        if not isinstance(row.get("answer"), str):
            raise MmdiagError(f"{where} needs an 'answer' string (POPE answer files hold question + answer per line)")
        answers.append(Answer(str(index), row["answer"], None, None, where))  # the position is the id
    return answers, path.stem


def _lmms_eval_logs(path: Path) -> list | None:
    """The ``logs`` list of an lmms-eval 0.2-era sample JSON, else None."""
    text = read_text(path, "answers")
    if not (text.lstrip().startswith("{") and '"logs"' in text):
        return None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return None
    return whole["logs"] if isinstance(whole, dict) and isinstance(whole.get("logs"), list) else None


def _lmms_eval_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    logs = _lmms_eval_logs(path)
    if logs is None:
        yield from json_records(path, "answers")
        return
    for index, row in enumerate(logs, start=1):
        yield json_object(row, f"{path} logs item {index}", "answers")


def _first_text(value: Any) -> str | None:
    while isinstance(value, list):
        if not value:
            return None
        value = value[0]
    return value if isinstance(value, str) else None


def _read_lmms_eval(path: Path) -> tuple[list[Answer], str]:
    match = _LMMS_EVAL_NAME.search(path.name)
    task = match["task"] if match else path.stem
    task_split = LMMS_EVAL_TASKS.get(task)
    answers, seen = [], {}
    for where, row in _lmms_eval_records(path):
        exported = row.get(EXPORT_METRIC)
        if isinstance(exported, dict):  # the task ``mmdiag export`` writes: answers keyed by the export's index
            text = _first_text(row.get("filtered_resps", exported.get("answer")))
            answers.append(Answer(_id(exported.get("index"), where, "index"), text, None, None, where))
            continue
        metric = row.get("pope_accuracy")
        if not isinstance(metric, dict) or "ground_truth" not in metric:
            raise MmdiagError(
                f"{where} has no pope_accuracy: not a sample of an lmms-eval POPE task "
                "(pope, pope_random, pope_pop, pope_adv) or of mmdiag's exported task; give its _samples_*.jsonl file"
            )
        doc_id = _id(row.get("doc_id"), where, "doc_id")
        if doc_id in seen:
            raise MmdiagError(
                f"{seen[doc_id]} and {where} are both doc_id {doc_id}: one sample log per task run "
                "(two runs appended to one file?); keep one"
            )
        seen[doc_id] = where
        text = _first_text(row["filtered_resps"]) if "filtered_resps" in row else metric.get("prediction")
        doc = row.get("doc") if isinstance(row.get("doc"), dict) else {}
        split = task_split or doc.get("category")
        label = str(metric["ground_truth"]).lower().strip()
        answers.append(Answer(doc_id, text, split, _label(label, where), where))
    return answers, task


def _label(value: str, where: str) -> str:
    label = value.strip().lower()
    if label not in ("yes", "no"):
        raise MmdiagError(f"{where} has the label {value!r}: POPE labels are yes or no")
    return label


def _vlmevalkit_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        yield from _xlsx_rows(path)
    elif suffix == ".tsv":
        if not path.is_file():
            raise MmdiagError(f"answers file {path} does not exist: check the path")
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            for number, row in enumerate(reader, start=2):
                yield f"{path}:{number}", {k: (None if v in _PANDAS_NA else v) for k, v in row.items()}
    else:
        yield from json_records(path, "answers")


def _xlsx_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if not path.is_file():
        raise MmdiagError(f"answers file {path} does not exist: check the path")
    try:
        import openpyxl
    except ImportError as err:
        raise MmdiagError("reading .xlsx needs the openpyxl package: pip install openpyxl") from err
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises zipfile, KeyError and its own errors on a broken file
        raise MmdiagError(
            f"{path} is not a readable xlsx workbook ({type(err).__name__}): give the file VLMEvalKit wrote, "
            "or its .tsv (PRED_FORMAT=tsv)"
        ) from err
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)  # pandas.read_excel reads the first sheet
        header = [str(h) if h is not None else "" for h in next(rows, ())]
        for number, values in enumerate(rows, start=2):
            if all(v is None for v in values):
                continue
            yield f"{path} row {number}", dict(zip(header, values))
    finally:
        book.close()


def _read_vlmevalkit(path: Path) -> tuple[list[Answer], str]:
    answers, seen = [], {}
    for where, row in _vlmevalkit_rows(path):
        missing = [k for k in ("index", "prediction") if k not in row]
        if missing:
            raise MmdiagError(
                f"{where} lacks {', '.join(missing)}: VLMEvalKit predictions have the columns "
                "index, question, (answer, category,) prediction"
            )
        index = row["index"]
        qid = _id(int(index) if isinstance(index, float) and index.is_integer() else index, where, "index")
        prediction = row["prediction"]
        text = None if prediction is None else str(prediction)  # VLMEvalKit scores str(x); nan is Unknown
        label = None if row.get("answer") in (None, "") else _label(str(row["answer"]), where)
        category = row.get("category")
        if qid in seen:
            raise MmdiagError(
                f"{seen[qid]} and {where} share index {qid}: VLMEvalKit's index is unique per file; keep one"
            )
        seen[qid] = where
        splits = str(category).split(",") if category not in (None, "") else [None]
        answers.extend(Answer(qid, text, split, label, where) for split in splits)
    return answers, path.stem
