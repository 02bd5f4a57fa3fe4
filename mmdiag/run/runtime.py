"""Running one probe over its examples: batches, per-example records, resume, data-parallel shares.

The examples are cut into fixed batches of ``batch_size`` by their position in the full example list;
a batch is the unit of work everywhere: a resumed run re-measures every batch that holds an unfinished
example (writing only the unfinished ones), and data-parallel processes split whole batches. So every
example is always computed inside the same batch, and a resumed or multi-process run is bit-identical
to an uninterrupted single-process one (batched float kernels differ in the last bits across batch
compositions). A batch that fails is re-run one example at a time, so a bad example or an
out-of-memory batch costs only itself. Every record is appended as it finishes; the main process
then merges the shards and aggregates from the run folder, in the probes' example order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch

from mmdiag.adapters.base import Adapter
from mmdiag.memory import release_freed_memory
from mmdiag.probes.base import ExampleOutput, Probe, ProbeExample, ProbeResult
from mmdiag.run.distributed import ProcessInfo
from mmdiag.run.phase_bar import PhaseBar
from mmdiag.run.progress import AuditProgress
from mmdiag.run.store import RunStore
from mmdiag.run.stored_arrays import StoredArrays

OOM_HINT = (
    "out of memory: lower --batch-size, shard the model with --device-map auto (and --max-memory), "
    "or use --dtype bfloat16"
)


def run_probe(
    probe: Probe,
    adapter: Adapter,
    examples: Sequence[ProbeExample],
    store: RunStore,
    process: ProcessInfo,
    *,
    batch_size: int = 1,
    resume: bool = False,
    progress: bool = True,
    tracker: AuditProgress | None = None,
) -> tuple[ProbeResult | None, list[dict[str, Any]]]:
    """Measure the examples not yet finished, then (main process) aggregate all of them.

    Returns the result (``None`` on other processes, or when no example succeeded) and the failure
    records (main process). ``tracker``: the audit's phase lines (measuring, aggregating).
    """
    with _phase(tracker, f"{probe.name}: measuring"):
        _measure(probe, adapter, examples, store, process, batch_size, resume, progress, tracker)
    if not process.is_main:
        return None, []
    with _phase(tracker, f"{probe.name}: aggregating"):
        return _aggregate(probe, adapter, examples, store)


def _phase(tracker: AuditProgress | None, name: str) -> contextlib.AbstractContextManager[None]:
    return tracker.phase(name) if tracker is not None else contextlib.nullcontext()


def _measure(
    probe: Probe,
    adapter: Adapter,
    examples: Sequence[ProbeExample],
    store: RunStore,
    process: ProcessInfo,
    batch_size: int,
    resume: bool,
    progress: bool,
    tracker: AuditProgress | None = None,
) -> None:
    """Measure and store every unfinished example of this process's share; merge the shards."""
    size = max(1, batch_size)
    finished = {eid for eid, r in store.latest(probe.name).items() if "error" not in r} if resume else set()
    groups = [list(examples[start : start + size]) for start in range(0, len(examples), size)]
    todo = [group for group in groups if any(ex.example_id not in finished for ex in group)]
    mine = process.split(todo)
    if mine:
        probe.setup(adapter)
    total = sum(ex.example_id not in finished for group in mine for ex in group)
    done = 0
    bar = PhaseBar(total, probe.name, enabled=progress and process.is_main)
    with store, bar:
        for group in mine:
            bar.start_batch(sum(ex.example_id not in finished for ex in group))
            for example, outcome in zip(group, _run_chunk(probe, adapter, group)):
                if example.example_id in finished:
                    continue  # re-measured only so the rest of its batch is computed exactly as uninterrupted
                base = {"probe": probe.name, "example_id": example.example_id, "scene": example.example.to_dict()}
                if isinstance(outcome, str):
                    store.write({**base, "error": outcome})
                else:
                    store.write({**base, "values": outcome.values}, outcome.arrays)
                bar.finish(1)
                done += 1
                if tracker is not None:
                    tracker.advance(done, total)
    process.barrier()  # every shard is complete
    if process.is_main:
        store.merge_shards()
    process.barrier()  # shards are merged before any process appends to its shard again


def _aggregate(
    probe: Probe, adapter: Adapter, examples: Sequence[ProbeExample], store: RunStore
) -> tuple[ProbeResult | None, list[dict[str, Any]]]:
    """The probe's result from every stored example (main process), and the failure records."""
    latest = store.latest(probe.name)
    stored = [latest[ex.example_id] for ex in examples if ex.example_id in latest]
    failures = [r for r in stored if "error" in r]
    good = [r for r in stored if "error" not in r]
    if not good:
        return None, failures
    records = [{"example_id": r["example_id"], **r["values"]} for r in good]
    arrays = StoredArrays([store.array_path(probe.name, r["example_id"]) for r in good])
    result = probe.aggregate(adapter, records, arrays)
    release_freed_memory()  # the aggregate's peak is not kept under the next probe's
    result.n_failed = len(failures)
    return result, failures


def _run_chunk(probe: Probe, adapter: Adapter, chunk: Sequence[ProbeExample]) -> list[ExampleOutput | str]:
    """Outputs (or error messages) for a chunk: batched when possible, one by one when the batch fails."""
    if len(chunk) > 1:
        try:
            return list(probe.run_batch(adapter, list(chunk)))
        except Exception:  # noqa: BLE001 - retried one by one below, where each failure is recorded
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return [_run_one(probe, adapter, example) for example in chunk]


def _run_one(probe: Probe, adapter: Adapter, example: ProbeExample) -> ExampleOutput | str:
    try:
        return probe.run_example(adapter, example)
    except torch.OutOfMemoryError as err:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return f"{OOM_HINT} ({err.__class__.__name__})"
    except Exception as err:  # noqa: BLE001 - every failure is recorded and counted, never hidden
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{err.__class__.__name__}: {message}"
