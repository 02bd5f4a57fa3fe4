"""Handing freed memory back to the operating system between the phases of a long run.

numpy and torch free their large buffers to the C allocator, which keeps them (one heap per thread) for reuse:
after a phase that ran on a pool of threads the process's resident memory stays at that phase's peak, and the
next phase's peak lands on top of it. On glibc, ``malloc_trim(0)`` returns the free pages; elsewhere this is a
no-op. It changes no value, only what the process holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():  # noqa: ANN202 - a ctypes function, or None
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return the allocator's free pages to the operating system (glibc), else do nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
