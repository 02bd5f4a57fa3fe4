"""The registry pattern every extension point shares (adapters, probes, data sources): name -> object, where the
object may be given as a lazy ``"module:attr"`` string or an installed entry point and is imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any


def import_object(target: str) -> Any:
    """``"package.module:attr"`` -> the object."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class LazyRegistry:
    """Built-in entries plus every entry point of ``group`` (built-ins win a name clash)."""

    def __init__(self, builtins: Mapping[str, Any], group: str, load_entry_points: bool = True) -> None:
        self._targets: dict[str, Any] = dict(builtins)
        if load_entry_points:
            for ep in entry_points(group=group):
                self._targets.setdefault(ep.name, ep)

    def register(self, name: str, target: Any) -> None:
        """Add an entry: the object itself or a lazy ``"module:attr"`` string."""
        self._targets[name] = target

    def names(self) -> list[str]:
        return list(self._targets)

    def __contains__(self, name: str) -> bool:
        return name in self._targets

    def _resolve(self, name: str) -> Any:
        """The object registered under ``name`` (``KeyError`` if none), imported once."""
        target = self._targets[name]
        if isinstance(target, str):
            target = import_object(target)
        elif isinstance(target, EntryPoint):
            target = target.load()
        self._targets[name] = target
        return target
