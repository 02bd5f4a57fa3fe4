"""The verdict a person reads first: PASS/FAIL, the failed gates with value and CI against the threshold,
and one plain sentence per failure saying what it means (each metric's spec holds that sentence:
:mod:`mmdiag.probes.metric_spec`, stored with the gate's outcome). Terminal, report.md and report.html share it."""

from __future__ import annotations

from typing import Any


def _num(value: Any) -> str:
    return "undefined" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def describe_outcome(gate: dict[str, Any]) -> str:
    """``gate: FAIL (ci_low 0.01 < 0.25; multimodal_gain 0.03 [0.01, 0.05]) - meaning`` on one line."""
    status = "pass" if gate["passed"] else "FAIL"
    if gate.get("reason") and gate.get("value") is None:
        return f"{gate['gate']}: {status} - {gate.get('meaning') or gate['reason']}"
    metric = gate.get("metric", gate["gate"].split()[0]).split(".", 1)[-1]
    ci = (
        f" [{_num(gate.get('ci_low'))}, {_num(gate.get('ci_high'))}]"
        if gate.get("ci_low") is not None or gate.get("ci_high") is not None
        else ""
    )
    estimate = gate.get("estimate", gate.get("value"))
    line = f"{gate['gate']}: {status} ({metric} {_num(estimate)}{ci}"
    if gate.get("bound", "value") != "value":
        line += f"; {gate['bound']} {_num(gate.get('value'))}"
    line += f", margin {_num(gate.get('margin'))})"
    if not gate["passed"] and gate.get("meaning"):
        line += f" - {gate['meaning']}"
    return line


def is_integrity_gate(gate: dict[str, Any]) -> bool:
    """A gate on ``<probe>.failed_examples``: it checks that the run ran, not the model's quality."""
    return gate["gate"].split()[0].endswith(".failed_examples")


def is_release_verdict(results: dict[str, Any]) -> bool:
    """Whether the run's gates judge the model (at least one quality gate), not only the run's integrity."""
    return any(not is_integrity_gate(g) for g in results.get("gates", []))


def verdict_lines(results: dict[str, Any]) -> list[str]:
    """The verdict first, then each failed gate (and each failed probe) on one line. A passing run whose gates
    are integrity checks alone (``--suite quick``) says so instead of PASS: it is no release verdict."""
    gates = results.get("gates", [])
    failed = [g for g in gates if not g["passed"]]
    broken = [(name, p["error"]) for name, p in results.get("probes", {}).items() if "error" in p]
    if results.get("verdict") == "pass" and not is_release_verdict(results):
        return [
            f"no release verdict: integrity checks only ({len(gates)} of {len(gates)} passed); the suite gates "
            "no quality metric (the default suite, release, does)"
        ]
    head = "PASS" if results.get("verdict") == "pass" else "FAIL"
    summary = f"{head}: {len(gates) - len(failed)} of {len(gates)} gates passed"
    if failed:
        summary += f"; failed: {', '.join(g['gate'] for g in failed)}"
    if (results.get("metadata", {}).get("model") or {}).get("family") == "answers":
        summary += " - from answers alone: diagnostics that need the model's weights were not measured (see notes)"
    lines = [summary]
    lines += [f"  {describe_outcome(g)}" for g in failed]
    lines += [f"  probe {name} failed: {error}" for name, error in broken]
    return lines
