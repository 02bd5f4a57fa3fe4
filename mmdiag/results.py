"""The run's results document (``results.json``) and its metadata, versioned.

Reports are rendered from this document and ``examples.jsonl`` alone, so a report can be rebuilt
from a run folder at any later time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import mmdiag

SCHEMA_VERSION = "1.4"
RESULTS_FILE = "results.json"
SCHEMA_PATH = Path(__file__).resolve().parent / "report" / "results.schema.json"  # the published JSON Schema
EXAMPLES_FILE = "examples.jsonl"
TRACKED_PACKAGES = (
    "mmdiag",
    "torch",
    "transformers",
    "accelerate",
    "open_clip_torch",
    "scikit-learn",
    "numpy",
    "pillow",
)


def canonical_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys), first 16 hex digits."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def source_git_hash() -> str | None:
    """The git commit of the mmdiag source tree (with "-dirty" if modified), or None outside git."""
    root = Path(mmdiag.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunMetadata:
    """What is needed to know how a result was produced and to reproduce it."""

    model: dict[str, Any]
    config: dict[str, Any]
    seed: int
    config_hash: str
    versions: dict[str, str | None] = field(default_factory=package_versions)
    git_hash: str | None = field(default_factory=source_git_hash)
    python: str = field(default_factory=lambda: sys.version.split()[0])
    platform: str = field(default_factory=platform.platform)
    devices: list[str] = field(default_factory=list)
    processes: int = 1
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    # probe -> wall seconds per example measured by this run's session (what an intervention costs: compare them)
    seconds_per_example: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_results(run_dir: Path, document: dict[str, Any]) -> Path:
    """Write ``results.json`` atomically (a killed run never leaves half a file)."""
    path = run_dir / RESULTS_FILE
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_text(json.dumps(document, indent=2, sort_keys=False, allow_nan=False))
        tmp.replace(path)
    except OSError as err:
        from mmdiag.errors import write_error

        tmp.unlink(missing_ok=True)
        raise write_error(
            path, err, "re-run with --resume (every example is kept; only the summary is rewritten)"
        ) from err
    return path


def read_results(run_dir: Path) -> dict[str, Any]:
    from mmdiag.errors import MmdiagError

    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise MmdiagError(f"{path} does not exist: pass a run folder written by 'mmdiag audit'")
    try:
        document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except _NonFiniteNumber as err:
        raise MmdiagError(
            f"{path} holds {err} where a number belongs: mmdiag writes no NaN or infinity (an undefined "
            "value is null with its reason), so the file was edited or corrupted; re-run the audit"
        ) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MmdiagError(f"{path} is not valid JSON ({err}): re-run the audit") from err
    except OSError as err:
        raise MmdiagError(
            f"cannot read {path} ({err.strerror or err.__class__.__name__}): check its permissions"
        ) from err
    problem = schema_problem(document)
    if problem:
        raise MmdiagError(
            f"{path} does not follow the results schema ({problem}): it was not written by this "
            "mmdiag audit, or was edited; re-run the audit"
        )
    return document


class _NonFiniteNumber(ValueError):
    """NaN, Infinity or -Infinity in a results file (json.loads accepts them; results.json never holds them)."""


def _refuse_constant(name: str) -> Any:
    raise _NonFiniteNumber(name)


def schema_problem(document: Any) -> str | None:
    """The first way ``document`` breaks the published results schema (a short path and message), or None."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "top level"
    return f"at {where}: {' '.join(error.message.split())[:160]}"


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON records of an examples file; a torn line from a killed run is skipped."""
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def read_examples(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of ``examples.jsonl``."""
    return list(iter_records(Path(run_dir) / EXAMPLES_FILE))
