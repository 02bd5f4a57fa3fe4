"""Wall time of the default audit (release suite, embedded default model), end to end and phase by phase, and what
its size costs.

Three measurements in one run, on this machine:

1. ``mmdiag audit`` as a user starts it (a fresh process, from interpreter start to the written report), timed
   from outside, ``--repeats`` times (median reported, every run listed: a shared 2-core machine varies by a
   few seconds between runs): the figure the target (<= 20 s on 2 cores; milestone <= 40 s) is about.
2. The same audit with every phase timed (imports, model load, each probe's measuring loop and aggregation,
   report), in a fresh process of its own, so the breakdown shows where the time goes. Each phase also says how
   much of it is spent inside a model's forward pass (every top-level module call, generation steps included):
   the part that is model arithmetic rather than mmdiag's own work.
3. With ``--compare-scenes N`` (default: 48, the release suite's size before its gates were sized by power, when
   the suite is the default one), both measurements again at N scenes, the end-to-end runs interleaved with the
   full size's so that drift hits both alike. The difference is what the added scenes cost, phase by phase; the
   two sizes also give each phase's fixed part and its cost per scene (a straight line through the two points).

    python bench/audit_speed.py [--repeats 3] [--json out.json] [--suite probes/release.yaml] [--compare-scenes 48]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

FORWARD = " (in model forwards)"
TOTAL = "audit total (in process)"


def end_to_end(out: Path, suite: str | None, n_examples: int | None = None) -> float:
    """Seconds from process start to the written report (``mmdiag audit`` in a fresh interpreter)."""
    command = [sys.executable, "-m", "mmdiag", "audit", "--out", str(out), "--no-progress"]
    if suite:
        command += ["--suite", suite]
    if n_examples:
        command += ["--n-examples", str(n_examples)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - start


@contextlib.contextmanager
def forward_time(into: dict[str, float], phase: list[str]) -> Iterator[None]:
    """Within the block, the seconds spent inside top-level module calls (a whole model's forward, one generation
    step, a vision tower run alone) are added to ``into[phase[-1]]`` (global module hooks, removed on exit)."""
    import torch

    depth, began = [0], [0.0]

    def before(module: object, args: object) -> None:
        if depth[0] == 0:
            began[0] = time.perf_counter()
        depth[0] += 1

    def after(module: object, args: object, output: object) -> None:
        depth[0] -= 1
        if depth[0] == 0 and phase:
            into[phase[-1]] = into.get(phase[-1], 0.0) + time.perf_counter() - began[0]

    handles = [
        torch.nn.modules.module.register_module_forward_pre_hook(before),
        torch.nn.modules.module.register_module_forward_hook(after),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def phases(out: Path, suite: str | None, n_examples: int | None = None) -> dict[str, float]:
    """Seconds per phase of the audit run in this process (meant for a fresh one: the imports are a phase), and,
    under ``<phase> (in model forwards)``, the part of each phase spent inside model forwards."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    import mmdiag.api as api
    from mmdiag.probes.registry import ProbeRegistry

    times["imports"] = time.perf_counter() - start
    current: list[str] = []
    forwards: dict[str, float] = {}

    def timed(owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            began = time.perf_counter()
            current.append(label)
            try:
                return original(*args, **kwargs)
            finally:
                current.pop()
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
    with forward_time(forwards, current):
        api.audit(None, out, config, progress=False, **({"n_examples": n_examples} if n_examples else {}))
    times[TOTAL] = time.perf_counter() - began
    times.update({f"{label}{FORWARD}": seconds for label, seconds in forwards.items()})
    return times


def phases_in_fresh_process(out: Path, suite: str | None, n_examples: int | None) -> dict[str, float]:
    """:func:`phases` in a fresh interpreter (so every size pays its imports and first calls alike)."""
    command = [sys.executable, __file__, "--phases-only", "--json", str(out / "phases.json")]
    if suite:
        command += ["--suite", suite]
    if n_examples:
        command += ["--n-examples", str(n_examples)]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return json.loads((out / "phases.json").read_text())


def suite_size(suite: str | None) -> int:
    from mmdiag.run.suites import load_suite

    return load_suite(suite or str(Path(__file__).resolve().parents[1] / "probes" / "release.yaml")).config.n_examples


def added_cost(small: dict[str, float], large: dict[str, float], n_small: int, n_large: int) -> dict[str, dict]:
    """Per phase: seconds at both sizes, the added seconds, and the line through them (fixed part, per scene)."""
    out = {}
    for name in large:
        if name.endswith(FORWARD) or name not in small:
            continue
        per_scene = (large[name] - small[name]) / (n_large - n_small)
        out[name] = {
            f"at_{n_small}": round(small[name], 2),
            f"at_{n_large}": round(large[name], 2),
            "added_s": round(large[name] - small[name], 2),
            "fixed_s": round(small[name] - per_scene * n_small, 2),
            "per_scene_ms": round(1000 * per_scene, 1),
        }
    return out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=None)
    parser.add_argument("--suite", default=None, help="a suite file (default: the release suite)")
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end runs per size (the median is reported)")
    parser.add_argument(
        "--compare-scenes",
        type=int,
        default=None,
        help="also measure at this many scenes (default: 48 for the release suite, none for another suite; 0: none)",
    )
    parser.add_argument("--n-examples", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--phases-only", action="store_true", help=argparse.SUPPRESS)  # the fresh-process child
    parser.add_argument("--record", action="store_true", help="write the figures to bench/results (the docs read them)")
    args = parser.parse_args()
    if args.phases_only:
        with tempfile.TemporaryDirectory() as tmp:
            breakdown = phases(Path(tmp) / "run", args.suite, args.n_examples)
        Path(args.json).write_text(json.dumps(breakdown))
        return breakdown
    import torch

    size = suite_size(args.suite)
    compare = args.compare_scenes if args.compare_scenes is not None else (48 if args.suite is None else 0)
    sizes = [size] + ([compare] if compare and compare != size else [])
    walls: dict[int, list[float]] = {n: [] for n in sizes}
    breakdowns: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(max(1, args.repeats)):
            for n in sizes:  # interleaved: drift on a shared machine hits both sizes alike
                walls[n].append(end_to_end(Path(tmp) / f"cli-{n}-{i}", args.suite, n if n != size else None))
        for n in sizes:
            folder = Path(tmp) / f"phases-{n}"
            folder.mkdir()
            breakdowns[n] = phases_in_fresh_process(folder, args.suite, n if n != size else None)
    result = {
        "device": f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)",
        "suite": args.suite or "release (default)",
        "scenes": size,
        "end_to_end_s": round(statistics.median(walls[size]), 2),
        "end_to_end_runs_s": [round(w, 2) for w in walls[size]],
        "milestone_s": 40.0,
        "target_s": 20.0,
        "phases_s": {k: round(v, 2) for k, v in breakdowns[size].items()},
    }
    if len(sizes) > 1:
        wall_small = statistics.median(walls[compare])
        result["compare"] = {
            "scenes": compare,
            "end_to_end_s": round(wall_small, 2),
            "end_to_end_runs_s": [round(w, 2) for w in walls[compare]],
            "phases_s": {k: round(v, 2) for k, v in breakdowns[compare].items()},
            "added": added_cost(
                {**breakdowns[compare], "end to end": wall_small},
                {**breakdowns[size], "end to end": statistics.median(walls[size])},
                compare,
                size,
            ),
        }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.record:
        record_figures(result, len(walls[size]))
    return result


