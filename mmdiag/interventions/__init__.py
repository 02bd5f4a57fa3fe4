"""Interventions: knockout, FastV, VCD (and third parties' through the ``mmdiag.interventions`` entry point),
applied to a whole audit with ``mmdiag audit --intervene NAME[:k=v,...]`` and re-measured by the same diagnostics."""

from mmdiag.interventions.base import Intervention, Param
from mmdiag.interventions.registry import InterventionRegistry, create_all, parse_spec

__all__ = ["Intervention", "InterventionRegistry", "Param", "create_all", "parse_spec"]
