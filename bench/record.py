"""Benchmark figures as files: one JSON line per figure, with the machine that measured it.

``record(name, figures)`` writes ``bench/results/<name>.jsonl`` (each line: ``figure``, ``value``, ``unit``,
``target`` where one is set, ``note``, plus ``machine``, ``measured_at`` and the ``command``). The docs' benchmark
page renders these files, so changing a figure in the docs is re-running its benchmark with ``--record``, never
editing prose.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """This machine in one line: CPU model and cores, torch threads, accelerator, torch version."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {gpu}; torch {torch.__version__}"


def figure(name: str, value: Any, unit: str = "", target: str = "", note: str = "") -> dict[str, Any]:
    """One figure of a benchmark."""
    return {"figure": name, "value": value, "unit": unit, "target": target, "note": note}


def record(name: str, figures: list[dict[str, Any]], folder: Path = RESULTS) -> Path:
    """Write ``figures`` to ``folder/<name>.jsonl`` (replacing the previous record of that benchmark)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = {
        "machine": machine(),
        "measured_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "command": " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
    }
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps({**f, **stamp}) + "\n" for f in figures))
    print(f"recorded {len(figures)} figure(s) in {path}")
    return path
