"""The peers' own POPE files, and the numbers the peers' own code gives on them (not a re-reading of that code).

Run from the repository root with the peers' sources at the pinned versions (none of them is committed here):

    pip download --no-deps -d /tmp/peers lmms-eval==0.7.3
    git clone https://github.com/RUCAIBox/POPE /tmp/peers/POPE && git -C /tmp/peers/POPE checkout 3df3ba1
    git clone https://github.com/open-compass/VLMEvalKit /tmp/peers/VLMEvalKit && git -C /tmp/peers/VLMEvalKit checkout e8e78f0
    git clone https://github.com/EvolvingLMMs-Lab/lmms-eval /tmp/peers/lmms-eval          # tags v0.3.0 and v0.6 are read
    pip install pandas numpy xlsxwriter openpyxl                                        # what VLMEvalKit's file code uses
    python tests/golden/pope_files/make_goldens.py --peers /tmp/peers

It writes, next to itself:

* ``official/``: POPE's own files, unedited: ``answer/example.json``, the first lines of the three COCO question
  files (byte for byte, CRLF where the repository has it) and of a SEEM-based GQA file (a pretty-printed JSON
  array, re-dumped as the file is: the generator checks the whole file has exactly that layout), plus answers in
  POPE's ``{"question", "answer"}`` format; the numbers come from executing POPE's ``evaluate.py`` on them.
* ``three_splits/``: one answers file for all three COCO heads (ids 1..N repeat in each), with and without a
  ``split`` on each answer; the expected numbers are ``evaluate.py`` run on each split alone.
* ``lmms-eval/<version>/<date>_samples_<task>.jsonl``: sample logs in the layouts of lmms-eval v0.3.0, v0.6 and
  0.7.3. Each record is built as that version's ``evaluator.py`` builds ``example`` (metrics from that version's own
  ``pope_process_results``) and written as that version's ``EvaluationTracker.save_results_samples`` writes it;
  the numbers are that version's ``pope_aggregate_*`` over the records' metric dicts.
* ``vlmevalkit/llava_POPE.{xlsx,tsv,json}``: a prediction frame written by VLMEvalKit's own ``dump``; the numbers
  are its ``ImageYORNDataset.evaluate`` steps (``load``, ``str`` of each prediction, ``YOrN_Extraction``, exact
  matching, ``dump``/``load`` of the intermediate file, ``POPE_rating``). VLMEvalKit's ``load`` returns a list for
  ``.json``, which its own ``evaluate`` cannot index: that one is wrapped in a DataFrame first.
* ``goldens.json``: the files' numbers, per file and split.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import io
import json
import random
import subprocess
import sys
import tempfile
import types
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pope"))
from make_goldens import AWKWARD, PINS, _functions  # noqa: E402  (the POPE-rule generator, same pins)

N = 24  # questions per split
LMMS_EVAL_TAGS = ("v0.3.0", "v0.6")
TASKS = {"random": "pope_random", "popular": "pope_pop", "adversarial": "pope_adv"}
DATE = "20261207_101500"


def _git_show(repo: Path, spec: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", spec], capture_output=True, text=True, check=True).stdout


def _git_bytes(repo: Path, spec: str) -> bytes:
    return subprocess.run(["git", "-C", str(repo), "show", spec], capture_output=True, check=True).stdout


def _answers(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(AWKWARD[:12] * 3 + AWKWARD) for _ in range(n)]


def run_pope_evaluate(source: str, answers: Path, labels: Path) -> dict:
    """POPE's evaluate.py on an answer file and a question file, its printed numbers read back."""
    filled = source.replace("ans_file = ''", f"ans_file = {str(answers)!r}", 1).replace(
        "label_file = ''", f"label_file = {str(labels)!r}", 1
    )
    assert filled != source
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(filled, "POPE/evaluate.py", "exec"), {"__name__": "__main__"})  # noqa: S102 - the peer's code
    out = {}
    for line in printed.getvalue().splitlines():
        if ": " in line:
            key, value = line.split(": ", 1)
            out[key] = float(value)
    return out