def record_figures(result: dict, repeats: int) -> None:
    from record import figure, record

    phases_s = result["phases_s"]
    figures = [
        figure(
            f"default audit ({result['suite']}, {result['scenes']} scenes), process start to written report, "
            f"median of {repeats}",
            result["end_to_end_s"],
            "s",
            "<= 20 s",
            "runs: " + ", ".join(f"{w} s" for w in result["end_to_end_runs_s"]),
        ),
        figure(
            "start-up: interpreter, torch and mmdiag imports, command line (end to end minus the in-process audit)",
            round(result["end_to_end_s"] - phases_s[TOTAL], 2),
            "s",
        ),
    ]
    for name, value in phases_s.items():
        if name.endswith(FORWARD):
            continue
        inside = phases_s.get(f"{name}{FORWARD}")
        note = f"{inside} s inside model forwards ({100 * inside / value:.0f} %)" if inside and value else ""
        figures.append(figure(f"phase: {name}", value, "s", "", note))
    compare = result.get("compare")
    if compare:
        n_small, n_large = compare["scenes"], result["scenes"]
        for name, cost in compare["added"].items():
            label = "end to end" if name == "end to end" else f"phase: {name}"
            figures.append(
                figure(
                    f"added by {n_large - n_small} scenes ({n_small} -> {n_large}): {label}",
                    cost["added_s"],
                    "s",
                    "",
                    f"{cost[f'at_{n_small}']} s at {n_small}, {cost[f'at_{n_large}']} s at {n_large}; "
                    f"fixed {cost['fixed_s']} s + {cost['per_scene_ms']} ms per scene",
                )
            )
    record("audit_speed", figures)


if __name__ == "__main__":
    main()
