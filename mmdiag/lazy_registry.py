"""The registry pattern every extension point shares (adapters, probes, data sources, metric specs): name -> object,
where the object may be given as a lazy ``"module:attr"`` string or an installed entry point and is imported on first
use.

A name is held by one provider. A second provider of the same name (an entry point named like a built-in, two
installed packages with one name, a ``register`` call) is refused with a one-line error naming both, unless the
caller asks for the replacement explicitly (``register(name, target, override=True)``). The object a name resolves to
is checked against the registry's base class when it is first imported, so a wrong entry point fails at once and by
name, not deep inside a run."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from mmdiag.errors import ConfigError

BUILTIN_PROVIDER = "mmdiag (built-in)"


class RegistryError(ConfigError):
    """A registry entry clashes with another or is not what the registry holds (one line, exit 2)."""


def import_object(target: str) -> Any:
    """``"package.module:attr"`` -> the object."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _provider(entry: EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    name = getattr(dist, "name", None) or getattr(dist, "metadata", {}).get("Name") if dist is not None else None
    return f"{name or 'an installed package'} (entry point {entry.group}: {entry.value})"


def _describe(target: Any) -> str:
    if isinstance(target, str):
        return target
    if isinstance(target, EntryPoint):
        return target.value
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', type(target).__name__)}"


class LazyRegistry:
    """Built-in entries plus every entry point of ``group``; a name clash is refused (see the module docstring).

    Subclasses set ``kind`` (what an entry is, for messages) and ``base`` (a class, or a lazy ``"module:attr"``
    string naming it, that a registered class must subclass; a non-class callable is accepted as a factory).
    """

    kind: str = "entry"
    base: type | str | None = None

    def __init__(self, builtins: Mapping[str, Any], group: str, load_entry_points: bool = True) -> None:
        self._targets: dict[str, Any] = dict(builtins)
        self._providers: dict[str, str] = {name: BUILTIN_PROVIDER for name in builtins}
        self._checked: set[str] = set()
        if load_entry_points:
            for entry in entry_points(group=group):
                held = self._targets.get(entry.name)
                if held is not None and _describe(held) == entry.value:
                    continue  # the same object declared twice (e.g. two installs of one package): no clash
                self._add(entry.name, entry, _provider(entry), override=False)

    def _add(self, name: str, target: Any, provider: str, override: bool) -> None:
        if name in self._targets and not override:
            article = "an" if self.kind[0] in "aeiou" else "a"
            raise RegistryError(
                f"{self.kind} '{name}' is provided twice: by {self._providers[name]} and by {provider}; rename one "
                f"({article} {self.kind} name is held by one provider), or replace it explicitly with "
                f"register('{name}', ..., override=True)"
            )
        self._targets[name] = target
        self._providers[name] = provider
        self._checked.discard(name)

    def register(self, name: str, target: Any, *, override: bool = False, provider: str | None = None) -> None:
        """Add an entry: the object itself or a lazy ``"module:attr"`` string. A name already held is refused
        unless ``override=True`` (then this entry replaces it)."""
        self._add(name, target, provider or f"register() ({_describe(target)})", override)

    def names(self) -> list[str]:
        return list(self._targets)

    def provider(self, name: str) -> str:
        """Who provides ``name`` (the built-ins, an installed package's entry point, a ``register`` call)."""
        return self._providers[name]

    def __contains__(self, name: str) -> bool:
        return name in self._targets

    def _base(self) -> type | None:
        if isinstance(self.base, str):
            return import_object(self.base)
        return self.base

    def _resolve(self, name: str) -> Any:
        """The object registered under ``name`` (``KeyError`` if none), imported once and checked against
        ``base``."""
        target = self._targets[name]
        try:
            if isinstance(target, str):
                target = import_object(target)
            elif isinstance(target, EntryPoint):
                target = target.load()
        except (ImportError, AttributeError) as err:
            raise RegistryError(
                f"{self.kind} '{name}' from {self._providers[name]} cannot be imported "
                f"({err.__class__.__name__}: {err}): fix or uninstall that package"
            ) from err
        if name not in self._checked:
            self._check(name, target)
        self._targets[name] = target
        self._checked.add(name)
        return target

    def _check(self, name: str, target: Any) -> None:
        base = self._base()
        if base is None:
            return
        if inspect.isclass(target):
            if not issubclass(target, base):
                raise RegistryError(
                    f"{self.kind} '{name}' from {self._providers[name]} is {_describe(target)}, not a "
                    f"{base.__module__}.{base.__qualname__}: register a subclass of it"
                )
        elif not callable(target):
            raise RegistryError(
                f"{self.kind} '{name}' from {self._providers[name]} is a {type(target).__name__}, "
                f"neither a {base.__qualname__} subclass nor a factory that makes one"
            )
