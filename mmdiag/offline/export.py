"""``mmdiag export``: the suite's questions and images as another harness runs them.

The probes that need only answers run with a :class:`~mmdiag.offline.adapters.RecordingAdapter`, so the export
holds exactly what ``mmdiag audit`` would ask: POPE questions of every split, the counterfactual pairs (removed,
mirrored, recoloured), the blind variants (blank, mean colour, noise), relation questions, free-text answers and
caption prompts. Written into ``DIR``:

* ``images/<hash>.png`` and ``items.jsonl`` (one item per line: index, image, question, kind, max_new_tokens);
* ``export.json``: the audit configuration, so ``mmdiag audit --answers FILE --export DIR`` asks the same;
* ``lmms-eval/``: a task folder for ``lmms-eval --include_path DIR/lmms-eval --tasks mmdiag_audit --log_samples``
  (one task per answer length, grouped; the local items as its dataset);
* ``vlmevalkit/MMDIAG.tsv``: VLMEvalKit's dataset layout (index, base64 image, question, ...).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from mmdiag.data_paths import absolute_params
from mmdiag.errors import ConfigError, write_error
from mmdiag.offline.adapters import EXPORT_FILE, ITEMS_FILE, NOT_EXPORTED, RecordingAdapter
from mmdiag.offline.items import YESNO, ExportItem
from mmdiag.results import canonical_hash
from mmdiag.run.plan import AuditPlan

LMMS_EVAL_TASK = "mmdiag_audit"
# the question as mmdiag asks it: a suffix such as lmms-eval POPE's "\nAnswer the question using a single word or
# phrase." goes in the task YAML's post_prompt, where a harness user sets it (it changes what is measured)
YESNO_POST_PROMPT = ""


@dataclass(frozen=True)
class ExportSummary:
    """What an export holds."""

    folder: Path
    items: int
    images: int
    by_kind: dict[str, int]
    probes: tuple[str, ...]
    notes: tuple[str, ...]


def record_items(plan: AuditPlan, recorder: RecordingAdapter) -> None:
    """Run every probe of ``plan`` with ``recorder`` (no run folder, nothing measured): it records each question."""
    config, source = plan.config, plan.source
    for probe in plan.probes:
        if probe.unsupported_reason(recorder) or probe.unusable_data(source):
            continue
        probe.setup(recorder)
        data = source.examples(config.n_examples, config.seed, probe.data_request(), id_prefix=probe.name)
        work = probe.examples(data, recorder)
        size = max(1, config.batch_size)
        for start in range(0, len(work), size):
            probe.run_batch(recorder, work[start : start + size])


def export_audit(plan: AuditPlan, recorder: RecordingAdapter, folder: str | Path) -> ExportSummary:
    """Record what ``plan`` asks (``plan`` built with ``recorder`` as its model) and write the export."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} exists and is not empty: export into a new folder")
    record_items(plan, recorder)
    items = recorder.export_items()
    if not items:
        raise ConfigError("the suite asks no question a served model could answer: run hallucination or relations")
    notes = list(plan.notes)
    if recorder.not_exported:
        notes.append(f"{recorder.not_exported} yes/no questions left out: their input {NOT_EXPORTED}")
    # the data's paths made absolute: ``audit --answers`` re-makes the same items from any working folder
    config = replace(plan.config, data_params=absolute_params(plan.config.data_params)).to_dict()
    manifest = {
        "mmdiag_export": 1,
        "config": config,
        "config_hash": canonical_hash(plan.config.identity()),
        "probes": [p.name for p in plan.probes],
        "items": len(items),
        "notes": notes,
    }
    try:
        (folder / "images").mkdir(parents=True, exist_ok=True)
        for image_id, image in recorder.images.items():
            image.save(folder / "images" / f"{image_id}.png")
        _write_lines(folder / ITEMS_FILE, (json.dumps(item.to_dict()) for item in items))
        (folder / EXPORT_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        write_lmms_eval_task(folder, items)
        write_vlmevalkit_tsv(folder, items, recorder)
    except OSError as err:
        raise write_error(folder, err, "export into a writable folder with free space") from err
    by_kind: dict[str, int] = {}
    for item in items:
        name = item.kind if item.kind == YESNO else f"{item.kind}:{item.max_new_tokens}"
        by_kind[name] = by_kind.get(name, 0) + 1
    return ExportSummary(folder, len(items), len(recorder.images), by_kind, tuple(manifest["probes"]), tuple(notes))


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def _task_name(item: ExportItem) -> str:
    return f"{LMMS_EVAL_TASK}_{YESNO}" if item.kind == YESNO else f"{LMMS_EVAL_TASK}_{item.kind}_{item.max_new_tokens}"


LMMS_EVAL_UTILS = '''"""Written by mmdiag export: its items as an lmms-eval task, keyed by the export's index."""

from pathlib import Path

from PIL import Image

EXPORT = Path(__file__).resolve().parents[2]


def doc_to_visual(doc):
    return [Image.open(EXPORT / doc["image"]).convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', '')}"


def process_results(doc, results):
    return {"mmdiag_answer": {"index": doc["index"], "answer": results[0]}}


def aggregate(results):
    return len(results)
'''


def _task_yaml(task: str, data_file: Path, max_new_tokens: int, post_prompt: str) -> str:
    return "\n".join(
        [
            "dataset_path: json",
            "dataset_kwargs:",
            "  data_files:",
            f"    test: {json.dumps(str(data_file))}",
            f"task: {task}",
            "test_split: test",
            "output_type: generate_until",
            "doc_to_visual: !function utils.doc_to_visual",
            "doc_to_text: !function utils.doc_to_text",
            'doc_to_target: "kind"',
            "generation_kwargs:",
            f"  max_new_tokens: {max_new_tokens}",
            "  temperature: 0",
            "  do_sample: false",
            "  num_beams: 1",
            "process_results: !function utils.process_results",
            "metric_list:",
            "  - metric: mmdiag_answer",
            "    aggregation: !function utils.aggregate",
            "    higher_is_better: true",
            "lmms_eval_specific_kwargs:",
            "  default:",
            '    pre_prompt: ""',
            f"    post_prompt: {json.dumps(post_prompt)}",
            "metadata:",
            "  - version: 0.0",
            "",
        ]
    )


def write_lmms_eval_task(folder: Path, items: list[ExportItem]) -> Path:
    """``folder/lmms-eval/mmdiag_audit/``: one task per answer length, a group ``mmdiag_audit`` over them, and their
    items as local JSON-lines datasets; questions go as mmdiag asks them (no prompt suffix)."""
    task_dir = folder / "lmms-eval" / LMMS_EVAL_TASK
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "utils.py").write_text(LMMS_EVAL_UTILS, encoding="utf-8")
    tasks: dict[str, list[ExportItem]] = {}
    for item in items:
        tasks.setdefault(_task_name(item), []).append(item)
    for task, members in tasks.items():
        data_file = (task_dir / f"{task}.jsonl").resolve()
        _write_lines(data_file, (json.dumps(item.to_dict()) for item in members))
        first = members[0]
        tokens = first.max_new_tokens  # yes/no: 1, mmdiag's own first-token decision (longer answers parse too)
        post_prompt = YESNO_POST_PROMPT if first.kind == YESNO else ""
        (task_dir / f"{task}.yaml").write_text(_task_yaml(task, data_file, tokens, post_prompt), encoding="utf-8")
    group = "\n".join([f"group: {LMMS_EVAL_TASK}", "task:", *[f"  - {t}" for t in tasks], ""])
    (task_dir / f"{LMMS_EVAL_TASK}.yaml").write_text(group, encoding="utf-8")
    return task_dir


