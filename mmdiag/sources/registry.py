"""Data sources by name; built-ins are lazy, third parties add theirs through the ``mmdiag.sources`` entry point::

    [project.entry-points."mmdiag.sources"]
    my_photos = "their_pkg.sources:MyPhotoSource"

or at run time with :meth:`SourceRegistry.register` on a registry they own (``api.audit(..., sources=...)``).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from mmdiag.errors import ConfigError
from mmdiag.sources.contract import DataSource

ENTRY_POINT_GROUP = "mmdiag.sources"

BUILTIN_SOURCES: dict[str, str] = {
    "scenes": "mmdiag.sources.scenes:SceneSource",
}


class SourceRegistry:
    """Source name -> source class, imported on first use."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self._targets: dict[str, Any] = dict(BUILTIN_SOURCES)
        if load_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                self._targets.setdefault(ep.name, ep)

    def register(self, name: str, target: str | type) -> None:
        """Add a source: a :class:`DataSource` subclass or a lazy ``"module:Class"`` string."""
        self._targets[name] = target

    def names(self) -> list[str]:
        return list(self._targets)

    def get(self, name: str) -> type[DataSource]:
        if name not in self._targets:
            raise ConfigError(f"unknown data source '{name}': choose from {', '.join(self._targets)}")
        target = self._targets[name]
        if isinstance(target, str):
            import importlib

            module_name, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module_name), attr)
        elif isinstance(target, EntryPoint):
            target = target.load()
        self._targets[name] = target
        return target

    def create(self, name: str, **params: Any) -> DataSource:
        """An instance of source ``name``; unknown parameters are a one-line ConfigError."""
        cls = self.get(name)
        try:
            return cls(**params)
        except TypeError as err:
            raise ConfigError(f"data source '{name}' does not take these parameters ({err}): check the suite") from err
