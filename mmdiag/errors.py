"""Errors a user can act on.

Every error raised for bad input is an :class:`MmdiagError`: its message is one line that names the
problem and the fix. The CLI prints it without a traceback and exits with code 2.
"""

from __future__ import annotations


class MmdiagError(Exception):
    """Bad usage or input; ``str(err)`` is the one-line message shown to the user."""

    exit_code = 2


class ModelLoadError(MmdiagError):
    """A model or processor could not be loaded (path, format, architecture, weights)."""


class UnsupportedArchitectureError(ModelLoadError):
    """No registered adapter serves the checkpoint's ``config.architectures``."""


class ProcessorMismatchError(ModelLoadError):
    """The processor does not produce inputs this model accepts."""


class CapabilityError(MmdiagError):
    """A probe asked an adapter for something its family cannot do (e.g. attention of a dual encoder)."""


class ConfigError(MmdiagError):
    """A suite, gate or option is malformed."""


def write_error(
    path: object, err: OSError, fix: str = "re-run with --resume (finished examples are kept)"
) -> MmdiagError:
    """The one-line error for a failed write (full disk, no permission, read-only file system)."""
    import errno

    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk is full"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "no permission to write there"
    else:
        reason = err.strerror or err.__class__.__name__
    return MmdiagError(f"could not write {path}: {reason}; free space or fix permissions, then {fix}")
