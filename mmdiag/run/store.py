"""The run folder as a store: append-only example records, per-example arrays, resume, a writer lock.

* ``examples.jsonl``: one JSON record per finished example, appended and flushed at once. On resume,
  a torn last line (a killed run) is cut off, and the latest record of each (probe, example id) wins.
* ``arrays/<probe>/<hash>.npz``: the in-memory arrays an example produced (features, embeddings),
  written *before* its record, so a record always has its arrays.
* ``examples.rank<R>.jsonl``: in a data-parallel run each process appends to its own shard; the main
  process merges the shards into ``examples.jsonl`` after each probe.
* ``.mmdiag.lock``: one writer per folder, taken before anything in the folder is touched; a lock left by
  a dead process on this host is taken over.
* ``run-identity.json``: the model, weights and configuration the records were measured with; a resume
  must match it (:mod:`mmdiag.run.identity`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from mmdiag.errors import MmdiagError, write_error
from mmdiag.probes.base import _jsonable
from mmdiag.results import EXAMPLES_FILE, RESULTS_FILE, iter_records

LOCK_FILE = ".mmdiag.lock"
ARRAYS_DIR = "arrays"
IDENTITY_FILE = "run-identity.json"  # what a resumed run must match (see mmdiag.run.identity)
ERROR_LOG = "mmdiag-error.log"  # the full trace of an internal error (the CLI prints one line naming it)
ASIDE_DIR = ".replaced"  # an --overwrite moves the old run here until the new one has written its first record
# every file a run writes (report files are named here, not imported: the report layer sits above this one)
RUN_FILES = (EXAMPLES_FILE, RESULTS_FILE, IDENTITY_FILE, "report.html", "report.md", ERROR_LOG)


def run_files(run_dir: Path) -> list[Path]:
    """The files and folders of a run present in ``run_dir`` (records, shards, arrays, results, identity, reports,
    error log)."""
    run_dir = Path(run_dir)
    found = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    found += sorted(run_dir.glob("examples.rank*.jsonl"))
    if (run_dir / ARRAYS_DIR).exists():
        found.append(run_dir / ARRAYS_DIR)
    return found


def _holds_run(run_dir: Path) -> Path | None:
    """The first file of an earlier run in ``run_dir`` (records or results), if any."""
    for name in (EXAMPLES_FILE, RESULTS_FILE, IDENTITY_FILE):
        if (Path(run_dir) / name).exists():
            return Path(run_dir) / name
    return None


def preflight_run_dir(run_dir: Path, overwrite: bool, resume: bool) -> None:
    """The refusals of :func:`claim_run_dir` that can be known without touching the folder (used before
    spawning processes): a file in the way, contradicting flags, an existing run, a live writer."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise MmdiagError(f"output path {run_dir} is a file: pass a folder for the run")
    if overwrite and resume:
        raise MmdiagError("--overwrite and --resume contradict each other: pick one")
    held = _holds_run(run_dir)
    if held and not (resume or overwrite):
        raise MmdiagError(
            f"{run_dir} already holds a run ({held.name}): pass --resume to finish it, "
            "--overwrite to replace it, or another --out"
        )
    holder = _read_lock(run_dir / LOCK_FILE) if (run_dir / LOCK_FILE).exists() else None
    if holder and (holder.get("host") != socket.gethostname() or _alive(int(holder.get("pid", -1)))):
        raise MmdiagError(
            f"{run_dir} is being written by another mmdiag run (pid {holder.get('pid')} on "
            f"{holder.get('host')}): wait for it, or remove {run_dir / LOCK_FILE} if that run is dead"
        )


