"""Running probes: examples in order, one JSON record each, appended and flushed as it finishes.

A failing example (bad input, out of memory) is recorded with its error and counted, never scored as
an empty answer. Progress is shown with tqdm.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mmdiag.adapters.base import Adapter
from mmdiag.probes.base import Probe, ProbeExample, ProbeResult, _jsonable

OOM_HINT = "out of memory: lower --n-scenes per process, use --dtype bfloat16, or shard with --device-map auto"


class RecordWriter:
    """Appends one JSON object per line to ``examples.jsonl`` and flushes after each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def __enter__(self) -> RecordWriter:
        self._file = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, record: dict[str, Any]) -> None:
        assert self._file is not None, "use RecordWriter as a context manager"
        self._file.write(json.dumps(_jsonable(record), allow_nan=False) + "\n")
        self._file.flush()


def run_probe(
    probe: Probe,
    adapter: Adapter,
    examples: list[ProbeExample],
    writer: RecordWriter,
    *,
    progress: bool = True,
) -> tuple[ProbeResult | None, list[dict[str, Any]]]:
    """Run every example, write its record, then aggregate the successful ones.

    Returns the result (``None`` if no example succeeded) and the failure records.
    """
    probe.setup(adapter)
    records: list[dict[str, Any]] = []
    arrays: list[dict[str, np.ndarray]] = []
    failures: list[dict[str, Any]] = []
    bar = tqdm(examples, desc=f"{probe.name}", unit="ex", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for example in bar:
        base = {"probe": probe.name, "example_id": example.example_id, "scene": example.scene.to_dict()}
        try:
            output = probe.run_example(adapter, example)
        except torch.OutOfMemoryError as err:
            failures.append({**base, "error": f"{OOM_HINT} ({err.__class__.__name__})"})
            writer.write(failures[-1])
            continue
        except Exception as err:  # noqa: BLE001 - every failure is recorded and counted, never hidden
            failures.append({**base, "error": f"{err.__class__.__name__}: {err}"})
            writer.write(failures[-1])
            continue
        record = {**base, "values": output.values}
        writer.write(record)
        records.append({"example_id": example.example_id, **output.values})
        arrays.append(output.arrays)
    bar.close()
    if not records:
        return None, failures
    result = probe.aggregate(adapter, records, arrays)
    result.n_failed = len(failures)
    return result, failures
