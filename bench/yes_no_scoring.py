"""Yes/no scoring of several questions per image (each image read once, its questions packed after it) vs
``generate()`` per question.

LLaVA-1.5 geometry: 336 px images, patch 14 -> 576 image tokens, a small random Llama LLM. Baseline:
``model.generate(max_new_tokens=1, output_scores=True)`` once per question (how evaluation scripts ask POPE),
decision P(yes) > P(no) from its first-token scores. mmdiag: ``answer_scores_per_image`` — every image of the call
in one batch, each image + prompt prefix once, its questions' remaining tokens packed after it (position ids that
restart, a mask that keeps each question blind to the others). Both must give identical decisions.

Reported per questions-per-image count (6 = POPE's 3 present + 3 absent; 12 = the whole vocabulary), each time the
median of ``--repeats`` runs: the throughput ratio (target >= 6x) and the cost per image against one plain forward
of image + prompt (target <= 1.3x: the floor for any method that reads each image once). The two targets meet in
``bound_ratio`` = questions per image x (generate per question / one forward per image): the most any
read-the-image-once method can gain over the baseline at that count.

    python bench/yes_no_scoring.py [--images 8 --layers 4 --hidden 512 --questions 6,12 --repeats 3 --json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mmdiag.adapters import load_adapter
from mmdiag.adapters.generative import yes_no_token_ids
from mmdiag.scenes.generate import generate_scenes
from mmdiag.scenes.questions import PRESENCE_TEMPLATE
from mmdiag.scenes.render import render
from mmdiag.scenes.vocabulary import OBJECT_TYPES

QUESTIONS = [PRESENCE_TEMPLATE.format(object=name) for name in OBJECT_TYPES]


def per_question_generate(adapter, images, questions):  # noqa: ANN001, ANN201
    """The baseline: one ``generate`` call per (image, question), decision from the first-token scores."""
    yes_ids, no_ids = yes_no_token_ids(adapter.tokenizer)
    out = []
    for image in images:
        for question in questions:
            batch = adapter.prepare([image], [question], padding_side="left")
            gen = adapter.model.generate(
                **batch.inputs, max_new_tokens=1, do_sample=False, output_scores=True, return_dict_in_generate=True
            )
            probs = torch.softmax(gen.scores[0][0].float(), dim=-1)
            out.append(bool(probs[yes_ids].sum() > probs[no_ids].sum()))
    return np.array(out)


def shared_prefix(adapter, images, questions):  # noqa: ANN001, ANN201
    scores = adapter.answer_scores_per_image(images, [questions] * len(images))
    return np.concatenate([s.p_yes > s.p_no for s in scores])


def one_forward_per_image(adapter, images, question):  # noqa: ANN001, ANN201
    """The lower bound for any method that reads each image once: one forward of image + one prompt, per image."""
    for image in images:
        adapter.forward(adapter.prepare([image], [question], padding_side="right"))


def interleaved(repeats: int, works: dict) -> dict[str, tuple[float, object]]:  # noqa: ANN001
    """Median seconds of ``repeats`` rounds, each running every ``works`` entry once in turn (drift on a shared
    machine hits them alike), with each entry's last result."""
    times: dict[str, list[float]] = {name: [] for name in works}
    results: dict[str, object] = {}
    for _ in range(repeats):
        for name, work in works.items():
            start = time.perf_counter()
            results[name] = work()
            times[name].append(time.perf_counter() - start)
    return {name: (float(np.median(times[name])), results[name]) for name in works}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--resolution", type=int, default=336)
    parser.add_argument("--questions", default="6,12", help="questions per image, comma-separated (at most 12)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--record", action="store_true", help="write the figures to bench/results (the docs read them)")
    args = parser.parse_args()
    from mmdiag.zoo.models import Geometry, new_llava

    reports = []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        geometry = Geometry(
            resolution=args.resolution,
            patch=14,
            vision_hidden=64,
            vision_layers=1,
            text_hidden=args.hidden,
            text_layers=args.layers,
            text_ffn=args.hidden * 8 // 3,
            heads=8,
        )
        model, processor = new_llava(geometry, "mlp", seed=0, vision_state=None)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        adapter = load_adapter(tmp)
        images = [render(s, args.resolution) for s in generate_scenes(args.images, seed=0)]
        shared_prefix(adapter, images[:1], QUESTIONS)  # warm-up, untimed
        per_question_generate(adapter, images[:1], QUESTIONS[:1])
        for count in (int(c) for c in args.questions.split(",")):
            questions = QUESTIONS[:count]
            measured = interleaved(
                args.repeats,
                {
                    "floor": lambda: one_forward_per_image(adapter, images, QUESTIONS[0]),
                    "generate": lambda: per_question_generate(adapter, images, questions),  # noqa: B023 - run now
                    "packed": lambda: shared_prefix(adapter, images, questions),  # noqa: B023 - run now
                },
            )
            (floor_s, _), (base_s, baseline), (ours_s, ours) = (
                measured["floor"],
                measured["generate"],
                measured["packed"],
            )
            n = len(images) * count
            report = {
                "questions": n,
                "questions_per_image": count,
                "image_tokens": (args.resolution // 14) ** 2,
                "generate_per_question_s": round(base_s, 3),
                "packed_s": round(ours_s, 3),
                "throughput_ratio": round(base_s / ours_s, 2),
                "identical_decisions": bool((baseline == ours).all()),
                "one_forward_per_image_s": round(floor_s, 3),
                "cost_vs_one_forward": round(ours_s / floor_s, 2),
                "bound_ratio": round(base_s / floor_s, 2),
                "repeats": args.repeats,
                "threads": torch.get_num_threads(),
            }
            reports.append(report)
            print(json.dumps(report), flush=True)
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in reports))
    if args.record:
        from record import figure, record

        figures = []
        for r in reports:
            k = r["questions_per_image"]
            figures += [
                figure(
                    f"{k} questions per image: throughput vs generate(max_new_tokens=1) per question",
                    r["throughput_ratio"],
                    "×",
                    ">= 6×",
                    f"{r['generate_per_question_s']} s vs {r['packed_s']} s for {r['questions']} questions; identical "
                    f"decisions: {r['identical_decisions']}; at most {r['bound_ratio']}× for any method that reads "
                    "each image once",
                ),
                figure(
                    f"{k} questions per image: cost per image vs one forward of image + prompt",
                    r["cost_vs_one_forward"],
                    "×",
                    "<= 1.3×",
                    f"{r['image_tokens']} image tokens, median of {r['repeats']}",
                ),
            ]
        record("yes_no_scoring", figures)


if __name__ == "__main__":
    main()
