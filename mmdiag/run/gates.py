"""Release gates: thresholds on named metrics, evaluated on results.

A gate reads a metric's point value or one bound of its 95% CI::

    hallucination.f1 >= 0.8                      # the point value
    hallucination.multimodal_gain.ci_low >= 0.2  # the CI's lower bound must clear the threshold
    hallucination.prior_persistence_cooccurring.ci_high <= 0.3

A gate on a CI bound passes only when the evidence shows the model on the right side of the threshold; a
metric (or bound) that is undefined on the run fails its gate, with the reason, never passes silently.
"""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass
from typing import Any

from mmdiag.errors import ConfigError
from mmdiag.probes.metric_spec import INTEGRITY_METRICS as _INTEGRITY_SPECS
from mmdiag.probes.metric_spec import spec_for

INTEGRITY_METRICS = tuple(_INTEGRITY_SPECS)  # offered by every probe: examples recorded with an error
BOUNDS = ("value", "ci_low", "ci_high")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_GATE = re.compile(rf"^\s*([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:\.({'|'.join(BOUNDS)}))?\s*(>=|<=|>|<)\s*({_NUMBER})\s*$")
_FORM = (
    "write it as probe.metric>=number or probe.metric.ci_low>=number, e.g. hallucination.multimodal_gain.ci_low>=0.2"
)


@dataclass(frozen=True)
class Gate:
    """``probe.metric[.bound] op threshold``, e.g. ``hallucination.multimodal_gain.ci_low >= 0.2``."""

    probe: str
    metric: str
    op: str
    threshold: float
    bound: str = "value"  # value, ci_low or ci_high

    @property
    def name(self) -> str:
        return f"{self.probe}.{self.metric}"

    def __str__(self) -> str:
        suffix = "" if self.bound == "value" else f".{self.bound}"
        return f"{self.name}{suffix} {self.op} {self.threshold:g}"


def parse_gate(text: str) -> Gate:
    """Parse ``"probe.metric>=0.8"`` or ``"probe.metric.ci_low>=0.8"``; raises ConfigError with the form."""
    match = _GATE.match(str(text))
    if not match:
        raise ConfigError(f"cannot read gate '{text}': {_FORM}")
    probe, metric, bound, op, value = match.groups()
    bound = bound or "value"
    if metric in INTEGRITY_METRICS and bound != "value":
        raise ConfigError(
            f"gate '{text}': {metric} is a count without a CI; gate its value, e.g. {probe}.{metric} <= 0"
        )
    return Gate(probe, metric, op, float(value), bound)


@dataclass
class GateOutcome:
    """One gate on one run: the number compared, the metric with its CI, and what a failure means."""

    gate: str
    value: float | None  # the number compared with the threshold (the point value or the named CI bound)
    passed: bool
    margin: float | None  # how far past (positive) or short of (negative) the threshold
    metric: str = ""
    bound: str = "value"
    threshold: float | None = None
    estimate: float | None = None  # the metric's point value
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str | None = None  # why the gate could not be evaluated (undefined metric), else None
    meaning: str | None = None  # one plain sentence of what the failure means, for failed gates

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def failure_meaning(gate: Gate, probe_classes: dict[str, Any] | None = None) -> str:
    """The plain sentence a failed gate prints: its metric spec's ``failure`` (the probe class from
    ``probe_classes``, else the registry)."""
    cls = (probe_classes or {}).get(gate.probe)
    if cls is None and gate.metric not in INTEGRITY_METRICS:
        from mmdiag.probes.registry import ProbeRegistry

        registry = ProbeRegistry()
        cls = registry.get(gate.probe) if gate.probe in registry else None
    spec = spec_for(cls, gate.metric)
    return spec.failure_text(gate.metric) if spec is not None else f"{gate.name} is on the wrong side of its threshold"


def evaluate_gates(
    gates: list[Gate],
    probe_results: dict[str, dict[str, Any]],
    skipped: dict[str, str] | None = None,
    probe_classes: dict[str, Any] | None = None,
) -> list[GateOutcome]:
    """Evaluate each gate on ``results["probes"]``; a missing or undefined metric fails its gate with a reason.

    ``skipped`` maps probes that did not run to why (e.g. not applicable to the model's kind); ``probe_classes``
    (name -> class) give the sentence a failed gate prints (its metric's spec; default: the registry's probes).
    """
    skipped = skipped or {}
    outcomes = []
    for gate in gates:
        probe = probe_results.get(gate.probe)
        estimate = low = high = None
        reason = None
        if probe is None:
            reason = f"probe {gate.probe} did not run" + (f": {skipped[gate.probe]}" if gate.probe in skipped else "")
        elif "error" in probe:
            reason = f"probe {gate.probe} failed: {probe['error']}"
        elif gate.metric in INTEGRITY_METRICS:
            estimate = probe.get("n_failed")
        else:
            metric = probe.get("metrics", {}).get(gate.metric) or {}
            estimate, low, high = metric.get("value"), metric.get("ci_low"), metric.get("ci_high")
        value = {"value": estimate, "ci_low": low, "ci_high": high}[gate.bound]
        if value is None and reason is None:
            reason = (
                f"{gate.name} is undefined on this run (no examples it applies to)"
                if estimate is None
                else f"{gate.name} has no confidence interval on this run"
            )
        common = dict(
            metric=gate.name,
            bound=gate.bound,
            threshold=gate.threshold,
            estimate=None if estimate is None else float(estimate),
            ci_low=None if low is None else float(low),
            ci_high=None if high is None else float(high),
        )
        if value is None:
            outcomes.append(
                GateOutcome(
                    str(gate),
                    None,
                    False,
                    None,
                    reason=reason,
                    meaning=f"the gate could not be checked: {reason}",
                    **common,
                )
            )
            continue
        passed = bool(_OPS[gate.op](value, gate.threshold))
        margin = value - gate.threshold if gate.op in (">=", ">") else gate.threshold - value
        outcomes.append(
            GateOutcome(
                str(gate),
                float(value),
                passed,
                float(margin),
                meaning=None if passed else failure_meaning(gate, probe_classes),
                **common,
            )
        )
    return outcomes
