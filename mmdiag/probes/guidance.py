"""How to read a headline metric: which way is better, the value with no signal, the healthy range the
release gates use, one line of meaning, and when a value is too unstable to be a finding.

Each probe declares a :class:`~mmdiag.probes.metric_spec.MetricSpec` per headline metric
(``Probe.metric_specs``); third-party probes do the same. :func:`assess` turns a metric of a run, its guide and the
gates on it into a ``status`` that the
results document stores and every report renders (results.json schema 1.3: ``metric.guide``,
``metric.status``). The states, most urgent first:

``alarming``  a gate on the metric failed (this run's gate, or the release suite's healthy range when the
              run did not gate it);
``unstable``  the value is defined but not a finding: its CI is wider than the metric can carry, or a
              metric-specific check says the estimate is not interpretable (the reason is given);
``undefined`` no value, with the reason;
``healthy``   inside the healthy range of the gates;
``at_reference`` the 95% CI covers the no-signal value: indistinguishable from what a model without the
              signal would give;
``measured``  a value with no healthy range (descriptive or a reference number).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

from mmdiag.probes.metric_spec import MetricSpec, spec_for

STATES = ("alarming", "unstable", "undefined", "healthy", "at_reference", "measured")
_BOUND_LABELS = {"value": "", "ci_low": "CI low ", "ci_high": "CI high "}
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def _reference(guide: MetricSpec, metric: dict[str, Any], probe_result: dict[str, Any]) -> float | None:
    if callable(guide.reference):
        try:
            value = guide.reference(probe_result)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
        return None if value is None else float(value)
    if guide.reference is not None:
        return float(guide.reference)
    return metric.get("null")


def healthy_text(gates: Iterable[str]) -> str | None:
    """``"ci_low >= 0.65"`` for the gates (``probe.metric[.bound] op threshold``) on one metric, joined."""
    parts = []
    for gate in gates:
        name, op, threshold = gate.split()
        bound = name.split(".")[2] if name.count(".") == 2 else "value"
        parts.append(f"{_BOUND_LABELS[bound]}{op} {threshold}")
    return " and ".join(parts) or None


def _gate_holds(gate: str, metric: dict[str, Any]) -> bool | None:
    name, op, threshold = gate.split()
    bound = name.split(".")[2] if name.count(".") == 2 else "value"
    value = metric.get(bound)
    return None if value is None else bool(_OPS[op](value, float(threshold)))


def assess(
    metric: dict[str, Any],
    guide: MetricSpec | None,
    run_gates: list[dict[str, Any]],
    release_gates: list[str],
    probe_result: dict[str, Any],
) -> dict[str, Any]:
    """The ``guide`` and ``status`` entries of one metric of a run.

    ``run_gates``: this run's gate outcomes on the metric (results.json ``gates`` entries); ``release_gates``:
    the release suite's gate texts on it for the model's kind, used as the healthy range when the run does not
    gate the metric.
    """
    gated = [g["gate"] for g in run_gates]
    ranges = gated or list(release_gates)
    source = "this run's gates" if gated else ("the release suite (not gated in this run)" if ranges else None)
    if guide is None:
        info: dict[str, Any] = {
            "better": "neither",
            "reference": None,
            "reference_label": "",
            "reference_is": "no_signal",
            "meaning": "",
            "healthy": healthy_text(ranges),
            "healthy_source": source,
        }
    else:
        info = {
            "better": guide.better,
            "reference": _reference(guide, metric, probe_result),
            "reference_label": guide.reference_label,
            "reference_is": guide.reference_is,
            "meaning": guide.meaning,
            "healthy": healthy_text(ranges),
            "healthy_source": source,
        }
    return {"guide": info, "status": _status(metric, guide, run_gates, ranges, info)}


def _status(
    metric: dict[str, Any],
    guide: MetricSpec | None,
    run_gates: list[dict[str, Any]],
    ranges: list[str],
    info: dict[str, Any],
) -> dict[str, str]:
    value, low, high = metric.get("value"), metric.get("ci_low"), metric.get("ci_high")
    failed = [g for g in run_gates if not g["passed"]]
    if failed:
        return {
            "state": "alarming",
            "reason": "failed gate "
            + ", ".join(g["gate"] for g in failed)
            + (f": {failed[0]['meaning']}" if failed[0].get("meaning") else ""),
        }
    if value is None:
        return {"state": "undefined", "reason": metric.get("undefined") or "no value on this run"}
    if not run_gates:
        outside = [g for g in ranges if _gate_holds(g, metric) is False]
        if outside:
            return {
                "state": "alarming",
                "reason": "outside the release suite's healthy range ("
                + healthy_text(outside)
                + "); not gated in this run",
            }
    unstable = _instability(metric, guide)
    if unstable:
        return {"state": "unstable", "reason": unstable}
    if run_gates:
        return {"state": "healthy", "reason": "passes " + ", ".join(g["gate"] for g in run_gates)}
    if ranges and all(_gate_holds(g, metric) for g in ranges):
        return {"state": "healthy", "reason": "inside the release suite's healthy range (" + healthy_text(ranges) + ")"}
    reference, label = info["reference"], info["reference_label"] or "the reference"
    if reference is None:
        return {"state": "measured", "reason": "no healthy range or reference: descriptive"}
    covered = low is not None and high is not None and low <= reference <= high
    if info["reference_is"] == "ideal":
        if covered or value == reference:
            return {"state": "healthy", "reason": f"consistent with the ideal value {reference:.3g} ({label})"}
        return {
            "state": "measured",
            "reason": f"{abs(value - reference):.3g} from the ideal value {reference:.3g} "
            f"({label}); no healthy range set",
        }
    if covered:
        return {
            "state": "at_reference",
            "reason": f"the 95% CI [{low:.3g}, {high:.3g}] covers {reference:.3g}, "
            f"the value of {label}: not distinguishable from no signal",
        }
    side = "above" if value > reference else "below"
    certain = " (the CI excludes it)" if low is not None and high is not None else " (no CI)"
    better = info["better"]
    judged = (
        ""
        if better not in ("higher", "lower")
        else (", the better side" if (better == "higher") == (value > reference) else ", the worse side")
    )
    return {"state": "measured", "reason": f"{side} {label} ({reference:.3g}){certain}{judged}; no healthy range set"}


def _instability(metric: dict[str, Any], guide: MetricSpec | None) -> str | None:
    if guide is None:
        return None
    if guide.unstable_if is not None:
        reason = guide.unstable_if(metric)
        if reason:
            return reason
    low, high = metric.get("ci_low"), metric.get("ci_high")
    if guide.max_ci_width is not None and low is not None and high is not None and high - low > guide.max_ci_width:
        return (
            f"the 95% CI [{low:.3g}, {high:.3g}] is wider than {guide.max_ci_width:g}: too few examples for a "
            "finding (run more scenes)"
        )
    return None


def annotate_results(
    probe_results: dict[str, dict[str, Any]],
    gates: list[dict[str, Any]],
    probe_classes: dict[str, Any],
    release_gates: list[str],
) -> None:
    """Add ``guide`` and ``status`` to every metric of every probe result, in place. ``gates``: this run's gate
    outcomes; ``release_gates``: the release suite's gates for the model's kind, normalised
    (``probe.metric[.bound] op threshold``)."""
    for name, result in probe_results.items():
        if "error" in result:
            continue
        cls = probe_classes.get(name)
        metrics = result.get("metrics", {})
        for metric_name, metric in metrics.items():
            full = f"{name}.{metric_name}"
            on_metric = [g for g in gates if g.get("metric") == full]
            release = [g for g in release_gates if ".".join(g.split()[0].split(".")[:2]) == full]
            metric.update(assess(metric, spec_for(cls, metric_name), on_metric, release, result))


def state_rank(metric: dict[str, Any]) -> tuple[int, int]:
    """Sort key: failed gates first, then gated metrics, then by state urgency."""
    status = metric.get("status") or {}
    state = status.get("state", "measured")
    gated = (metric.get("guide") or {}).get("healthy_source") == "this run's gates"
    return (STATES.index(state) if state in STATES else len(STATES), 0 if gated else 1)
