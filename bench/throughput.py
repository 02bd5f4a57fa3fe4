"""Throughput of each probe at batch 1 vs 8, and of a whole audit with 1 vs 2 processes, in one run.

A random LLaVA with 64 px images (patch 8 -> 64 image tokens) and a 4-layer Llama (hidden 128) stands in
for a real model. Batch sizes are timed in-process over the same examples (examples/s of the probe loop);
processes are timed end to end (``mmdiag audit --num-processes k``, model loading included) because that
is what a user waits for.

    python bench/throughput.py [--n-examples 48] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def build_model(folder: Path) -> Path:
    """A random LLaVA: 64 px images, patch 8 (64 image tokens), CLIP tower 64 x 2, Llama 4 x 128."""
    from mmdiag.zoo.models import Geometry, new_llava

    geometry = Geometry(
        resolution=64, patch=8, vision_hidden=64, vision_layers=2, text_hidden=128, text_layers=4, text_ffn=384, heads=4
    )
    model, processor = new_llava(geometry, "mlp", seed=0, vision_state=None)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def probe_rate(model: Path, probe_name: str, n_scenes: int, batch_size: int, workdir: Path) -> float:
    """Examples per second of one probe's measuring loop (model already loaded)."""
    from mmdiag.adapters import load_adapter
    from mmdiag.probes.registry import ProbeRegistry
    from mmdiag.run.distributed import ProcessInfo
    from mmdiag.run.runtime import run_probe
    from mmdiag.run.store import RunStore
    from mmdiag.sources.scenes import SceneSource

    adapter = load_adapter(str(model))
    probe = (
        ProbeRegistry().create(probe_name, untrained_baseline=False)
        if probe_name == "attention"
        else ProbeRegistry().create(probe_name)
    )
    examples = probe.examples(SceneSource().examples(n_scenes, 0, probe.data_request()), adapter)
    warm = workdir / f"{probe_name}-b{batch_size}-warmup"
    warm.mkdir()
    run_probe(
        probe, adapter, examples[:batch_size], RunStore(warm), ProcessInfo(), batch_size=batch_size, progress=False
    )
    run_dir = workdir / f"{probe_name}-b{batch_size}"
    run_dir.mkdir()
    start = time.perf_counter()
    run_probe(probe, adapter, examples, RunStore(run_dir), ProcessInfo(), batch_size=batch_size, progress=False)
    return len(examples) / (time.perf_counter() - start)


def audit_seconds(model: Path, processes: int, n_scenes: int, out: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // processes))}
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmdiag",
            "audit",
            "--model",
            str(model),
            "--out",
            str(out),
            "--n-examples",
            str(n_scenes),
            "--no-progress",
            "--num-processes",
            str(processes),
            "--no-untrained-baseline",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, 1):  # 1: a gate failed (random weights), still a complete audit
        raise SystemExit(f"the audit with {processes} process(es) failed: {done.stderr[-500:]}")
    return time.perf_counter() - start


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-examples", type=int, default=48)
    parser.add_argument("--json", default=None)
    parser.add_argument("--record", action="store_true", help="write the figures to bench/results (the docs read them)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_model(work / "model")
        rates = {
            p: {f"batch_{b}": probe_rate(model, p, args.n_examples, b, work) for b in (1, 8)}
            for p in ("attention", "spatial", "hallucination")
        }
        seconds = {f"processes_{k}": audit_seconds(model, k, args.n_examples, work / f"audit-{k}") for k in (1, 2)}
    result = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
        "n_scenes": args.n_examples,
        "examples_per_second": rates,
        "batch_8_over_1": {p: r["batch_8"] / r["batch_1"] for p, r in rates.items()},
        "audit_seconds": seconds,
        "speedup_2_processes": seconds["processes_1"] / seconds["processes_2"],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.record:
        from record import figure, record

        record(
            "throughput",
            [
                *(
                    figure(f"{probe}: examples/s at batch 8 / batch 1", round(ratio, 2), "×")
                    for probe, ratio in result["batch_8_over_1"].items()
                ),
                figure(
                    "whole audit, 2 processes / 1 process (speed-up)",
                    round(result["speedup_2_processes"], 2),
                    "×",
                    "",
                    f"{seconds['processes_1']:.1f} s vs {seconds['processes_2']:.1f} s, {args.n_examples} scenes, "
                    "model loads and process start-up included",
                ),
            ],
        )
    return result


if __name__ == "__main__":
    main()