def write_vlmevalkit_tsv(folder: Path, items: list[ExportItem], recorder: RecordingAdapter) -> Path:
    """``folder/vlmevalkit/MMDIAG.tsv``: VLMEvalKit's dataset layout, the image as base64 PNG in each row."""
    out = folder / "vlmevalkit" / "MMDIAG.tsv"
    out.parent.mkdir(parents=True, exist_ok=True)
    encoded: dict[str, str] = {}
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writerow(["index", "image", "question", "kind", "max_new_tokens"])
        for item in items:
            if item.image_id not in encoded:
                buffer = io.BytesIO()
                recorder.images[item.image_id].save(buffer, format="PNG")
                encoded[item.image_id] = base64.b64encode(buffer.getvalue()).decode("ascii")
            writer.writerow([item.index, encoded[item.image_id], item.question, item.kind, item.max_new_tokens])
    return out


def export_lines(summary: ExportSummary) -> list[str]:
    """What the CLI prints after an export."""
    kinds = ", ".join(f"{n} {kind}" for kind, n in summary.by_kind.items())
    folder = summary.folder
    return [
        f"wrote {summary.items} items ({kinds}) on {summary.images} images to {folder} "
        f"(probes: {', '.join(summary.probes)})",
        *[f"note: {note}" for note in summary.notes],
        f"lmms-eval: lmms-eval --model ... --include_path {folder}/lmms-eval --tasks {LMMS_EVAL_TASK} --log_samples",
        f"VLMEvalKit: {folder}/vlmevalkit/MMDIAG.tsv (index, base64 image, question)",
        f"then: mmdiag audit --answers <the answers or sample logs> --export {folder} --out RUN",
    ]
