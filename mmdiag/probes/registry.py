"""Probes by name; built-ins are lazy, third parties add theirs through the ``mmdiag.probes`` entry point::

[project.entry-points."mmdiag.probes"]
my_probe = "their_pkg.probes:MyProbe"
"""

from __future__ import annotations

from typing import Any

from mmdiag.errors import ConfigError
from mmdiag.lazy_registry import LazyRegistry
from mmdiag.validation import check_probe_params

ENTRY_POINT_GROUP = "mmdiag.probes"

BUILTIN_PROBES: dict[str, str] = {
    "attention": "mmdiag.probes.attention:AttentionProbe",
    "spatial": "mmdiag.probes.spatial:SpatialProbe",
    "hallucination": "mmdiag.probes.hallucination:HallucinationProbe",
    "relations": "mmdiag.probes.relations:RelationsProbe",
    "flow": "mmdiag.probes.flow:FlowProbe",
}


class ProbeRegistry(LazyRegistry):
    """Probe name -> probe class (a :class:`~mmdiag.probes.base.Probe` subclass, or a factory that makes one),
    imported on first use."""

    kind = "probe"
    base = "mmdiag.probes.base:Probe"

    def __init__(self, load_entry_points: bool = True) -> None:
        super().__init__(BUILTIN_PROBES, ENTRY_POINT_GROUP, load_entry_points)

    def get(self, name: str) -> type:
        if name not in self:
            raise ConfigError(f"unknown probe '{name}': choose from {', '.join(self.names())}")
        return self._resolve(name)  # a probe class, or any factory taking the probe's parameters

    def create(self, name: str, **params: Any) -> Any:
        """An instance of probe ``name``; an unknown or mistyped parameter is a one-line ConfigError."""
        cls = self.get(name)
        check_probe_params(name, cls, params)
        try:
            probe = cls(**params)
        except TypeError as err:
            raise ConfigError(
                f"probe '{name}' does not take these parameters ({err}): check the suite or flags"
            ) from err
        from mmdiag.probes.base import Probe

        if not isinstance(probe, Probe):
            raise ConfigError(
                f"probe '{name}' from {self.provider(name)} made a {type(probe).__name__}, not a Probe: "
                "its factory must return a mmdiag.probes.base.Probe"
            )
        return probe
