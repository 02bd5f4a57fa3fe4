"""The run folder as a store: append-only example records, per-example arrays, resume, a writer lock.

* ``examples.jsonl``: one JSON record per finished example, appended and flushed at once. On resume,
  a torn last line (a killed run) is cut off, and the latest record of each (probe, example id) wins.
* ``arrays/<probe>/<hash>.npz``: the in-memory arrays an example produced (features, embeddings),
  written *before* its record, so a record always has its arrays.
* ``examples.rank<R>.jsonl``: in a data-parallel run each process appends to its own shard; the main
  process merges the shards into ``examples.jsonl`` after each probe.
* ``.mmdiag.lock``: one writer per folder; a lock left by a dead process on this host is taken over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from mmdiag.errors import MmdiagError
from mmdiag.probes.base import _jsonable
from mmdiag.results import EXAMPLES_FILE, iter_records

LOCK_FILE = ".mmdiag.lock"
ARRAYS_DIR = "arrays"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the folder's writer lock for the block."""
    path = run_dir / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _read_lock(path)
            if holder and holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1))):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            who = f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "another process"
            raise MmdiagError(f"{run_dir} is being written by another mmdiag run ({who}): wait for it, "
                              f"or remove {path} if that run is dead") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _array_name(example_id: str) -> str:
    return hashlib.sha1(example_id.encode()).hexdigest()[:20] + ".npz"


class RunStore:
    """Records and arrays of one run folder, for one process (``rank``) of ``world``."""

    def __init__(self, run_dir: Path, rank: int = 0, world: int = 1) -> None:
        self.run_dir = Path(run_dir)
        self.rank, self.world = rank, world
        self._file: IO[str] | None = None

    @property
    def main_path(self) -> Path:
        return self.run_dir / EXAMPLES_FILE

    @property
    def my_path(self) -> Path:
        return self.main_path if self.world == 1 else self.run_dir / f"examples.rank{self.rank}.jsonl"

    def __enter__(self) -> RunStore:
        _cut_torn_tail(self.my_path)
        self._file = self.my_path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, record: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Persist one example: arrays first, then its JSON line (flushed)."""
        assert self._file is not None, "use RunStore as a context manager"
        if arrays:
            folder = self.run_dir / ARRAYS_DIR / record["probe"]
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / _array_name(record["example_id"])
            tmp = target.with_suffix(f".rank{self.rank}.tmp.npz")
            np.savez(tmp, **arrays)
            tmp.replace(target)
        self._file.write(json.dumps(_jsonable(record), allow_nan=False) + "\n")
        self._file.flush()

    def merge_shards(self) -> None:
        """Main process: append every rank's shard to examples.jsonl, then remove the shards."""
        shards = sorted(self.run_dir.glob("examples.rank*.jsonl"))
        if not shards:
            return
        _cut_torn_tail(self.main_path)
        with self.main_path.open("a", encoding="utf-8") as out:
            for shard in shards:
                _cut_torn_tail(shard)
                out.write(shard.read_text(encoding="utf-8"))
                shard.unlink()

    def latest(self, probe: str) -> dict[str, dict[str, Any]]:
        """The latest record of each example of ``probe`` (from examples.jsonl and any shards)."""
        latest: dict[str, dict[str, Any]] = {}
        for path in [self.main_path, *sorted(self.run_dir.glob("examples.rank*.jsonl"))]:
            for record in iter_records(path):
                if record.get("probe") == probe:
                    latest[record["example_id"]] = record
        return latest

    def arrays(self, probe: str, example_id: str) -> dict[str, np.ndarray]:
        path = self.run_dir / ARRAYS_DIR / probe / _array_name(example_id)
        if not path.is_file():
            return {}
        with np.load(path) as data:
            return {k: data[k] for k in data.files}


def _cut_torn_tail(path: Path) -> None:
    """Drop an unterminated last line (a run killed mid-write), so appends start on a fresh line."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as f:
        f.truncate(keep)
