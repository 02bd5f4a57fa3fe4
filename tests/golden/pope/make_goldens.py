"""Golden POPE numbers made by running each peer's own scoring code on the same answers (not a re-reading of it).

Run from the repository root, with the peers' sources at the pinned versions (none of them is committed here):

    pip download --no-deps -d /tmp/peers lmms-eval==0.7.3                # the PyPI wheel
    git clone https://github.com/RUCAIBox/POPE /tmp/peers/POPE            && git -C /tmp/peers/POPE checkout 3df3ba1
    git clone https://github.com/DAMO-NLP-SG/VCD /tmp/peers/VCD           && git -C /tmp/peers/VCD checkout d6568ff
    git clone https://github.com/open-compass/VLMEvalKit /tmp/peers/VLMEvalKit && git -C /tmp/peers/VLMEvalKit checkout e8e78f0
    pip install pandas numpy                                              # what VLMEvalKit's rating code uses
    python tests/golden/pope/make_goldens.py --peers /tmp/peers

It writes tests/golden/pope/goldens.json: the answer sets, and for each set each peer's printed metrics (or the
error the peer's code raised, e.g. ZeroDivisionError when nothing is answered yes) and its per-answer verdicts
where the code exposes them. How each peer's code is run:

* POPE ``evaluate.py``: the script's own text, with its two empty file-name assignments filled in, executed; its
  printed lines are read back.
* VCD ``experiments/eval/eval_pope.py``: executed as a script with ``--gt_files``/``--gen_files``.
* lmms-eval 0.7.3 ``lmms_eval/tasks/pope/utils.py`` (read from the wheel): ``pope_process_results`` per answer,
  then each ``pope_aggregate_*`` over the results, as lmms-eval's metric aggregation calls them.
* VLMEvalKit: ``process_punctuation`` (``vlmeval/smp/misc.py``), ``YOrN_Extraction`` and ``POPE_rating``
  (``vlmeval/dataset/utils/yorn.py``) taken verbatim from the sources by ``ast``; ``score = answer == extracted``
  as ``ImageYORNDataset.evaluate`` sets it with exact matching; ``POPE_rating``'s ``load`` returns that frame.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PINS = {
    "POPE": "3df3ba1b110ecce25696989577fad583b67d4239",
    "VCD": "d6568ff81b8fd306a49e630df44f2db5c2300191",
    "VLMEvalKit": "e8e78f05f3080fe28154f2130321f17951c3be94",
    "lmms-eval": "0.7.3",
}

AWKWARD = [
    "Yes",
    "No",
    "yes",
    "no",
    "Yes.",
    "No.",
    "YES",
    "NO!",
    " yes ",
    "no\n",
    "Yes, there is a cat in the image.",
    "yes, there is",
    "No, there is not.",
    "Not really",
    "",
    "I don't know",
    "(yes)",
    "(no)",
    "yes/no",
    "Yes; no doubt",
    "There is no cat.",
    "Yes- definitely",
    "<yes>",
    '"no"',
    "yes?",
    "There is a cat, yes.",
    "Maybe.",
    "not sure",
    "no, no, no",
    "yes. no.",
    "I see 3,000 cats, yes",
    "I see 3,000 cats; no",
    "1.5 yes",
    "Nothing",
    "Answer: No",
    "noo",
    "nope",
    "The answer is yes",
    "No red square and",
    "I cannot say yes or no",
    "It's not there.",
    "Absolutely yes!",
    "y",
    "Yes\tthere is",
    "yes-no",
    "know",
    "a.b yes",
    "yes,no",
    "[no]",
    "{yes}",
    "no... maybe yes",
]


def answer_sets() -> dict[str, list[dict]]:
    """Named sets of POPE questions with a label and a free-text answer each."""
    rng = random.Random(20261204)
    sets: dict[str, list[dict]] = {}
    sets["awkward"] = [{"label": label, "answer": answer} for answer in AWKWARD for label in ("yes", "no")]
    sets["mixed"] = [
        {"label": "yes" if i % 2 == 0 else "no", "answer": rng.choice(AWKWARD[:12] * 4 + AWKWARD)} for i in range(240)
    ]
    sets["clean"] = [{"label": label, "answer": rng.choice(["Yes", "No"])} for label in ("yes", "no") * 50]
    sets["nothing-yes"] = [{"label": label, "answer": "No"} for label in ("yes", "no") * 10]
    sets["all-unreadable-to-lmms-eval"] = [
        {"label": label, "answer": rng.choice(["Yes.", "No.", "Yes, it is."])} for label in ("yes", "no") * 10
    ]
    for rows in sets.values():
        for index, row in enumerate(rows):
            row["question_id"] = index
            row["text"] = "Is there a cat in the image?"
    return sets


def run_pope(source: str, rows: list[dict], tmp: Path) -> dict:
    answers, labels = tmp / "answers.jsonl", tmp / "labels.jsonl"
    answers.write_text(
        "".join(json.dumps({"question_id": r["question_id"], "answer": r["answer"]}) + "\n" for r in rows)
    )
    labels.write_text("".join(json.dumps({"question_id": r["question_id"], "label": r["label"]}) + "\n" for r in rows))
    filled = source.replace("ans_file = ''", f"ans_file = {str(answers)!r}", 1).replace(
        "label_file = ''", f"label_file = {str(labels)!r}", 1
    )
    assert filled != source
    namespace: dict = {"__name__": "__main__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            exec(compile(filled, "POPE/evaluate.py", "exec"), namespace)  # noqa: S102 - the peer's own script
            error = None
        except ZeroDivisionError as err:
            error = f"ZeroDivisionError: {err}"
    out = {"error": error, "decisions": ["yes" if p == 1 else "no" for p in namespace.get("pred_list", [])]}
    for line in printed.getvalue().splitlines():
        if ": " in line:
            key, value = line.split(": ", 1)
            out[key] = float(value)
    return out


def run_vcd(script: Path, rows: list[dict], tmp: Path) -> dict:
    gt, gen = tmp / "gt.jsonl", tmp / "gen.jsonl"
    gt.write_text("".join(json.dumps({"question_id": r["question_id"], "label": r["label"]}) + "\n" for r in rows))
    gen.write_text("".join(json.dumps({"question_id": r["question_id"], "text": r["answer"]}) + "\n" for r in rows))
    proc = subprocess.run(
        [sys.executable, str(script), "--gt_files", str(gt), "--gen_files", str(gen)], capture_output=True, text=True
    )
    out: dict = {"error": proc.stderr.strip().splitlines()[-1] if proc.returncode else None}
    for line in proc.stdout.splitlines():
        if ": " in line:
            key, value = line.split(": ", 1)
            out[key] = float(value)
    return out


def run_lmms_eval(utils_source: str, rows: list[dict]) -> dict:
    module: dict = {}
    exec(compile(utils_source, "lmms_eval/tasks/pope/utils.py", "exec"), module)  # noqa: S102 - the peer's own code
    results = [
        module["pope_process_results"](
            {"question_id": r["question_id"], "answer": r["label"], "question": r["text"]}, [r["answer"]]
        )
        for r in rows
    ]
    out: dict = {"error": None, "scores": [res["pope_accuracy"]["score"] for res in results]}
    for metric, aggregate in (
        ("pope_accuracy", "pope_aggregate_accuracy"),
        ("pope_precision", "pope_aggregate_precision"),
        ("pope_recall", "pope_aggregate_recall"),
        ("pope_f1_score", "pope_aggregate_f1_score"),
        ("pope_yes_ratio", "pope_aggregate_yes_ratio"),
    ):
        out[metric] = module[aggregate]([res[metric] for res in results])
    return out


def _functions(source: str, names: set[str]) -> str:
    tree = ast.parse(source)
    return "\n\n".join(
        ast.get_source_segment(source, node)
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name in names
    )


def run_vlmevalkit(misc_source: str, yorn_source: str, rows: list[dict], split: str) -> dict:
    import numpy as np
    import pandas as pd

    namespace: dict = {"np": np, "pd": pd}
    exec(_functions(misc_source, {"process_punctuation"}), namespace)  # noqa: S102 - the peer's own code
    exec(_functions(yorn_source, {"YOrN_Extraction", "POPE_rating"}), namespace)  # noqa: S102
    data = pd.DataFrame(
        {
            "index": [r["question_id"] for r in rows],
            "question": [r["text"] for r in rows],
            "answer": ["Yes" if r["label"] == "yes" else "No" for r in rows],
            "prediction": [str(r["answer"]) for r in rows],
            "category": split,
        }
    )
    data["extracted"] = [namespace["YOrN_Extraction"](p) for p in data["prediction"]]
    data["score"] = data["answer"] == data["extracted"]  # ImageYORNDataset.evaluate, exact matching
    namespace["load"] = lambda _path: data.copy()
    rating = namespace["POPE_rating"]("in-memory")
    overall = rating[rating["split"] == "Overall"].iloc[0]
    return {
        "error": None,
        "extracted": list(data["extracted"]),
        **{key: float(overall[key]) for key in ("Overall", "acc", "precision", "recall")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, required=True, help="folder with the peers' sources (see the docstring)")
    args = parser.parse_args()
    peers = args.peers
    for name in ("POPE", "VCD", "VLMEvalKit"):
        head = subprocess.run(
            ["git", "-C", str(peers / name), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        assert head == PINS[name], f"{name} is at {head}, pinned {PINS[name]}"
    wheel = peers / f"lmms_eval-{PINS['lmms-eval']}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        lmms_utils = archive.read("lmms_eval/tasks/pope/utils.py").decode()
    pope_source = (peers / "POPE" / "evaluate.py").read_text()
    misc = (peers / "VLMEvalKit" / "vlmeval" / "smp" / "misc.py").read_text()
    yorn = (peers / "VLMEvalKit" / "vlmeval" / "dataset" / "utils" / "yorn.py").read_text()
    document: dict = {"pins": PINS, "generator": "tests/golden/pope/make_goldens.py", "sets": {}}
    for name, rows in answer_sets().items():
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            document["sets"][name] = {
                "questions": rows,
                "pope": run_pope(pope_source, rows, tmp),
                "vcd": run_vcd(peers / "VCD" / "experiments" / "eval" / "eval_pope.py", rows, tmp),
                "lmms-eval": run_lmms_eval(lmms_utils, rows),
                "vlmevalkit": run_vlmevalkit(misc, yorn, rows, name),
            }
    (HERE / "goldens.json").write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {HERE / 'goldens.json'}: {len(document['sets'])} sets")


if __name__ == "__main__":
    main()
