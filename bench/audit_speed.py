"""Wall time of the default audit (release suite, embedded default model), end to end and phase by phase.

Two measurements in one run, on this machine:

1. ``mmdiag audit`` as a user starts it (a fresh process, from interpreter start to the written report), timed
   from outside, ``--repeats`` times (median reported, every run listed: a shared 2-core machine varies by a
   few seconds between runs): the figure the target (<= 20 s on 2 cores; milestone <= 40 s) is about.
2. The same audit in this process with every phase timed (imports, model load, each probe's measuring loop and
   aggregation, report), so the breakdown shows where the time goes.

    python bench/audit_speed.py [--repeats 3] [--json out.json] [--suite probes/release.yaml]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def end_to_end(out: Path, suite: str | None) -> float:
    """Seconds from process start to the written report (``mmdiag audit`` in a fresh interpreter)."""
    command = [sys.executable, "-m", "mmdiag", "audit", "--out", str(out), "--no-progress"]
    if suite:
        command += ["--suite", suite]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - start


def phases(out: Path, suite: str | None) -> dict[str, float]:
    """Seconds per phase of the same audit run in this process."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    import mmdiag.api as api
    from mmdiag.probes.registry import ProbeRegistry

    times["imports"] = time.perf_counter() - start

    def timed(owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                times[label] = times.get(label, 0.0) + time.perf_counter() - began

        setattr(owner, name, wrapper)

    registry = ProbeRegistry()
    for name in ("attention", "spatial", "hallucination"):
        cls = type(registry.create(name))
        timed(cls, "setup", f"{name}: setup (untrained copy)")
        timed(cls, "run_batch", f"{name}: measure")
        timed(cls, "aggregate", f"{name}: aggregate")
    timed(api, "ensure_default_model", "default model located")
    timed(api, "load_adapter", "model load")
    timed(api, "render_report", "report")
    config = None
    if suite:
        from mmdiag.run.suites import load_suite

        config = load_suite(suite).config
    began = time.perf_counter()
    api.audit(None, out, config, progress=False)
    times["audit total (in process)"] = time.perf_counter() - began
    return times


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None)
    parser.add_argument("--suite", default=None, help="a suite file (default: the release suite)")
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end runs (the median is reported)")
    parser.add_argument("--record", action="store_true", help="write the figures to bench/results (the docs read them)")
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        walls = [end_to_end(Path(tmp) / f"cli-{i}", args.suite) for i in range(max(1, args.repeats))]
        breakdown = phases(Path(tmp) / "in-process", args.suite)
    result = {
        "device": f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)",
        "suite": args.suite or "release (default)",
        "end_to_end_s": round(statistics.median(walls), 2),
        "end_to_end_runs_s": [round(w, 2) for w in walls],
        "milestone_s": 40.0,
        "target_s": 20.0,
        "phases_s": {k: round(v, 2) for k, v in breakdown.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.record:
        from record import figure, record

        record(
            "audit_speed",
            [
                figure(
                    f"default audit ({result['suite']}), process start to written report, median of {len(walls)}",
                    result["end_to_end_s"],
                    "s",
                    "<= 20 s",
                    "runs: " + ", ".join(f"{w} s" for w in result["end_to_end_runs_s"]),
                ),
                *(figure(f"phase: {name}", value, "s") for name, value in result["phases_s"].items()),
            ],
        )
    return result


if __name__ == "__main__":
    main()
