"""Release gates: thresholds on named metrics (``probe.metric OP value``), evaluated on results."""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass
from typing import Any

from mmdiag.errors import ConfigError

INTEGRITY_METRICS = ("failed_examples",)  # offered by every probe: examples recorded with an error
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_GATE = re.compile(r"^\s*([A-Za-z_][\w]*)\.([A-Za-z_][\w]*)\s*(>=|<=|>|<)\s*(-?[\d.]+(?:e-?\d+)?)\s*$")


@dataclass(frozen=True)
class Gate:
    """``probe.metric op threshold``, e.g. ``hallucination.f1 >= 0.8``."""

    probe: str
    metric: str
    op: str
    threshold: float

    @property
    def name(self) -> str:
        return f"{self.probe}.{self.metric}"

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.threshold:g}"


def parse_gate(text: str) -> Gate:
    """Parse ``"probe.metric>=0.8"``; raises ConfigError with the expected form."""
    match = _GATE.match(text)
    if not match:
        raise ConfigError(f"cannot read gate '{text}': write it as probe.metric>=number, e.g. hallucination.f1>=0.8")
    probe, metric, op, value = match.groups()
    return Gate(probe, metric, op, float(value))


@dataclass
class GateOutcome:
    gate: str
    value: float | None
    passed: bool
    margin: float | None  # how far past (positive) or short of (negative) the threshold

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_gates(gates: list[Gate], probe_results: dict[str, dict[str, Any]]) -> list[GateOutcome]:
    """Evaluate each gate on ``results["probes"]``; a missing or undefined metric fails its gate."""
    outcomes = []
    for gate in gates:
        probe = probe_results.get(gate.probe, {})
        if gate.metric in INTEGRITY_METRICS:
            value = probe.get("n_failed") if probe else None
        else:
            metric = probe.get("metrics", {}).get(gate.metric)
            value = None if metric is None else metric.get("value")
        if value is None:
            outcomes.append(GateOutcome(str(gate), None, False, None))
            continue
        passed = _OPS[gate.op](value, gate.threshold)
        margin = value - gate.threshold if gate.op in (">=", ">") else gate.threshold - value
        outcomes.append(GateOutcome(str(gate), float(value), bool(passed), float(margin)))
    return outcomes
