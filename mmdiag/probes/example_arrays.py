"""The arrays a probe's examples produced, as its ``aggregate`` reads them: per example, or one key for every example.

A probe's ``run_batch`` returns each example's arrays (features, embeddings); ``aggregate`` receives them aligned
with the records. Holding every example's arrays at once costs memory that grows with the scenes (the spatial
probe's are 192 KiB per scene: 300 MiB at 1,600), so :class:`ExampleArrays` also hands out one key at a time
(:meth:`ExampleArrays.column`): a store-backed implementation (:class:`mmdiag.run.stored_arrays.StoredArrays`) reads
that key from every example's file and nothing else. A plain list of dicts (what tests and notebooks hold) is
wrapped by :func:`example_arrays`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


class ExampleArrays(Sequence[Mapping[str, np.ndarray]]):
    """Every example's arrays, aligned with the records: ``arrays[i][key]``, or ``arrays.column(key)`` stacked."""

    def column(self, key: str) -> np.ndarray:
        """``key``'s array of every example, stacked: [n, ...] (KeyError when an example lacks it)."""
        return np.stack([self[i][key] for i in range(len(self))])

    def array_names(self) -> list[str]:
        """The keys of the first example's arrays."""
        return list(self[0]) if len(self) else []

    def column_nbytes(self, key: str) -> int:
        """The bytes :meth:`column` of ``key`` takes (from the first example)."""
        return int(np.asarray(self[0][key]).nbytes) * len(self) if len(self) else 0


class InMemoryArrays(ExampleArrays):
    """Arrays already in memory: a list of per-example dicts."""

    def __init__(self, arrays: Sequence[Mapping[str, np.ndarray]]) -> None:
        self._arrays = list(arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __getitem__(self, index: Any) -> Any:
        return self._arrays[index]


def example_arrays(arrays: Sequence[Mapping[str, np.ndarray]]) -> ExampleArrays:
    """``arrays`` as :class:`ExampleArrays` (itself when it already is one)."""
    return arrays if isinstance(arrays, ExampleArrays) else InMemoryArrays(arrays)
