"""Intervention name -> class, with entry points (``mmdiag.interventions``) like probes and sources; and the parser
of ``NAME[:k=v,...]`` specs (the command line's ``--intervene``, a suite's ``interventions:``)."""

from __future__ import annotations

import difflib
from typing import Any

from mmdiag.errors import ConfigError
from mmdiag.lazy_registry import LazyRegistry

ENTRY_POINT_GROUP = "mmdiag.interventions"
BUILTIN_INTERVENTIONS: dict[str, str] = {
    "fastv": "mmdiag.interventions.fastv:FastV",
    "knockout": "mmdiag.interventions.knockout:Knockout",
    "pai": "mmdiag.interventions.pai:PAI",
    "vcd": "mmdiag.interventions.vcd:VisualContrastiveDecoding",
}


class InterventionRegistry(LazyRegistry):
    """Intervention name -> :class:`~mmdiag.interventions.base.Intervention` subclass, imported on first use."""

    kind = "intervention"
    base = "mmdiag.interventions.base:Intervention"

    def __init__(self, load_entry_points: bool = True) -> None:
        super().__init__(BUILTIN_INTERVENTIONS, ENTRY_POINT_GROUP, load_entry_points)

    def get(self, name: str) -> type:
        if name not in self:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown intervention '{name}': choose from {', '.join(self.names())}{hint}")
        return self._resolve(name)

    def create(self, spec: str) -> Any:
        """The intervention ``NAME[:k=v,...]`` names, its parameters validated (a one-line ConfigError if not)."""
        name, params = parse_spec(spec)
        return self.get(name)(**params)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"knockout:layers=0-3,from=last"`` -> ``("knockout", {"layers": "0-3", "from": "last"})``."""
    name, _, rest = str(spec).strip().partition(":")
    if not name:
        raise ConfigError(f"--intervene {spec!r}: give NAME or NAME:key=value,... (e.g. vcd or knockout:layers=all)")
    params: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--intervene {spec!r}: '{item}' is not key=value")
        if key.strip() in params:
            raise ConfigError(f"--intervene {spec!r}: {key.strip()} is given twice")
        params[key.strip()] = value.strip()
    return name.strip(), params


def create_all(specs: tuple[str, ...] | list[str], registry: InterventionRegistry | None = None) -> list[Any]:
    """Every intervention of ``specs``, validated; the same intervention twice is refused."""
    registry = registry or InterventionRegistry()
    made = [registry.create(spec) for spec in specs]
    names = [iv.name for iv in made]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"--intervene names {', '.join(twice)} twice: give each intervention once")
    contrasting = [iv.name for iv in made if iv.contrasts_decisions]
    if len(contrasting) > 1:
        raise ConfigError(
            f"--intervene {' and '.join(contrasting)} both decide from contrasted logits: give one of them "
            "(pai:gamma=1 keeps PAI's amplification alone)"
        )
    return made


def canonical_interventions(specs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``specs`` validated and spelled out with every parameter (``vcd`` -> ``vcd:alpha=1,beta=0.1,t=500``): the
    form a run's configuration and identity record."""
    return tuple(iv.spec() for iv in create_all(specs))
