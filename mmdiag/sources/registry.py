"""Data sources by name; built-ins are lazy, third parties add theirs through the ``mmdiag.sources`` entry point::

    [project.entry-points."mmdiag.sources"]
    my_photos = "their_pkg.sources:MyPhotoSource"

or at run time with :meth:`SourceRegistry.register` on a registry they own (``api.audit(..., sources=...)``).
"""

from __future__ import annotations

from typing import Any

from mmdiag.errors import ConfigError
from mmdiag.lazy_registry import LazyRegistry
from mmdiag.sources.contract import DataSource

ENTRY_POINT_GROUP = "mmdiag.sources"

BUILTIN_SOURCES: dict[str, str] = {
    "scenes": "mmdiag.sources.scenes:SceneSource",
    "coco": "mmdiag.sources.coco:CocoSource",
    "pope": "mmdiag.sources.pope_file:PopeFileSource",
    "relations": "mmdiag.sources.relation_sets:RelationSetSource",
}


class SourceRegistry(LazyRegistry):
    """Source name -> source class (a :class:`~mmdiag.sources.contract.DataSource` subclass), imported on first
    use."""

    kind = "data source"
    base = DataSource

    def __init__(self, load_entry_points: bool = True) -> None:
        super().__init__(BUILTIN_SOURCES, ENTRY_POINT_GROUP, load_entry_points)

    def get(self, name: str) -> type[DataSource]:
        if name not in self:
            raise ConfigError(f"unknown data source '{name}': choose from {', '.join(self.names())}")
        return self._resolve(name)

    def create(self, name: str, **params: Any) -> DataSource:
        """An instance of source ``name``; unknown parameters are a one-line ConfigError."""
        cls = self.get(name)
        try:
            return cls(**params)
        except TypeError as err:
            raise ConfigError(f"data source '{name}' does not take these parameters ({err}): check the suite") from err
