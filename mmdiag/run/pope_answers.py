"""``mmdiag pope --model``: a model answers POPE question files (logit decisions, resumable), for
:func:`mmdiag.metrics.pope_files.score_pope` to score."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mmdiag.adapters.generative import ScoreRequest
from mmdiag.data_paths import resolve_inside
from mmdiag.errors import MmdiagError
from mmdiag.metrics.pope_files import read_answers
from mmdiag.metrics.pope_io import read_pope_jsonl
from mmdiag.sources.photos import load_image

IMAGES_PER_BATCH = 8  # the default, and ``"auto"``'s choice where memory does not limit a batch (no CUDA device)


def answer_pope(
    adapter: Any,
    question_file: str | Path,
    answers_path: str | Path,
    image_dir: str | Path | None = None,
    progress: bool = True,
    batch_size: int | str = IMAGES_PER_BATCH,
) -> Path:
    """Run a generative model on one POPE question file, appending one JSON line per answer to ``answers_path``.

    Decisions come from first-token logits (P(yes) > P(no)), with every question about one image sharing its
    encoded image and prompt prefix; the answer is written as "Yes"/"No" with ``p_yes``/``p_no``. Images are
    read from ``image_dir`` (default: the question file's folder, or its ``images/`` subfolder as
    ``mmdiag scenes`` writes it); an image path that leaves that folder (``..``, absolute, a symlink out) is a
    one-line error and is never read. Questions already answered in ``answers_path`` are skipped, so a killed run
    resumes where it stopped.

    ``batch_size`` images are scored together (all their questions in one batched call; ``"auto"``: on a CUDA
    device the largest that fits, halving on out-of-memory; elsewhere memory does not limit a batch and the default
    ``IMAGES_PER_BATCH`` is kept, as ``mmdiag audit --batch-size auto`` keeps the suite's: on 2 CPU cores bigger
    batches only cost more per image, ``bench/pope_cli.py``), read as they are needed and written after each batch;
    decisions are those of one image at a time (the same prompts; probabilities up to floating-point summation
    order).
    """
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
    items = list(by_image.items())
    bar = tqdm(total=len(items), desc=Path(question_file).stem, disable=not progress, unit="image")

    def score(chunk: list[tuple[Path, list[Any]]]) -> list[Any]:
        return adapter.answer_scores_batch([ScoreRequest(load_image(p), [q.text for q in qs]) for p, qs in chunk])

    with answers_path.open("a", encoding="utf-8") as sink:

        def write(chunk: list[tuple[Path, list[Any]]], scored: list[Any]) -> None:
            for (_, questions), scores in zip(chunk, scored):
                for q, p_yes, p_no in zip(questions, scores.p_yes, scores.p_no):
                    row = {
                        "question_id": q.question_id,
                        "answer": "Yes" if p_yes > p_no else "No",
                        "p_yes": float(p_yes),
                        "p_no": float(p_no),
                    }
                    sink.write(json.dumps(row) + "\n")
            sink.flush()
            bar.update(len(chunk))

        start = 0
        if batch_size == "auto" and getattr(getattr(adapter, "device", None), "type", None) != "cuda":
            batch_size = IMAGES_PER_BATCH
        if batch_size == "auto" and items:
            from mmdiag.run.harness_flags import find_batch_size

            first: dict[int, list[Any]] = {}
            size = find_batch_size(lambda n: first.__setitem__(n, score(items[:n])), largest=len(items))
            write(items[:size], first[size])
            start = size
        else:
            size = int(batch_size)
        for begin in range(start, len(items), size):
            chunk = items[begin : begin + size]
            write(chunk, score(chunk))
    bar.close()
    return answers_path
