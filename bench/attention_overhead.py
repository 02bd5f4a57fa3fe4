"""Cost of the attention probe vs a plain forward vs eager ``output_attentions``, as ratios in one run.

LLaVA-1.5 geometry: 336 px images, patch 14 -> 24 x 24 = 576 image tokens, a small random Llama LLM.
Variants, each a single forward on the same batch:
  plain  - the model's default attention (SDPA), no hooks;
  probe  - the same forward with mmdiag's streamed attention rows, part reductions and sink tracking;
  eager  - eager attention with ``output_attentions=True`` (L x H x N x N materialised), the reference.
Time: median of interleaved repeats. Peak memory: tensor memory a variant allocates above what is
held before it (CUDA ``max_memory_allocated``; on CPU the profiler's allocation events). Targets (issue #5): probe
<= 1.15x the time and <= 1.10x the peak memory of plain.

    python bench/attention_overhead.py [--layers 4 --hidden 512 --repeats 7 --json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from mmdiag.adapters import load_adapter
from mmdiag.probes.attention import AttentionProbe


def build_model(folder: Path, image_size: int, patch: int, layers: int, hidden: int, heads: int) -> Path:
    """A random LLaVA of the given geometry (the zoo's builder: CLIP tower 64 x 1, Llama LLM), saved by path."""
    from mmdiag.zoo.models import Geometry, new_llava

    geometry = Geometry(
        resolution=image_size,
        patch=patch,
        vision_hidden=64,
        vision_layers=1,
        text_hidden=hidden,
        text_layers=layers,
        text_ffn=hidden * 8 // 3,
        heads=heads,
    )
    model, processor = new_llava(geometry, "mlp", seed=0, vision_state=None)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def peak_memory(run) -> float:  # noqa: ANN001
    """Peak tensor memory (MiB) a call allocates on top of what is held before it.

    CUDA: ``max_memory_allocated``. CPU: the profiler's memory records (each op's own allocations net
    of its own frees, and frees outside any op) summed in time order; the maximum of that running sum is the call's
    peak. (The process RSS
    cannot show it: memory freed after the warm-up is reused without growing the RSS.)
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    # every op's own (self) allocations net of its own frees, plus "[memory]" frees outside any op
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events())
    running, peak = 0, 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak / 2**20


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=336)
    parser.add_argument("--patch", type=int, default=14)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument("--record", action="store_true", help="write the figures to bench/results (the docs read them)")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        adapter = load_adapter(
            str(build_model(Path(tmp) / "m", args.image_size, args.patch, args.layers, args.hidden, args.heads))
        )
    adapter.model.to(device)
    batch = adapter.prepare(
        [Image.new("RGB", (args.image_size, args.image_size), (120, 60, 200))], ["Is there a red circle in the image?"]
    )
    prompt_end = int(batch.last_positions()[0])
    probe = AttentionProbe(untrained_baseline=False)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def plain() -> None:
        with torch.no_grad():
            adapter.forward(batch)
        sync()

    def streamed() -> None:
        probe._measure(adapter, batch, prompt_end)
        sync()

    def eager() -> None:
        with adapter.eager_attention(), torch.no_grad():
            adapter.forward(batch, output_attentions=True)
        sync()

    variants = {"plain": plain, "probe": streamed, "eager": eager}
    for run in variants.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():  # interleaved, so drift hits every variant alike
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    memory = {name: peak_memory(run) for name, run in variants.items()}
    time_s = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "sequence_tokens": int(batch.input_ids.shape[1]),
        "image_tokens": sum(e - s for s, e in batch.image_spans[0]),
        "llm": {"layers": args.layers, "hidden": args.hidden, "heads": args.heads},
        "time_s": time_s,
        "peak_mib": memory,
        "ratios": {
            "probe_time": time_s["probe"] / time_s["plain"],
            "probe_peak_memory": memory["probe"] / memory["plain"] if memory["plain"] > 0 else None,
            "eager_time": time_s["eager"] / time_s["plain"],
            "eager_peak_memory": memory["eager"] / memory["plain"] if memory["plain"] > 0 else None,
        },
        "targets": {"probe_time": 1.15, "probe_peak_memory": 1.10},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.record:
        from record import figure, record

        ratios, where = result["ratios"], f"{result['image_tokens']} image tokens, {args.layers} layers"
        record(
            "attention_overhead",
            [
                figure(
                    "attention probe time / plain SDPA forward", round(ratios["probe_time"], 3), "×", "<= 1.15×", where
                ),
                figure(
                    "attention probe peak memory / plain forward",
                    None if ratios["probe_peak_memory"] is None else round(ratios["probe_peak_memory"], 3),
                    "×",
                    "<= 1.10×",
                    where,
                ),
                figure("eager output_attentions time / plain forward", round(ratios["eager_time"], 3), "×", "", where),
                figure(
                    "eager output_attentions peak memory / plain forward",
                    None if ratios["eager_peak_memory"] is None else round(ratios["eager_peak_memory"], 3),
                    "×",
                    "",
                    where,
                ),
            ],
        )
    return result


if __name__ == "__main__":
    main()
