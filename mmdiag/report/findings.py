"""The top of the report: one finding per diagnostic with the gates it decided, and what to do next.

Each probe words its own finding (:meth:`mmdiag.probes.base.Probe.finding`); this module adds the gates whose
metric belongs to the probe and the run-level next steps. Built from results.json and examples.jsonl alone.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from mmdiag.errors import MmdiagError
from mmdiag.probes.registry import ProbeRegistry
from mmdiag.probes.sections import Finding, default_finding
from mmdiag.probes.spatial.finding import COMPARE_PROJECTORS
from mmdiag.verdicts import describe_outcome, is_integrity_gate, verdict_lines


def model_name(model: dict[str, Any]) -> str:
    """A short name for the model: its zoo card's name, else the last part of its folder, else its source."""
    card = model.get("card") or {}
    if card.get("name"):
        return str(card["name"])
    source = str(model.get("source", "?"))
    if "/" in source and (source.startswith(("/", ".", "~")) or PurePath(source).is_absolute()):
        return PurePath(source).name or source
    return source


def gate_probe(gate: dict[str, Any]) -> str:
    return str(gate.get("metric") or gate["gate"].split()[0]).split(".", 1)[0]


def probe_findings(
    results: dict[str, Any], records: dict[str, list[dict[str, Any]]], registry: ProbeRegistry | None = None
) -> list[dict[str, Any]]:
    """One card per probe, in run order: ``{id, probe, finding: Finding, state, gates: {passed, total, failed,
    passed_lines}}``; ``state`` is ``fail`` when a gate of the probe failed or the probe failed, ``pass`` when its
    quality gates passed, ``ungated`` when no quality gate judged it."""
    registry = registry or ProbeRegistry()
    cards = []
    for name, result in (results.get("probes") or {}).items():
        gates = [g for g in results.get("gates") or [] if gate_probe(g) == name]
        failed = [g for g in gates if not g["passed"]]
        if "error" in result:
            finding = Finding(name, f"The probe failed and measured nothing: {result['error']}", no_figure="failed")
            state = "fail"
        else:
            try:
                finding = registry.get(name).finding(result, records.get(name, []))
            except MmdiagError:  # a probe that is not installed here
                finding = default_finding(name, result, {})
            if finding is None:
                continue
            quality = [g for g in gates if not is_integrity_gate(g)]
            state = "fail" if failed else "pass" if quality else "ungated"
        cards.append(
            {
                "id": f"finding-{name}",
                "probe": name,
                "finding": finding,
                "state": state,
                "gates": {
                    "passed": len(gates) - len(failed),
                    "total": len(gates),
                    "failed": [describe_outcome(g) for g in failed],
                    "passed_lines": [describe_outcome(g) for g in gates if g["passed"]],
                },
            }
        )
    return cards


def verdict_headline(results: dict[str, Any]) -> str:
    """The verdict's first line, with the failed gates counted per diagnostic (their lines are on the cards)."""
    head = verdict_lines(results)[0]
    failed = [g for g in results.get("gates") or [] if not g["passed"]]
    if not failed:
        return head
    counts: dict[str, int] = {}
    for gate in failed:
        counts[gate_probe(gate)] = counts.get(gate_probe(gate), 0) + 1
    passed = len(results["gates"]) - len(failed)
    return (
        f"FAIL: {passed} of {len(results['gates'])} gates passed; failed: "
        + ", ".join(f"{probe} {n}" for probe, n in counts.items())
        + " (each named on its diagnostic's card below)"
    )


def next_steps(results: dict[str, Any], cards: list[dict[str, Any]], run_dir: str) -> list[str]:
    """What to do after reading the findings: the failed gates first, then the probes' own suggestions, then the
    suites this run did not cover and how to guard the next change."""
    steps = []
    if results.get("verdict") == "fail":
        steps.append("Each failed gate above says what it means; fix the model or explain it before shipping.")
    for card in cards:
        steps += list(card["finding"].next_steps)
    config = (results.get("metadata") or {}).get("config") or {}
    probes = config.get("probes") or []
    hallucination = (config.get("probe_params") or {}).get("hallucination") or {}
    pairs = (config.get("recipe") or {}).get("cooccurrence") or hallucination.get("cooccurrence")
    if "hallucination" in probes and not pairs and config.get("data", "scenes") == "scenes":
        steps.append("Learned co-occurrence priors show only on scenes that pair objects: mmdiag audit --suite prior.")
    elif "hallucination" in probes and pairs:
        steps.append(
            "This run's scenes exercise one co-occurring pair; a prior on pairs your data over-represents needs "
            "scenes or photos with them: the prior suite with your pair, or --data coco:DIR."
        )
    if "spatial" in probes and "hallucination" in probes:
        steps.append(COMPARE_PROJECTORS)
    if config.get("interventions"):
        steps.append(
            f"This run was measured under {' + '.join(config['interventions'])}: mmdiag compare BASE_RUN {run_dir} "
            "gives each metric's paired change and the mitigation decomposition."
        )
    elif "hallucination" in probes and (results.get("metadata") or {}).get("model", {}).get("kind") == "generative":
        steps.append(
            "Test a remedy or a cause: mmdiag audit --intervene vcd (or knockout:layers=START-END) with the same "
            f"suite and seed, then mmdiag compare {run_dir} THAT_RUN: it says whether a gain is better "
            "discrimination or only a shifted yes-ratio."
        )
    steps.append(
        f"Guard the next change (fine-tune, projector): audit it with the same suite and seed, then mmdiag compare "
        f"{run_dir} CANDIDATE_RUN --fail-on-regression."
    )
    return list(dict.fromkeys(steps))