def official(pope: Path, rng: random.Random) -> dict:
    folder = HERE / "official"
    folder.mkdir(exist_ok=True)
    (folder / "example.json").write_bytes(_git_bytes(pope, "HEAD:answer/example.json"))
    source = _git_show(pope, "HEAD:evaluate.py")
    goldens: dict = {}
    for split in ("random", "popular", "adversarial"):
        whole = _git_bytes(pope, f"HEAD:output/coco/coco_pope_{split}.json")
        lines = whole.splitlines(keepends=True)
        (folder / f"coco_pope_{split}_head.json").write_bytes(b"".join(lines[:N]))
    first = folder / "coco_pope_random_first.json"
    first.write_bytes(_git_bytes(pope, "HEAD:output/coco/coco_pope_random.json").splitlines(keepends=True)[0])
    goldens["example.json+coco_pope_random_first.json"] = run_pope_evaluate(source, folder / "example.json", first)
    questions = [json.loads(line) for line in (folder / "coco_pope_random_head.json").read_text().splitlines()]
    answers = folder / "answers_random.json"
    answers.write_text(
        "".join(json.dumps({"question": q["text"], "answer": a}) + "\n" for q, a in zip(questions, _answers(rng, N)))
    )
    goldens["answers_random.json+coco_pope_random_head.json"] = run_pope_evaluate(
        source, answers, folder / "coco_pope_random_head.json"
    )
    seem = _git_show(pope, "HEAD:output/seem/gqa/gqa_pope_seem_random.json")
    items = json.loads(seem)
    assert json.dumps(items, indent=4) == seem.rstrip("\n"), "the SEEM file's layout is not json.dumps(indent=4)"
    (folder / "gqa_pope_seem_random_head.json").write_text(json.dumps(items[:N], indent=4))
    return goldens


