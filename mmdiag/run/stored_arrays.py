"""A probe's example arrays read from the run folder, one key for every example at a time (see
:mod:`mmdiag.probes.example_arrays`).

Each example's arrays are one ``.npz`` in ``arrays/<probe>/``. When all of them together fit in
``RESIDENT_BYTES`` (every audit up to a few hundred scenes) they are read once and kept; beyond that, nothing is
kept: :meth:`StoredArrays.column` reads the one key from every example's file into one preallocated array, so the
memory held is that column, whatever the number of scenes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mmdiag.probes.example_arrays import ExampleArrays

RESIDENT_BYTES = 64 * 2**20  # all examples' arrays are kept in memory up to this size


def _read(path: Path, key: str | None = None) -> Any:
    """Every array of one example's file (``{}`` when it has none), or only ``key``'s."""
    if not path.is_file():
        if key is None:
            return {}
        raise KeyError(f"{key} (no arrays stored at {path})")
    with np.load(path) as data:
        return {k: data[k] for k in data.files} if key is None else data[key]


class StoredArrays(ExampleArrays):
    """The arrays of the examples stored at ``paths`` (one ``.npz`` each, in the records' order)."""

    def __init__(self, paths: list[Path], resident_bytes: int = RESIDENT_BYTES) -> None:
        self.paths = list(paths)
        self._resident: list[dict[str, np.ndarray]] | None = None
        per_example = _stored_bytes(self.paths[0]) if self.paths else 0
        if per_example * len(self.paths) <= resident_bytes:
            self._resident = [_read(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._resident[index] if self._resident is not None else _read(self.paths[index])

    def array_names(self) -> list[str]:
        if not self.paths:
            return []
        if self._resident is not None:
            return list(self._resident[0])
        if not self.paths[0].is_file():
            return []
        with np.load(self.paths[0]) as data:
            return list(data.files)

    def column(self, key: str) -> np.ndarray:
        if self._resident is not None:
            return super().column(key)
        first = np.asarray(_read(self.paths[0], key))
        out = np.empty((len(self.paths), *first.shape), dtype=first.dtype)
        out[0] = first
        for i, path in enumerate(self.paths[1:], start=1):
            value = _read(path, key)
            if value.shape != first.shape:
                raise ValueError(f"{key}: example {i} has shape {value.shape}, the first {first.shape}")
            out[i] = value
        return out

    def column_nbytes(self, key: str) -> int:
        if self._resident is not None:
            return super().column_nbytes(key)
        with zipfile.ZipFile(self.paths[0]) as archive, archive.open(f"{key}.npy") as member:
            major, _ = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(member)
        return int(np.prod(shape)) * np.dtype(dtype).itemsize * len(self.paths)


def _stored_bytes(path: Path) -> int:
    """The uncompressed size of one example's arrays."""
    if not path.is_file():
        return 0
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())
