"""Rendering a comparison of runs (HTML with embedded figures, and Markdown)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from mmdiag.report.figures import _to_uri
from mmdiag.report.html import _environment, format_number
from mmdiag.report.markdown import _cell


def retention_comparison(comparison: Any) -> str | None:
    """Retention of each spatial task at each run's projector output (else its last stage), one bar group per task."""
    runs = [r for r in comparison.runs if r.spatial and r.spatial.get("stages")]
    if not runs:
        return None
    tasks = [t for t in runs[0].spatial["tasks"] if t != "control"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(runs)
    for k, run in enumerate(runs):
        stage = "projector" if "projector" in run.spatial["stages"] else run.spatial["stages"][-1]
        final = run.spatial["scores"][stage]
        values = [final.get(t, {}).get("retention") for t in tasks]
        ax.bar(np.arange(len(tasks)) + k * width, [np.nan if v is None else v for v in values], width,
               label=f"{run.label} ({stage})")
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(np.arange(len(tasks)) + width * (len(runs) - 1) / 2, tasks, rotation=20)
    ax.set_ylabel("retention vs vision encoder")
    ax.legend(fontsize=7)
    return _to_uri(fig)


def _rows(comparison: Any) -> list[dict[str, Any]]:
    rows = []
    probes = sorted({p for r in comparison.runs for p in r.metrics})
    for probe in probes:
        metrics = sorted({m for r in comparison.runs for m in r.metrics.get(probe, {})})
        for metric in metrics:
            rows.append({"probe": probe, "metric": metric,
                         "values": [r.metrics.get(probe, {}).get(metric) for r in comparison.runs]})
    return rows


def render_compare_html(comparison: Any) -> str:
    template = _environment().get_template("compare.html")
    return template.render(comparison=comparison, rows=_rows(comparison), retention=retention_comparison(comparison))


def render_compare_markdown(comparison: Any) -> str:
    runs = comparison.runs
    lines = ["## mmdiag compare", ""]
    if comparison.regression_tolerance is not None:
        moved = comparison.regressions
        lines += [f"**Regression check: {'FAIL' if moved else 'PASS'}** ({len(moved)} metric(s) worse by more than "
                  f"{comparison.regression_tolerance:g} with a paired 95% CI excluding zero)", ""]
        lines += [f"- {d.probe}.{d.metric}: {_cell(d.run)} − {_cell(d.baseline)} = {d.mean_difference:+.3f} "
                  f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}], n = {d.n}" for d in moved]
    lines += [f"> warning: {_cell(w)}" for w in comparison.warnings]
    lines += ["", "| probe | metric | " + " | ".join(_cell(r.label) for r in runs) + " |",
              "|---|---|" + "---|" * len(runs)]
    for row in _rows(comparison):
        lines.append(f"| {row['probe']} | {row['metric']} | " + " | ".join(_cell(format_number(v)) for v in row["values"]) + " |")
    if comparison.paired:
        lines += ["", "Paired differences over the same examples (run − baseline, 95% bootstrap CI):", "",
                  "| probe | metric | run | baseline | n | difference | 95% CI |", "|---|---|---|---|---|---|---|"]
        for d in comparison.paired:
            lines.append(f"| {d.probe} | {d.metric} | {_cell(d.run)} | {_cell(d.baseline)} | {d.n} | "
                         f"{d.mean_difference:+.3f} | [{d.ci_low:+.3f}, {d.ci_high:+.3f}] |")
    return "\n".join(lines) + "\n"