def three_splits(pope: Path, rng: random.Random) -> dict:
    folder = HERE / "three_splits"
    folder.mkdir(exist_ok=True)
    source = _git_show(pope, "HEAD:evaluate.py")
    with_split, goldens = [], {}
    for split in ("random", "popular", "adversarial"):
        head = HERE / "official" / f"coco_pope_{split}_head.json"
        questions = [json.loads(line) for line in head.read_text().splitlines()]
        answers = _answers(rng, N)
        with_split += [{"question_id": q["question_id"], "split": split, "text": a} for q, a in zip(questions, answers)]
        with tempfile.TemporaryDirectory() as tmp:
            by_order = Path(tmp) / "answers.json"
            by_order.write_text("".join(json.dumps({"question": q["text"], "answer": a}) + "\n" for q, a in zip(questions, answers)))
            goldens[f"coco_pope_{split}_head"] = run_pope_evaluate(source, by_order, head)
    (folder / "answers_all_splits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in with_split))
    no_split = [{k: v for k, v in r.items() if k != "split"} for r in with_split]
    (folder / "answers_no_split.jsonl").write_text("".join(json.dumps(r) + "\n" for r in no_split))
    return goldens


def _lmms_docs(split: str) -> list[dict]:
    """lmms-lab/POPE rows (image left out, as the logger leaves multimodal fields out), from the COCO heads."""
    head = HERE / "official" / f"coco_pope_{split}_head.json"
    rows = [json.loads(line) for line in head.read_text().splitlines()]
    return [
        {
            "id": f"{split}-{r['question_id']}",
            "question_id": str(r["question_id"]),
            "question": r["text"],
            "answer": r["label"],
            "image_source": r["image"].removesuffix(".jpg"),
            "category": split,
        }
        for r in rows
    ]


def _sanitize(sub):  # lmms_eval.utils.sanitize_list, the same in every version read here
    if isinstance(sub, list):
        return [_sanitize(item) for item in sub]
    if isinstance(sub, tuple):
        return tuple(_sanitize(item) for item in sub)
    return str(sub)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lmms_sample(version: str, doc_id: int, doc: dict, task: str, response: str, process_results) -> dict:
    """One logged sample as ``evaluator.py`` builds it and ``save_results_samples`` writes it, per version."""
    prompt = f"{doc['question'].strip()}\nAnswer the question using a single word or phrase."
    gen_kwargs = {"max_new_tokens": 128, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False}
    split = "test" if task == "pope" else doc["category"]
    sample = {
        "doc_id": doc_id,
        "doc": dict(doc),
        "target": doc["answer"],
        "arguments": [prompt, gen_kwargs, doc_id, task, split],  # req.args without the doc_to_visual function
        "resps": [[response]],
        "filtered_resps": [response],
    }
    if version == "0.7.3":
        sample["token_counts"] = [None]
    sample["doc_hash"] = _hash(json.dumps(doc, indent=2, ensure_ascii=False))
    if version == "v0.3.0":
        sample["prompt_hash"], sample["target_hash"] = _hash(prompt), _hash(doc["answer"])
    sample.update(process_results(doc, [response]))
    # EvaluationTracker.save_results_samples
    sample["input"] = sample["arguments"][0]
    sample["resps"] = _sanitize(sample["resps"])
    sample["filtered_resps"] = _sanitize(sample["filtered_resps"])
    if version == "v0.3.0":
        sample["arguments"] = dict(enumerate(sample["arguments"][1]))
        sample["target"] = str(sample["target"])
        return sample
    if version == "0.7.3":
        if isinstance(sample["resps"], list) and len(sample["resps"]) == 1:
            sample["resps"] = sample["resps"][0]
        if isinstance(sample["filtered_resps"], list) and len(sample["filtered_resps"]) == 1:
            sample["filtered_resps"] = sample["filtered_resps"][0]
        if sample["resps"] == sample["filtered_resps"] or (
            isinstance(sample["resps"], list) and len(sample["resps"]) == 1 and sample["resps"][0] == sample["filtered_resps"]
        ):
            sample.pop("resps")
    elif sample["filtered_resps"] == sample["resps"][0] or sample["filtered_resps"] == sample["resps"]:
        sample.pop("resps")
    sample["target"] = str(sample["target"])
    sample.pop("arguments")
    sample.pop("doc")
    return sample


def lmms_eval(peers: Path, rng: random.Random) -> dict:
    sources = {tag: _git_show(peers / "lmms-eval", f"{tag}:lmms_eval/tasks/pope/utils.py") for tag in LMMS_EVAL_TAGS}
    wheel = peers / f"lmms_eval-{PINS['lmms-eval']}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        sources["0.7.3"] = archive.read("lmms_eval/tasks/pope/utils.py").decode()
    plan = {  # version -> tasks logged in that layout
        "v0.3.0": ["pope_random", "pope"],
        "v0.6": ["pope_pop", "pope"],
        "0.7.3": ["pope_random", "pope_pop", "pope_adv"],
    }
    goldens: dict = {}
    for version, tasks in plan.items():
        module: dict = {}
        exec(compile(sources[version], f"lmms_eval {version} tasks/pope/utils.py", "exec"), module)  # noqa: S102
        folder = HERE / "lmms-eval" / version
        folder.mkdir(parents=True, exist_ok=True)
        for task in tasks:
            splits = list(TASKS) if task == "pope" else [s for s, t in TASKS.items() if t == task]
            docs = [doc for split in splits for doc in _lmms_docs(split)]
            samples = [
                lmms_sample(version, i, doc, task, response, module["pope_process_results"])
                for i, (doc, response) in enumerate(zip(docs, _answers(rng, len(docs))))
            ]
            path = folder / f"{DATE}_samples_{task}.jsonl"
            path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), encoding="utf-8")
            logged = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            goldens[f"{version}/{path.name}"] = {
                metric: module[f"pope_aggregate_{metric.removeprefix('pope_')}"]([s[metric] for s in logged])
                for metric in ("pope_accuracy", "pope_precision", "pope_recall", "pope_f1_score", "pope_yes_ratio")
            }
    return goldens


