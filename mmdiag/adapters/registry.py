"""Adapters keyed by ``config.architectures``; built-ins are lazy, third parties use entry points.

The built-ins come from the family declarations (:mod:`mmdiag.families`). A third-party package adds a family
without touching mmdiag by declaring a :class:`~mmdiag.families.Family` under the ``mmdiag.families`` entry point, or
just an adapter, in its pyproject::

    [project.entry-points."mmdiag.adapters"]
    Qwen2VLForConditionalGeneration = "their_pkg.adapters:Qwen2VLAdapter"

or, at run time, ``AdapterRegistry.register("Arch", "pkg.module:Class")`` on a registry it owns. mmdiag's own
reference zoo registers its architecture that way (``pyproject.toml``), so this module names no zoo code.
"""

from __future__ import annotations

from mmdiag.families import adapter_targets
from mmdiag.lazy_registry import LazyRegistry

ENTRY_POINT_GROUP = "mmdiag.adapters"

BUILTIN_ADAPTERS: dict[str, str] = adapter_targets()
"""Architecture -> adapter target, from the family declarations (:mod:`mmdiag.families`)."""


class AdapterRegistry(LazyRegistry):
    """Architecture name -> adapter class (a :class:`~mmdiag.adapters.base.Adapter` subclass), imported only when
    asked for."""

    kind = "adapter for architecture"
    base = "mmdiag.adapters.base:Adapter"

    def __init__(self, builtins: dict[str, str] | None = None, load_entry_points: bool = True) -> None:
        super().__init__(BUILTIN_ADAPTERS if builtins is None else builtins, ENTRY_POINT_GROUP, load_entry_points)

    def supported(self) -> list[str]:
        return sorted(self.names())

    def get(self, architecture: str) -> type:
        """The adapter class for ``architecture`` (KeyError if none is registered)."""
        return self._resolve(architecture)


def default_registry() -> AdapterRegistry:
    """A registry of the built-in families plus every installed ``mmdiag.adapters`` entry point."""
    return AdapterRegistry()
