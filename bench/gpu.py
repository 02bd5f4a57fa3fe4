"""Prepared accelerator benchmark at LLaVA-1.5-7B geometry (run it whenever a GPU machine is at hand).

A randomly initialised LLaVA built from config — CLIP ViT-L/14-336 geometry (1024 wide, 24 layers, patch 14,
336 px: 576 image tokens) and a 32-layer 4096-wide Llama (FFN 11008), bf16; one head count (32) for both towers
and mmdiag's small word vocabulary (``mmdiag.zoo.models.new_llava``), so the figures are the towers' cost, not a
32k-vocabulary head's. It is saved with ``save_pretrained`` and loaded back by path with ``device_map="auto"``
over every visible device, as a user's checkpoint would be. One JSON line per figure:

- ``load``: seconds to load by path with ``device_map="auto"``, and the devices the weights landed on;
- ``attention_overhead``: the attention probe's measuring loop (attention rows streamed per layer, plus its
  blind-answer forwards on the mean-colour and noise images) vs one plain SDPA forward per image (time and
  peak memory ratios; ``bench/attention_overhead.py`` isolates the capture alone);
- ``yes_no``: shared-prefix yes/no scoring vs ``generate(max_new_tokens=1)`` per question (ratio, identical
  decisions) and vs one plain forward of image + prompt per image;
- ``audit_images_per_s``: the hallucination probe's measuring loop (real, edited and blind images) in scenes/s.

    python bench/gpu.py [--images 8] [--json-lines out.jsonl]
    python bench/gpu.py --tiny          # a small geometry on the CPU: checks the script itself in seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def emit(lines: list[dict], figure: str, **values: object) -> None:
    line = {"figure": figure, **values}
    lines.append(line)
    print(json.dumps(line), flush=True)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(run) -> float:  # noqa: ANN001
    sync()
    start = time.perf_counter()
    run()
    sync()
    return time.perf_counter() - start


def main() -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--tiny", action="store_true", help="a small geometry (CPU smoke run of this script)")
    parser.add_argument("--json-lines", type=Path, default=None)
    parser.add_argument("--record", action="store_true", help="write the figures to bench/results (the docs read them)")
    args = parser.parse_args()

    from attention_overhead import peak_memory
    from yes_no_scoring import QUESTIONS, one_forward_per_image, per_question_generate, shared_prefix

    from mmdiag.adapters import load_adapter
    from mmdiag.adapters.hf_loading import LoadOptions
    from mmdiag.probes.registry import ProbeRegistry
    from mmdiag.sources.scenes import SceneSource
    from mmdiag.zoo.models import Geometry, new_llava

    lines: list[dict] = []
    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda" if cuda else "cpu")
    if args.tiny:
        geometry = Geometry(
            resolution=56,
            patch=14,
            vision_hidden=64,
            vision_layers=1,
            text_hidden=128,
            text_layers=2,
            text_ffn=256,
            heads=4,
        )
    else:
        geometry = Geometry(
            resolution=336,
            patch=14,
            vision_hidden=1024,
            vision_layers=24,
            text_hidden=4096,
            text_layers=32,
            text_ffn=11008,
            heads=32,
        )
    name = torch.cuda.get_device_name() if cuda else "cpu"
    emit(
        lines,
        "device",
        name=name,
        visible_devices=torch.cuda.device_count() if cuda else 0,
        geometry=vars(geometry),
        dtype="bfloat16" if cuda else "float32",
    )
    with tempfile.TemporaryDirectory() as tmp:
        with torch.device(device):
            model, processor = new_llava(geometry, "mlp", seed=0, vision_state=None)
        if cuda:
            model = model.to(torch.bfloat16)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        emit(lines, "parameters", count=sum(p.numel() for p in model.parameters()))
        del model
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        options = LoadOptions(device_map="auto", dtype=torch.bfloat16) if cuda else LoadOptions()
        holder: dict = {}
        seconds = timed(lambda: holder.update(adapter=load_adapter(tmp, options=options)))
        adapter = holder["adapter"]
        devices = sorted({str(d) for d in (getattr(adapter.model, "hf_device_map", None) or {}).values()}) or [
            str(adapter.device)
        ]
        emit(lines, "load", seconds=round(seconds, 2), device_map="auto" if cuda else None, devices=devices)

        source = SceneSource()
        probe = ProbeRegistry().create("attention", resolution=geometry.resolution, untrained_baseline=False)
        examples = probe.examples(source.examples(args.images, 0, probe.data_request(), id_prefix="attention"), adapter)
        probe.setup(adapter)
        images = [ex.example.image(geometry.resolution) for ex in examples]
        plain_batches = [adapter.prepare([image], [QUESTIONS[0]]) for image in images]

        def plain() -> None:  # one SDPA forward per image, as the probe reads one example per forward
            for batch in plain_batches:
                adapter.forward(batch)

        plain()  # warm-up
        probe.run_batch(adapter, examples[:1])
        plain_s = timed(plain)
        probe_s = timed(lambda: probe.run_batch(adapter, examples))
        plain_mib = peak_memory(plain)
        probe_mib = peak_memory(lambda: probe.run_batch(adapter, examples))
        emit(
            lines,
            "attention_overhead",
            images=len(images),
            plain_s=round(plain_s, 3),
            probe_s=round(probe_s, 3),
            time_ratio=round(probe_s / plain_s, 2),
            plain_peak_mib=round(plain_mib, 1),
            probe_peak_mib=round(probe_mib, 1),
            memory_ratio=round(probe_mib / max(plain_mib, 1e-9), 2),
        )

        baseline: dict = {}
        ours: dict = {}
        base_s = timed(lambda: baseline.update(d=per_question_generate(adapter, images, QUESTIONS)))
        ours_s = timed(lambda: ours.update(d=shared_prefix(adapter, images, QUESTIONS)))
        floor_s = timed(lambda: one_forward_per_image(adapter, images, QUESTIONS[0]))
        emit(
            lines,
            "yes_no",
            questions=len(images) * len(QUESTIONS),
            generate_per_question_s=round(base_s, 3),
            shared_prefix_s=round(ours_s, 3),
            throughput_ratio=round(base_s / ours_s, 2),
            identical_decisions=bool((baseline["d"] == ours["d"]).all()),
            one_forward_per_image_s=round(floor_s, 3),
            cost_vs_one_forward=round(ours_s / floor_s, 2),
        )

        hallucination = ProbeRegistry().create("hallucination", resolution=geometry.resolution)
        data = source.examples(args.images, 0, hallucination.data_request(), id_prefix="hallucination")
        scenes = hallucination.examples(data, adapter)
        hallucination.run_batch(adapter, scenes[:1])  # warm-up
        seconds = timed(lambda: [hallucination.run_batch(adapter, scenes[i : i + 8]) for i in range(0, len(scenes), 8)])
        emit(
            lines,
            "audit_images_per_s",
            probe="hallucination",
            scenes=len(scenes),
            seconds=round(seconds, 2),
            scenes_per_s=round(len(scenes) / seconds, 3),
        )
    if args.json_lines:
        args.json_lines.write_text("".join(json.dumps(line) + "\n" for line in lines))
    if args.record:
        from record import figure, record

        record(
            "gpu",
            [
                figure(line["figure"], None, "", "", ", ".join(f"{k} {v}" for k, v in line.items() if k != "figure"))
                for line in lines
            ],
        )
    return lines


if __name__ == "__main__":
    main()