@contextlib.contextmanager
def claim_run_dir(run_dir: Path, overwrite: bool, resume: bool) -> Iterator[Path]:
    """Create ``run_dir`` and take its writer lock for the block; refuse an existing run unless
    ``overwrite`` or ``resume``.

    Nothing in the folder is touched before the lock is held, and nothing of an old run is removed here:
    an ``--overwrite`` sets it aside only with :class:`ReplacedRun`, once the inputs are checked and the model has
    loaded, so a bad input, a bad model or a live second writer never costs the old run its files. Refusals are
    one-line MmdiagErrors.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise MmdiagError(f"output path {run_dir} is a file: pass a folder for the run")
    if overwrite and resume:
        raise MmdiagError("--overwrite and --resume contradict each other: pick one")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(run_dir, err, "pass a writable --out folder") from err
    try:
        with run_lock(run_dir):
            _settle_replaced(run_dir)
            held = _holds_run(run_dir)
            if held and not (resume or overwrite):
                raise MmdiagError(
                    f"{run_dir} already holds a run ({held.name}): pass --resume to finish it, "
                    "--overwrite to replace it, or another --out"
                )
            yield run_dir
    except BaseException:
        if created:  # a run refused after the folder was made (e.g. by the loaded model) leaves no empty folder
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only an empty folder goes: anything written (an error log) stays
        raise


def _settle_replaced(run_dir: Path) -> None:
    """An ``--overwrite`` killed while the old run was set aside: if the new run wrote no record, the old run comes
    back; if it did, the old files go (the caller holds the lock)."""
    if not (Path(run_dir) / ASIDE_DIR).is_dir():
        return
    replaced = ReplacedRun(run_dir)
    if (Path(run_dir) / EXAMPLES_FILE).exists() or any(Path(run_dir).glob("examples.rank*.jsonl")):
        shutil.rmtree(replaced.aside, ignore_errors=True)
    else:
        replaced.restore()


class ReplacedRun:
    """An ``--overwrite`` that loses nothing until the new run has started: :meth:`set_aside` moves every file of
    the old run (records, shards, arrays, results, identity, reports, error log) into ``.replaced/`` inside the
    folder; :meth:`discard` removes them once the new run's first record (or its results) is safely written;
    :meth:`restore` puts them back, removing what the new run wrote, when it fails before that. The caller holds
    the folder's lock throughout, and never leaves an old file beside a new run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.aside = self.run_dir / ASIDE_DIR
        self.pending = False

    def set_aside(self) -> None:
        if self.aside.exists():  # a run killed between set_aside and discard: its new files are the stale ones
            shutil.rmtree(self.aside, ignore_errors=True)
        files = run_files(self.run_dir)
        try:
            self.aside.mkdir()
            for path in files:
                path.rename(self.aside / path.name)
        except OSError as err:
            self.restore()
            raise write_error(self.run_dir, err, "pass a writable --out folder") from err
        self.pending = True

    def exit_handler(self, kind: type | None, error: BaseException | None, trace: object) -> bool:
        """For ``ExitStack.push``: an exception (or an interrupt) before the first record restores the old run."""
        if kind is not None and self.pending:
            self.restore()
        return False

    def discard(self) -> None:
        """The new run has started for good: the old files go."""
        if self.pending:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.pending = False

    def restore(self) -> None:
        """The new run failed before its first record: its files go and the old run comes back as it was."""
        if not self.aside.is_dir():
            return
        for path in run_files(self.run_dir):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        for path in self.aside.iterdir():
            path.rename(self.run_dir / path.name)
        self.aside.rmdir()
        self.pending = False


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the folder's writer lock for the block."""
    path = run_dir / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except OSError as err:
            if not isinstance(err, FileExistsError):
                raise write_error(path, err, "pass a writable --out folder") from err
            holder = _read_lock(path)
            if holder and holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1))):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            who = f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "another process"
            raise MmdiagError(
                f"{run_dir} is being written by another mmdiag run ({who}): wait for it, "
                f"or remove {path} if that run is dead"
            ) from None
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
        except OSError as err:
            path.unlink(missing_ok=True)
            raise write_error(path, err, "pass a writable --out folder") from err
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

    def __init__(self, run_dir: Path, rank: int = 0, world: int = 1, on_first_write: Any = None) -> None:
        self.run_dir = Path(run_dir)
        self.rank, self.world = rank, world
        self._file: IO[str] | None = None
        self.on_first_write = on_first_write  # called once, after the first record is flushed

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
            with contextlib.suppress(OSError):  # a failed write was already reported; a torn tail is cut on resume
                self._file.close()
            self._file = None

    def write(self, record: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Persist one example: arrays first, then its JSON line (flushed).

        A failed write (full disk, lost permission) is a one-line MmdiagError; every record written before
        it stays, and a half-written line or array is dropped, so ``--resume`` continues cleanly.
        """
        assert self._file is not None, "use RunStore as a context manager"
        line = json.dumps(_jsonable(record), allow_nan=False) + "\n"
        target = None
        if arrays:
            folder = self.run_dir / ARRAYS_DIR / record["probe"]
            target = folder / _array_name(record["example_id"])
            tmp = target.with_suffix(f".rank{self.rank}.tmp.npz")
            try:
                folder.mkdir(parents=True, exist_ok=True)
                np.savez(tmp, **arrays)
                tmp.replace(target)
            except OSError as err:
                tmp.unlink(missing_ok=True)
                raise write_error(target, err) from err
        try:
            self._file.write(line)
            self._file.flush()
            if self.on_first_write:  # the record that lets an old run go must be on disk
                os.fsync(self._file.fileno())
        except OSError as err:
            raise write_error(self.my_path, err) from err
        if self.on_first_write:
            callback, self.on_first_write = self.on_first_write, None
            callback()

    def merge_shards(self) -> None:
        """Main process: append every rank's shard to examples.jsonl, then remove the shards."""
        shards = sorted(self.run_dir.glob("examples.rank*.jsonl"))
        if not shards:
            return
        _cut_torn_tail(self.main_path)
        try:
            with self.main_path.open("a", encoding="utf-8") as out:
                for shard in shards:
                    _cut_torn_tail(shard)
                    out.write(shard.read_text(encoding="utf-8"))
                    out.flush()
                    shard.unlink()
        except OSError as err:
            raise write_error(self.main_path, err) from err

    def latest(self, probe: str) -> dict[str, dict[str, Any]]:
        """The latest record of each example of ``probe`` (from examples.jsonl and any shards)."""
        latest: dict[str, dict[str, Any]] = {}
        for path in [self.main_path, *sorted(self.run_dir.glob("examples.rank*.jsonl"))]:
            for record in iter_records(path):
                if record.get("probe") == probe:
                    latest[record["example_id"]] = record
        return latest

    def array_path(self, probe: str, example_id: str) -> Path:
        """Where an example's arrays are (or would be) stored."""
        return self.run_dir / ARRAYS_DIR / probe / _array_name(example_id)


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
