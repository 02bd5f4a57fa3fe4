"""Rendering a comparison of runs (HTML with embedded figures, and Markdown)."""

from __future__ import annotations

from typing import Any

from mmdiag.probes.guidance import state_rank
from mmdiag.report import figures
from mmdiag.report.html import _environment, format_number
from mmdiag.report.markdown import _cell


def comparison_figures(comparison: Any) -> list[dict[str, Any]]:
    """The probes' comparison figures, drawn: ``{"title", "alt", "uri"}`` (``uri`` None with nothing to draw)."""
    return [
        {
            "title": f.get("caption") or f["probe"],
            "alt": f["alt"],
            "uri": figures.DRAWERS[f["kind"]](f["data"]),
            "note": f.get("note", ""),
        }
        for f in comparison.figures
    ]


def _rows(comparison: Any) -> list[dict[str, Any]]:
    """One row per metric, in the baseline's order of urgency (failed gates, gated, unstable... as in the audit
    report), then metrics only other runs have: each run's value with its CI and status, the difference of values
    from the baseline, the guide (direction, meaning) and the paired differences of the metric."""
    runs = comparison.runs
    base = runs[0]
    seen: list[tuple[str, str]] = []
    for name, metric, _ in sorted(
        ((p, m, d) for p, ms in base.details.items() for m, d in ms.items()), key=lambda item: state_rank(item[2])
    ):
        seen.append((name, metric))
    for run in runs:
        for name in run.metrics:
            seen += [(name, m) for m in run.metrics[name] if (name, m) not in seen]
    paired = {}
    for d in comparison.paired:
        paired.setdefault((d.probe, d.metric), []).append(d)
    rows = []
    for name, metric in seen:
        cells = []
        base_value = base.metrics.get(name, {}).get(metric)
        guide = (
            next(
                (
                    r.details.get(name, {}).get(metric, {}).get("guide")
                    for r in runs
                    if r.details.get(name, {}).get(metric, {}).get("guide")
                ),
                None,
            )
            or {}
        )
        for run in runs:
            value = run.metrics.get(name, {}).get(metric)
            detail = run.details.get(name, {}).get(metric, {})
            delta = None if run is base or value is None or base_value is None else value - base_value
            cells.append(
                {
                    "value": value,
                    "ci_low": detail.get("ci_low"),
                    "ci_high": detail.get("ci_high"),
                    "state": (detail.get("status") or {}).get("state"),
                    "why": _why(value, detail, run, name),
                    "delta": delta,
                }
            )
        rows.append(
            {
                "probe": name,
                "metric": metric,
                "cells": cells,
                "values": [c["value"] for c in cells],
                "better": guide.get("better", "neither"),
                "meaning": guide.get("meaning", ""),
                "paired": paired.get((name, metric), []),
            }
        )
    return rows


def _why(value: float | None, detail: dict[str, Any], run: Any, probe: str) -> str:
    """Why a run has no value for a metric: the metric's own reason, else that its probe did not run there."""
    if value is not None:
        return ""
    if detail:
        return detail.get("undefined") or (detail.get("status") or {}).get("reason") or "undefined on this run"
    return "not measured: the probe did not run" if probe not in run.metrics else "not reported by this run"


ARROWS = {"higher": "↑", "lower": "↓", "near_reference": "≈", "neither": "·"}


def render_compare_html(comparison: Any) -> str:
    template = _environment().get_template("compare.html")
    rows = _rows(comparison)
    return template.render(
        comparison=comparison,
        rows=rows,
        arrows=ARROWS,
        paired_rows=[r for r in rows if r["paired"]],
        figures=comparison_figures(comparison),
    )


def _value(cell: dict[str, Any]) -> str:
    if cell["value"] is None:
        return f"– ({cell['why']})" if cell["why"] else "–"
    ci = f" [{format_number(cell['ci_low'])}, {format_number(cell['ci_high'])}]" if cell["ci_low"] is not None else ""
    return f"{format_number(cell['value'])}{ci}" + (f" ({cell['state'].replace('_', ' ')})" if cell["state"] else "")


def _delta(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def render_compare_markdown(comparison: Any) -> str:
    runs = comparison.runs
    lines = [
        "## mmdiag compare",
        "",
        "Baseline: "
        + _cell(runs[0].label)
        + "; "
        + "; ".join(f"{_cell(r.label)}: `{_cell(r.model)}`, verdict {r.verdict or '–'}" for r in runs),
        "",
    ]
    lines += [f"- {_cell(line)}" for line in comparison.summary()] + [""]
    if comparison.regression_tolerance is not None:
        moved = comparison.regressions
        lines += [
            f"**Regression check: {'FAIL' if moved else 'PASS'}** ({len(moved)} metric(s) worse by more than "
            f"{comparison.regression_tolerance:g} with a paired 95% CI excluding zero)",
            "",
        ]
        lines += [
            f"- `{d.probe}.{d.metric}`: {_cell(d.run)} − {_cell(d.baseline)} = {d.mean_difference:+.3f} "
            f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}], n = {d.n}: {_cell(d.meaning)}"
            for d in moved
        ]
    lines += [f"> warning: {_cell(w)}" for w in comparison.warnings]
    rows = _rows(comparison)
    paired = [d for r in rows for d in r["paired"]]
    if paired:
        lines += [
            "",
            "### Paired differences over the same examples (run − baseline, 95% bootstrap CI)",
            "",
            "| metric | better | run | n | difference [95% CI] | change | meaning |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            for d in row["paired"]:
                change = f"**{d.change}**" if d.change == "worse" else d.change
                lines.append(
                    f"| `{d.probe}.{d.metric}` | {ARROWS[row['better']]} | {_cell(d.run)} | {d.n} | "
                    f"{d.mean_difference:+.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}] | {change} | "
                    f"{_cell(d.meaning)} |"
                )
    if comparison.mitigations:
        lines += [
            "",
            "### Mitigation decomposition (run − baseline over the same examples, paired bootstrap 95% CI)",
            "",
            "| run | split | Δ accuracy | Δ yes-ratio | Δ AUROC | examples | what changed |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in comparison.mitigations:
            for s in m.splits:
                lines.append(
                    f"| {_cell(m.run)} | {s.split} | {s.accuracy.text()} | {s.yes_ratio.text()} | {s.auroc.text()} | "
                    f"{s.n_examples} | **{_cell(s.verdict)}** |"
                )
            if m.cost_ratio is not None:
                lines.append(f"\n{_cell(m.run)}: {m.cost_ratio:.2f}× the baseline's time per hallucination example.")
    lines += [
        "",
        "### Side by side (value [95% CI] (status); Δ = run − baseline)",
        "",
        "| probe | metric | better | "
        + " | ".join(_cell(r.label) for r in runs)
        + "".join(f" | Δ {_cell(r.label)}" for r in runs[1:])
        + " |",
        "|---|---|---|" + "---|" * (2 * len(runs) - 1),
    ]
    for row in rows:
        deltas = "".join(f" | {_delta(c['delta'])}" for c in row["cells"][1:])
        lines.append(
            f"| {row['probe']} | {row['metric']} | {ARROWS[row['better']]} | "
            + " | ".join(_cell(_value(c)) for c in row["cells"])
            + deltas
            + " |"
        )
    return "\n".join(lines) + "\n"
