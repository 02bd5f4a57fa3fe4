"""Diagnostics: attention dominance, spatial information loss, counterfactual hallucination."""

from mmdiag.probes.base import ExampleOutput, Metric, Probe, ProbeExample, ProbeResult
from mmdiag.probes.registry import ProbeRegistry

__all__ = ["ExampleOutput", "Metric", "Probe", "ProbeExample", "ProbeRegistry", "ProbeResult"]
