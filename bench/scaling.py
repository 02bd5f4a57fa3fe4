"""Cost against work: wall time and peak memory of the default audit at 48, 160, 480 and 1,600 scenes.

Each size runs as a user runs it (``mmdiag audit --n-examples N`` in a fresh process, release suite, embedded
default model), timed from outside with ``/usr/bin/time`` (wall seconds, peak resident memory). Prints one JSON
line per size (with the width of every gated metric's 95% CI: what more scenes buy), then the ratios against the
smallest size (time per scene should stay flat if the cost is linear in scenes), and writes a plot.

    python bench/scaling.py [--sizes 48,160,480,1600] [--suite release] [--plot docs/img/scaling.png] [--json out.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def measure(n_scenes: int, out: Path, suite: str | None = None) -> dict[str, float]:
    """Wall seconds and peak RSS (MiB) of one fresh ``mmdiag audit --n-examples n_scenes``."""
    out.mkdir(parents=True, exist_ok=True)
    report = out / "time.txt"
    command = [
        "/usr/bin/time",
        "-f",
        "%e %M",
        "-o",
        str(report),
        sys.executable,
        "-m",
        "mmdiag",
        "audit",
        "--out",
        str(out / "run"),
        "--n-examples",
        str(n_scenes),
        "--no-progress",
    ] + (["--suite", suite] if suite else [])
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode not in (0, 1):  # 1: a gate failed, still a complete audit
        raise SystemExit(f"audit at {n_scenes} scenes failed: {done.stderr[-500:]}")
    wall, peak_kib = report.read_text().split()[-2:]
    return {
        "scenes": n_scenes,
        "wall_s": float(wall),
        "peak_rss_mib": round(int(peak_kib) / 1024, 1),
        "gate_ci_width": gate_ci_widths(out / "run" / "results.json"),
    }


def gate_ci_widths(results: Path) -> dict[str, float]:
    """The width of the 95% CI of every gated metric with one (what more scenes buy: narrower CIs)."""
    gates = json.loads(results.read_text()).get("gates", [])
    return {
        g["metric"]: round(g["ci_high"] - g["ci_low"], 4)
        for g in gates
        if g.get("ci_low") is not None and g.get("ci_high") is not None
    }


def plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenes = [r["scenes"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    left.plot(scenes, [r["wall_s"] for r in rows], "o-", label="measured")
    base = rows[0]
    left.plot(scenes, [base["wall_s"] * s / base["scenes"] for s in scenes], "--", color="grey", label="linear from 48")
    left.set_xlabel("scenes")
    left.set_ylabel("wall time (s)")
    left.legend(fontsize=8)
    right.plot(scenes, [r["peak_rss_mib"] for r in rows], "o-", color="tab:red")
    right.set_xlabel("scenes")
    right.set_ylabel("peak memory (MiB)")
    right.set_ylim(bottom=0)
    fig.suptitle("mmdiag audit (release suite, default model, 2 cores)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="48,160,480,1600")
    parser.add_argument("--suite", default=None, help="suite name or file (default: release)")
    parser.add_argument("--plot", default=None, help="write the plot here (PNG)")
    parser.add_argument("--json", default=None, help="also write the JSON lines here")
    parser.add_argument("--record", action="store_true", help="write the figures to bench/results (the docs read them)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            row = measure(n, Path(tmp) / str(n), args.suite)
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0]
    for row in rows:
        row["time_per_scene_vs_smallest"] = round(
            (row["wall_s"] / row["scenes"]) / (base["wall_s"] / base["scenes"]), 3
        )
        row["memory_vs_smallest"] = round(row["peak_rss_mib"] / base["peak_rss_mib"], 3)
    print(
        json.dumps(
            {
                "ratios": [
                    {k: r[k] for k in ("scenes", "time_per_scene_vs_smallest", "memory_vs_smallest")} for r in rows
                ]
            }
        )
    )
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in rows))
    if args.plot:
        plot(rows, Path(args.plot))
    if args.record:
        from record import figure, record

        figures = []
        for r in rows:
            figures += [
                figure(f"{r['scenes']} scenes: wall time", r["wall_s"], "s"),
                figure(
                    f"{r['scenes']} scenes: time per scene vs {base['scenes']}",
                    r["time_per_scene_vs_smallest"],
                    "×",
                    "flat (linear cost)",
                ),
                figure(f"{r['scenes']} scenes: peak memory", r["peak_rss_mib"], "MiB"),
                figure(
                    f"{r['scenes']} scenes: peak memory vs {base['scenes']}", r["memory_vs_smallest"], "×", "<= 1.1×"
                ),
            ]
        record("scaling", figures)


if __name__ == "__main__":
    main()
