"""One validation layer for what a user sets: audit bounds and probe parameter types.

The CLI flags, the suite files and :func:`mmdiag.api.audit` all pass through here before anything is loaded
or any file is touched, so a bad value is one :class:`~mmdiag.errors.ConfigError` line (exit 2), never a run
of failed examples or a traceback from deep inside numpy.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from mmdiag.errors import ConfigError

MAX_SCENES = 100_000  # scene specs are generated up front (~0.2 ms each); larger sets belong in several runs
MIN_RESOLUTION, MAX_RESOLUTION = 16, 1024  # below 16 px objects vanish; above 1024 px only memory grows
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_BATCH = 4096

# field -> (flag, low, high, why the bound exists)
BOUNDS: dict[str, tuple[str, int, int, str]] = {
    "n_examples": ("--n-examples", 1, MAX_SCENES, "split a larger set over several runs"),
    "resolution": ("--resolution", MIN_RESOLUTION, MAX_RESOLUTION, "scenes are rendered at this size in pixels"),
    "seed": ("--seed", 0, MAX_SEED, "numpy seeds are unsigned 32-bit"),
    "batch_size": ("--batch-size", 1, MAX_BATCH, "examples per forward"),
}


TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def parse_bool(value: Any, what: str) -> bool:
    """A boolean written by a person: ``True``/``False``, 1/0, or one of true/false/1/0/yes/no/on/off in any case
    (strings trimmed); anything else is a one-line ConfigError naming ``what``. Never Python truthiness: the
    string ``"no"`` is False here, and ``"maybe"`` is refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ConfigError(f"{what} must be true or false (also 1/0, yes/no, on/off), got {value!r}")


def check_bound(name: str, value: Any, source: str = "", label: str | None = None) -> int:
    """``value`` as a bounded integer for audit field ``name`` (shown as ``label``, default its flag);
    else a one-line ConfigError."""
    flag, low, high, why = BOUNDS[name]
    flag = (label if label.startswith("--") else f"'{label}'") if label else flag
    where = f"{source}: " if source else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}{flag} must be an integer from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{where}{flag} must be from {low} to {high} ({why}), got {value}")
    return value


def check_audit_config(config: Any) -> None:
    """Every bounded field of an :class:`~mmdiag.api.AuditConfig`, and its probe names."""
    for name in BOUNDS:
        check_bound(name, getattr(config, name))
    if not config.probes:
        raise ConfigError("no probes to run: name at least one (--probes attention,spatial,hallucination)")
    if len(set(config.probes)) != len(config.probes):
        raise ConfigError(f"a probe is named twice in {','.join(config.probes)}: name each once")


def check_probe_params(name: str, factory: Any, params: dict[str, Any]) -> None:
    """Type-check ``params`` against the annotations of ``factory``'s signature (a probe class or function).

    bool, int, float, str and tuple-of-str parameters are checked; an int parameter must be non-negative
    (they are counts and layers). Unknown parameters are left to the constructor's own TypeError.
    """
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
        signature = inspect.signature(target)
    except (TypeError, ValueError, NameError):
        return  # a third-party factory without resolvable hints: its constructor checks its own inputs
    for key, value in params.items():
        if key not in signature.parameters or key not in hints:
            continue
        problem = _type_problem(hints[key], value)
        if problem:
            raise ConfigError(f"probe '{name}' parameter '{key}' {problem}, got {value!r}: check the suite or flags")


def _type_problem(hint: Any, value: Any) -> str | None:
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        return None if value >= 0 else "must be non-negative"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        return None if ok else "must be a number"
    if hint is str:
        return None if isinstance(value, str) else "must be a string"
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        item = args[0] if args else Any
        if not isinstance(value, (list, tuple)):
            return "must be a list"
        if item in (str, int, float) and not all(isinstance(v, item) and not isinstance(v, bool) for v in value):
            return f"must be a list of {item.__name__}"
    return None
