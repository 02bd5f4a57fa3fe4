"""Paths named inside data files (a POPE line's ``image``, a manifest's file) resolved safely.

A data file may only name files inside its folder: the path is resolved (``..`` collapsed, symlinks followed)
and must stay under the resolved folder, else a one-line error names the data file, the entry and the
folder, and the outside file is never opened. Absolute paths are allowed only when they land inside too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdiag.errors import MmdiagError


class DataPathError(MmdiagError):
    """A data file names a path outside its folder (or an unusable one)."""


def resolve_inside(folder: str | Path, name: str, *, source: str, entry: str) -> Path:
    """``folder / name`` resolved, refusing anything that leaves ``folder`` (``..``, absolute, symlinks).

    ``source`` and ``entry`` name the data file and the entry (e.g. ``questions.jsonl:12``) for the message.
    """
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise DataPathError(f"{source}: entry {entry} has an empty or invalid path {name!r}: name a file in {folder}")
    root = Path(folder).resolve()
    target = (root / name).resolve()
    if not target.is_relative_to(root):
        raise DataPathError(
            f"{source}: entry {entry} names {name!r}, which resolves outside the image folder {root}: "
            "data files may only name files inside their folder"
        )
    return target


def absolute_params(params: dict[str, Any]) -> dict[str, Any]:
    """A data source's parameters with every path that exists here made absolute (``report`` finds the data from
    another working folder)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, str) and value:
            parts = [str(Path(v).resolve()) if Path(v).exists() else v for v in value.split(",")]
            value = ",".join(parts)
        out[key] = value
    return out