def vlmevalkit(peers: Path, rng: random.Random) -> dict:
    import numpy as np
    import pandas as pd

    repo = peers / "VLMEvalKit"
    file_source = (repo / "vlmeval" / "smp" / "file.py").read_text()
    misc = (repo / "vlmeval" / "smp" / "misc.py").read_text()
    yorn = (repo / "vlmeval" / "dataset" / "utils" / "yorn.py").read_text()
    sys.modules.setdefault("validators", types.SimpleNamespace(url=lambda _f: False))  # load() asks; no URLs here
    namespace: dict = {"np": np, "pd": pd, "json": json, "csv": __import__("csv"), "pickle": __import__("pickle")}
    namespace["NumpyEncoder"] = json.JSONEncoder
    namespace["logger"] = types.SimpleNamespace(warning=print)
    exec(_functions(file_source, {"dump", "load"}), namespace)  # noqa: S102 - the peer's own code
    exec(_functions(misc, {"process_punctuation"}), namespace)  # noqa: S102
    exec(_functions(yorn, {"YOrN_Extraction", "POPE_rating"}), namespace)  # noqa: S102
    dump, peer_load = namespace["dump"], namespace["load"]

    def load(f, fmt=None):  # VLMEvalKit's load, a .json's list as a frame (its own evaluate cannot index a list)
        data = peer_load(f, fmt)
        return pd.DataFrame(data) if isinstance(data, list) else data

    namespace["load"] = load  # what POPE_rating calls
    rows = []
    categories = ["random", "popular", "adversarial", "adversarial,popular,random", "popular,random"]
    for split in ("random", "popular", "adversarial"):
        head = HERE / "official" / f"coco_pope_{split}_head.json"
        rows += [json.loads(line) for line in head.read_text().splitlines()][: N // 2]
    predictions = _answers(rng, len(rows))
    predictions[3] = None  # an empty cell: NaN in the frame, str(nan) = "nan" when scored
    frame = pd.DataFrame(
        {
            "index": range(len(rows)),
            "question": [r["text"] for r in rows],
            "answer": ["Yes" if r["label"] == "yes" else "No" for r in rows],
            "category": [categories[i % len(categories)] for i in range(len(rows))],
            "image_path": [r["image"] for r in rows],
            "prediction": predictions,
        }
    )
    folder = HERE / "vlmevalkit"
    folder.mkdir(exist_ok=True)
    goldens: dict = {}
    for suffix in ("xlsx", "tsv", "json"):
        path = folder / f"llava_POPE.{suffix}"
        dump(frame, str(path))
        with tempfile.TemporaryDirectory() as tmp:
            data = load(str(path))
            data["prediction"] = [str(x) for x in data["prediction"]]
            data["extracted"] = [namespace["YOrN_Extraction"](p) for p in data["prediction"]]
            storage = str(Path(tmp) / f"llava_POPE_auxmatch.{suffix}")
            dump(data, storage)
            data = load(storage)
            data["score"] = data["answer"] == data["extracted"]
            dump(data, storage)
            rating = namespace["POPE_rating"](storage)
        goldens[path.name] = {
            row["split"]: {key: float(row[key]) for key in ("Overall", "acc", "precision", "recall")}
            for _, row in rating.iterrows()
        }
    return goldens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, required=True, help="folder with the peers' sources (see the docstring)")
    peers = parser.parse_args().peers
    for name in ("POPE", "VLMEvalKit"):
        head = subprocess.run(
            ["git", "-C", str(peers / name), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert head == PINS[name], f"{name} is at {head}, pinned {PINS[name]}"
    rng = random.Random(20261207)
    document = {
        "pins": {**PINS, "lmms-eval tags": list(LMMS_EVAL_TAGS)},
        "generator": "tests/golden/pope_files/make_goldens.py",
        "official": official(peers / "POPE", rng),
        "three_splits": three_splits(peers / "POPE", rng),
        "lmms-eval": lmms_eval(peers, rng),
        "vlmevalkit": vlmevalkit(peers, rng),
    }
    (HERE / "goldens.json").write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {HERE / 'goldens.json'}")


if __name__ == "__main__":
    main()
