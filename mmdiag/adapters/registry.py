"""Adapters keyed by ``config.architectures``; built-ins are lazy, third parties use entry points.

A third-party package adds a family without touching mmdiag by declaring, in its pyproject::

    [project.entry-points."mmdiag.adapters"]
    Qwen2VLForConditionalGeneration = "their_pkg.adapters:Qwen2VLAdapter"

or, at run time, ``AdapterRegistry.register("Arch", "pkg.module:Class")`` on a registry it owns. mmdiag's own
reference zoo registers its architecture that way (``pyproject.toml``), so this module names no zoo code.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import Any

ENTRY_POINT_GROUP = "mmdiag.adapters"

BUILTIN_ADAPTERS: dict[str, str] = {
    "LlavaForConditionalGeneration": "mmdiag.adapters.llava:LlavaAdapter",
    "Blip2ForConditionalGeneration": "mmdiag.adapters.blip2:Blip2Adapter",
    "CLIPModel": "mmdiag.adapters.clip_hf:HFClipAdapter",
    "open_clip": "mmdiag.adapters.open_clip:OpenClipAdapter",
}


def _import_object(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class AdapterRegistry:
    """Architecture name -> adapter class, imported only when asked for."""

    def __init__(self, builtins: dict[str, str] | None = None, load_entry_points: bool = True) -> None:
        self._targets: dict[str, Any] = dict(BUILTIN_ADAPTERS if builtins is None else builtins)
        if load_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                self._targets.setdefault(ep.name, ep)

    def register(self, architecture: str, target: str | type) -> None:
        """Map ``architecture`` to an adapter class or a lazy ``"module:Class"`` string."""
        self._targets[architecture] = target

    def supported(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, architecture: str) -> bool:
        return architecture in self._targets

    def get(self, architecture: str) -> type:
        """The adapter class for ``architecture`` (KeyError if none is registered)."""
        target = self._targets[architecture]
        if isinstance(target, str):
            target = _import_object(target)
        elif isinstance(target, EntryPoint):
            target = target.load()
        self._targets[architecture] = target
        return target


def default_registry() -> AdapterRegistry:
    """A registry of the built-in families plus every installed ``mmdiag.adapters`` entry point."""
    return AdapterRegistry()
