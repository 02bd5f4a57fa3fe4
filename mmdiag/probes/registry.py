"""Probes by name; built-ins are lazy, third parties add theirs through the ``mmdiag.probes`` entry point::

    [project.entry-points."mmdiag.probes"]
    my_probe = "their_pkg.probes:MyProbe"
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from mmdiag.adapters.registry import _import_object
from mmdiag.errors import ConfigError
from mmdiag.validation import check_probe_params

ENTRY_POINT_GROUP = "mmdiag.probes"

BUILTIN_PROBES: dict[str, str] = {
    "attention": "mmdiag.probes.attention:AttentionProbe",
    "spatial": "mmdiag.probes.spatial:SpatialProbe",
    "hallucination": "mmdiag.probes.hallucination:HallucinationProbe",
}


class ProbeRegistry:
    """Probe name -> probe class, imported on first use."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self._targets: dict[str, Any] = dict(BUILTIN_PROBES)
        if load_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                self._targets.setdefault(ep.name, ep)

    def register(self, name: str, target: str | type | Any) -> None:
        """Add a probe: a class, a factory, or a lazy ``"module:Class"`` string."""
        self._targets[name] = target

    def names(self) -> list[str]:
        return list(self._targets)

    def get(self, name: str) -> type:
        if name not in self._targets:
            raise ConfigError(f"unknown probe '{name}': choose from {', '.join(self._targets)}")
        target = self._targets[name]
        if isinstance(target, str):
            target = _import_object(target)
        elif isinstance(target, EntryPoint):
            target = target.load()
        self._targets[name] = target  # a probe class, or any factory taking the probe's parameters
        return target

    def create(self, name: str, **params: Any) -> Any:
        """An instance of probe ``name``; an unknown or mistyped parameter is a one-line ConfigError."""
        cls = self.get(name)
        check_probe_params(name, cls, params)
        try:
            return cls(**params)
        except TypeError as err:
            raise ConfigError(f"probe '{name}' does not take these parameters ({err}): check the suite or flags") from err
