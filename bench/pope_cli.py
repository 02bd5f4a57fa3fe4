"""``mmdiag pope --model`` at LLaVA-1.5 geometry: the marginal cost per image through the CLI against the floor, one
forward of each image with its prompt prefix alone (no question tokens), and against ``generate`` per question.

A random 4-layer, 512-wide Llama behind a 336 px vision tower (576 image tokens), saved and loaded by path as a user
would. A POPE question file of ``--images`` images with 6 questions each is answered through ``mmdiag.cli.main``
(model loading included) at ``--images`` and at 2 images; the difference over the extra images is the marginal
cost per image, which leaves out loading and start-up. Floors, on the same images: the prompt prefix shared by an
image's questions (image tokens and the template around them), one image per forward and 8 per forward; and the
exact-work floor: that prefix followed by each question's tokens after it (the packed row's tokens), one image per
forward, under the plain causal mask (the fastest attention kernel; packing needs a 4D mask). Every method that
gives each question its exact answer runs at least these tokens through every layer, so ``generate`` per question
over this floor bounds the throughput any exact method can reach on this geometry. Decisions of
``--batch-size 8`` and ``--batch-size 1`` are compared question by question.

    python bench/pope_cli.py [--images 10 --repeats 3 --record]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

QUESTIONS = 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="write the figures to bench/results (the docs read them)")
    args = parser.parse_args()
    from yes_no_scoring import QUESTIONS as TEXTS
    from yes_no_scoring import per_question_generate

    from mmdiag.adapters import load_adapter
    from mmdiag.adapters.packed_questions import common_prefix
    from mmdiag.cli import main as cli
    from mmdiag.scenes.generate import generate_scenes
    from mmdiag.scenes.render import render
    from mmdiag.zoo.models import Geometry, new_llava

    geometry = Geometry(
        resolution=336, patch=14, vision_hidden=64, vision_layers=1, text_hidden=512, text_layers=4, text_ffn=1365,
        heads=8,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, processor = new_llava(geometry, "mlp", seed=0, vision_state=None)
        model.save_pretrained(root / "model")
        processor.save_pretrained(root / "model")
        images = [render(s, 336) for s in generate_scenes(args.images, seed=0)]
        (root / "data").mkdir()
        for i, image in enumerate(images):
            image.save(root / "data" / f"{i}.png")

        def question_file(n: int) -> Path:
            path = root / "data" / f"pope_{n}.jsonl"
            rows = [
                {
                    "question_id": i * QUESTIONS + k,
                    "image": f"{i}.png",
                    "text": TEXTS[k],
                    "label": "yes" if k % 2 else "no",
                }
                for i in range(n)
                for k in range(QUESTIONS)
            ]
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            return path

        files = {n: question_file(n) for n in (2, args.images)}

        def through_cli(n: int, batch: str, tag: str) -> tuple[float, dict]:
            out = root / f"answers-{tag}"
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                code = cli(["pope", "--model", str(root / "model"), "--questions", str(files[n]), "--answers", str(out),
                            "--batch-size", batch])  # fmt: skip
            seconds = time.perf_counter() - start
            assert code == 0
            answer_file = out / f"pope_{n}.answers.jsonl"
            rows = {r["question_id"]: r["answer"] for r in map(json.loads, answer_file.read_text().splitlines())}
            answer_file.unlink()
            return seconds, rows

        adapter = load_adapter(str(root / "model"))

        def prefix_only(per_forward: int) -> None:
            with torch.no_grad():
                for start in range(0, len(images), per_forward):
                    part = images[start : start + per_forward]
                    batch = adapter.prepare([im for im in part for _ in TEXTS[:QUESTIONS]],
                                            [t for _ in part for t in TEXTS[:QUESTIONS]])  # fmt: skip
                    shared = common_prefix(batch.input_ids, batch.attention_mask.sum(dim=1))
                    rows = list(range(0, len(part) * QUESTIONS, QUESTIONS))
                    inputs = adapter.image_inputs_of_rows(batch, rows)
                    adapter.model(input_ids=batch.input_ids[rows, :shared],
                                  attention_mask=batch.attention_mask[rows, :shared], **inputs)  # fmt: skip

        def exact_work() -> None:
            """One causal forward per image of the shared prefix + every question's own tokens (logits of the last)."""
            with torch.no_grad():
                for image in images:
                    batch = adapter.prepare([image] * QUESTIONS, TEXTS[:QUESTIONS], padding_side="right")
                    lengths = batch.attention_mask.sum(dim=1)
                    shared = common_prefix(batch.input_ids, lengths)
                    own = [batch.input_ids[k, shared : int(lengths[k])] for k in range(QUESTIONS)]
                    ids = torch.cat([batch.input_ids[0, :shared], *own])[None]
                    exact_tokens.append(ids.shape[1])
                    adapter.model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=1,
                                  **adapter.image_inputs_of_rows(batch, [0]))  # fmt: skip

        exact_tokens: list[int] = []
        through_cli(2, "8", "warm")  # warm-up, untimed
        times: dict[str, list[float]] = {}
        decisions: dict[str, dict] = {}
        for _ in range(args.repeats):
            for batch in ("1", "8"):
                small, _ = through_cli(2, batch, f"s{batch}")
                large, rows = through_cli(args.images, batch, f"l{batch}")
                times.setdefault(f"cli-{batch}", []).append((large - small) / (args.images - 2))
                decisions[batch] = rows
            for per_forward in (1, 8):
                start = time.perf_counter()
                prefix_only(per_forward)
                times.setdefault(f"prefix-{per_forward}", []).append((time.perf_counter() - start) / len(images))
            start = time.perf_counter()
            exact_work()
            times.setdefault("exact-1", []).append((time.perf_counter() - start) / len(images))
            start = time.perf_counter()
            per_question_generate(adapter, images[:2], TEXTS[:QUESTIONS])
            times.setdefault("generate", []).append((time.perf_counter() - start) / 2)
    median = {k: float(np.median(v)) for k, v in times.items()}
    generate_per_image = median.pop("generate")
    identical = decisions["1"] == decisions["8"]
    report = {
        "marginal_s_per_image": {k: round(v, 3) for k, v in median.items() if k.startswith("cli")},
        "prefix_only_s_per_image": {k: round(v, 3) for k, v in median.items() if k.startswith("prefix")},
        "generate_per_question_s_per_image": round(generate_per_image, 3),
        "cli8_over_prefix8": round(median["cli-8"] / median["prefix-8"], 2),
        "cli8_over_prefix1": round(median["cli-8"] / median["prefix-1"], 2),
        "cli1_over_prefix1": round(median["cli-1"] / median["prefix-1"], 2),
        "generate_over_cli8": round(generate_per_image / median["cli-8"], 2),
        "generate_over_cli1": round(generate_per_image / median["cli-1"], 2),
        "exact_work_s_per_image": round(median["exact-1"], 3),
        "exact_tokens_per_image": exact_tokens[0],
        "cli1_over_exact": round(median["cli-1"] / median["exact-1"], 2),
        "cli8_over_exact": round(median["cli-8"] / median["exact-1"], 2),
        "generate_over_exact": round(generate_per_image / median["exact-1"], 2),
        "identical_decisions": identical,
        "images": args.images,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(report))
    if args.record:
        from record import figure, record

        note = (
            f"576 image tokens, 6 questions per image, marginal over {args.images - 2} images, median of {args.repeats}"
        )
        record(
            "pope_cli",
            [
                figure(
                    "pope --model --batch-size 8: cost per image / prefix-only forward, 8 images per forward",
                    report["cli8_over_prefix8"],
                    "×",
                    "<= 1.3×",
                    note,
                ),  # fmt: skip
                figure(
                    "pope --model --batch-size 8: cost per image / prefix-only forward, one image per forward",
                    report["cli8_over_prefix1"],
                    "×",
                    "<= 1.3×",
                    note,
                ),  # fmt: skip
                figure(
                    "pope --model --batch-size 1 (one image at a time): cost per image / prefix-only forward",
                    report["cli1_over_prefix1"],
                    "×",
                    "",
                    note,
                ),  # fmt: skip
                figure(
                    "pope --model --batch-size 8: throughput vs generate(max_new_tokens=1) per question",
                    report["generate_over_cli8"],
                    "×",
                    ">= 6×",
                    f"identical decisions at batch 8 and 1: {identical}; {note}",
                ),  # fmt: skip
                figure(
                    "pope --model --batch-size 1: throughput vs generate(max_new_tokens=1) per question",
                    report["generate_over_cli1"],
                    "×",
                    "",
                    note,
                ),  # fmt: skip
                figure(
                    "exact-work floor (prefix + every question's own tokens, one causal forward per image): "
                    "generate per question / floor, the bound for any exact method",
                    report["generate_over_exact"],
                    "×",
                    "",
                    f"{report['exact_tokens_per_image']} tokens per image; {note}",
                ),  # fmt: skip
                figure(
                    "pope --model --batch-size 1: cost per image / exact-work floor",
                    report["cli1_over_exact"],
                    "×",
                    "",
                    note,
                ),  # fmt: skip
                figure(
                    "pope --model --batch-size 8: cost per image / exact-work floor",
                    report["cli8_over_exact"],
                    "×",
                    "",
                    note,
                ),  # fmt: skip
            ],
        )


if __name__ == "__main__":
    main()
