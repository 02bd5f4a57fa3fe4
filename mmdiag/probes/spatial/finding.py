"""The spatial probe's finding for the top of the report (:class:`mmdiag.probes.sections.Finding`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mmdiag.probes.sections import Finding, ci_side, value_ci
from mmdiag.probes.spatial.report import retention_bars

COMPARE_PROJECTORS = (
    "Comparing projector designs: mmdiag audit --suite projector on each model, then mmdiag compare RUN_A RUN_B."
)


def finding(result: dict[str, Any], records: list[dict[str, Any]]) -> Finding:
    """Whether the object's position is still linearly decodable after the projector, and how much of it is kept."""
    metrics = result.get("metrics") or {}
    above = metrics.get("projector_grid_cell_above_chance")
    retention = metrics.get("position_retention")
    stages = result.get("stages") or []
    after = "projector" if "projector" in stages else (stages[1] if len(stages) > 1 else "")
    where = f"the {after.replace('_', ' ')}" if after else ""
    steps: list[str] = []
    side = ci_side(above, 0.0)
    if side == "above":
        sentence = (
            f"Position survives {where}: a linear readout finds the object's 3×3 grid cell {value_ci(above)} "
            f"above chance from its tokens"
        )
    elif side is not None:
        relation = "below chance" if side == "below" else "not distinguishable from chance"
        sentence = (
            f"Position is lost in {where}: the object's 3×3 grid cell is read from its tokens {value_ci(above)} "
            f"above chance, {relation}"
        )
        steps.append(COMPARE_PROJECTORS)
    else:
        sentence = f"The grid cell could not be read out after {where or 'the vision encoder'} on this run"
    sentence += "; " + _retention_clause(retention, steps) + "."
    figure = retention_bars(result)
    if figure is not None:
        figure = replace(figure, data={**figure.data, "size": [4.6, 2.6], "legend_fontsize": 6})
    return Finding(
        "Spatial information through the projector",
        sentence,
        figure=figure,
        no_figure="" if figure is not None else "only one stage was measured: nothing to compare",
        next_steps=tuple(steps),
    )


def _retention_clause(retention: dict[str, Any] | None, steps: list[str]) -> str:
    if not retention:
        return "retention was not measured"
    if retention.get("value") is None:
        return f"retention is undefined: {retention.get('undefined') or 'no value'}"
    state = (retention.get("status") or {}).get("state")
    if state == "unstable":
        n = retention.get("n")
        steps.append(
            "Retention is too uncertain here"
            + (f" ({n} scenes)" if n else "")
            + ": the projector suite's 320 one-object scenes tighten it (--suite projector)."
        )
        return (
            f"the share of position information it keeps, {value_ci(retention)}, is too uncertain to say how much "
            "is lost"
        )
    return f"it keeps {value_ci(retention)} of the position information the vision encoder has (1 = nothing lost)"
