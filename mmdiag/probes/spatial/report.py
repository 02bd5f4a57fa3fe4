"""The spatial probe's report section (see :mod:`mmdiag.probes.sections`), from its result."""

from __future__ import annotations

from typing import Any

from mmdiag.probes.sections import (
    Cell,
    Figure,
    Heading,
    Paragraph,
    ReportSection,
    Table,
)

INTRO = (
    "Readout: {readout}. Each cell: the score [95% CI] (accuracy, except R² for centre_x/centre_y) and, after the "
    "vision encoder, its retention: (stage − chance)/(vision encoder − chance), 1 = nothing lost, only where the "
    "vision encoder beats its null (else “not measurable”). Hover a cell for the rest: chance (a label-permutation "
    "null through the same cross-validation, else the majority class / R² 0) with its p, Δ = this stage − the "
    "vision encoder on the same scenes with its paired p-value, the retention's paired bootstrap CI, and the same "
    "probe on a randomly initialised copy (untr.); results.json has them all. An empty cell says why."
)


def section(result: dict[str, Any], records: list[dict[str, Any]]) -> ReportSection:
    out = ReportSection(
        "spatial", "Spatial information through the projector", INTRO.format(readout=result.get("readout"))
    )
    stages, tasks = result.get("stages") or [], result.get("tasks") or []
    readouts = result.get("readouts") or {"primary": result.get("scores") or {}}
    for readout, table in readouts.items():
        out.blocks.append(Heading(f"{readout} readout"))
        out.blocks.append(
            Table(("stage", *tasks), tuple((stage, *(_cell(table[stage][t]) for t in tasks)) for stage in stages))
        )
    if result.get("cka"):
        rows = []
        for stage, value in result["cka"].items():
            sim = (result.get("similarity") or {}).get(stage)
            if sim:
                rows.append((stage, *(_similarity(sim[key]) for key in ("cka", "knn_overlap"))))
            else:
                rows.append((stage, value, (result.get("knn_overlap") or {}).get(stage)))
        out.blocks += [
            Heading("Representation similarity to the vision encoder"),
            Table(
                (
                    "stage",
                    "debiased linear CKA [jackknife CI] (permutation null, p)",
                    "10-NN overlap [CI] (null k/(n−1), p)",
                ),
                tuple(rows),
            ),
        ]
    whatsup = result.get("whatsup")
    if whatsup:
        out.blocks.append(
            Paragraph(
                f"What'sUp-style test: the true relation caption beats the same words with the "
                f"objects swapped in {_n(whatsup.get('accuracy'))} of {whatsup.get('n')} images "
                "(chance 0.5)."
            )
        )
    bars = retention_bars(result)
    if bars is not None:
        out.blocks.append(bars)
    out.blocks += [Paragraph(note, note=True) for note in result.get("notes") or []]
    return out


def retention_bars(result: dict[str, Any]) -> Figure | None:
    """Retention of each task at each post-projector stage (1 = as decodable as before the projector)."""
    scores, stages = result.get("scores") or {}, result.get("stages") or []
    if len(stages) < 2:
        return None
    tasks = [t for t in result.get("tasks", []) if t != "control"]
    series = {stage: [scores[stage][t].get("retention") for t in tasks] for stage in stages[1:]}
    return Figure(
        "bars",
        {"groups": tasks, "series": series, "ylabel": f"retention vs {stages[0]}", "lines": [1.0, 0.0]},
        alt="retention bars",
        note=missing_bars_note(tasks, series, stages[0]),
    )


def missing_bars_note(tasks: list[str], series: dict[str, list[float | None]], first_stage: str) -> str:
    """Why some tasks have no bar: retention is not measurable where the first stage does not beat its null."""
    missing = [t for k, t in enumerate(tasks) if all(values[k] is None for values in series.values())]
    if not missing:
        return ""
    return (
        f"No bar for {', '.join(missing)}: retention is not measurable where the {first_stage} does not beat its "
        "permutation null (nothing decodable to retain)."
    )


def _cell(s: dict[str, Any]) -> Cell:
    """Score [CI] and the retention on view (at most four numbers); chance, Δ, p-values and the untrained copy in
    the hover text."""
    main = _n(s.get("score")) + (
        f" [{_n(s['ci_low'], 2)}, {_n(s['ci_high'], 2)}]" if s.get("ci_low") is not None else ""
    )
    details = [s["undefined"]] if s.get("undefined") else []
    hint = [
        f"chance {_n(s.get('chance'), 2)}" + (f" (perm. p {_n(s['null_p'])})" if s.get("null_p") is not None else "")
    ]
    if s.get("difference") is not None:
        hint.append(f"Δ vs vision encoder {_n(s['difference'], 2)} (p {_n(s.get('difference_p'))})")
    if s.get("retention") is not None:
        details.append(f"ret. {_n(s['retention'], 2)}")
        ci = s.get("retention_ci") or [None, None]
        if ci[0] is not None:
            hint.append(f"retention {_n(s['retention'], 2)} [{_n(ci[0], 2)}, {_n(ci[1], 2)}]")
    elif s.get("retention_undefined"):
        details.append("ret. not measurable")
        hint.append(f"retention not measurable: {s['retention_undefined']}")
    if s.get("untrained") is not None:
        hint.append(f"untrained copy {_n(s['untrained'], 2)}")
    return Cell(main, tuple(details), "; ".join(hint))


def _similarity(m: dict[str, Any]) -> str:
    if m.get("value") is None:
        return m.get("undefined") or "undefined"
    return (
        f"{_n(m['value'])} [{_n(m['ci_low'], 2)}, {_n(m['ci_high'], 2)}] (null {_n(m.get('null'))}, "
        f"p {_n(m.get('p_value'))}, n {m.get('n')})"
    )


def _n(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def compare_figure(results: dict[str, dict[str, Any]]) -> Figure | None:
    """Retention of each task at each run's projector output (else its last stage), one bar group per task."""
    runs = {label: r for label, r in results.items() if r.get("stages")}
    if not runs:
        return None
    tasks = [t for t in next(iter(runs.values()))["tasks"] if t != "control"]
    series = {}
    for label, result in runs.items():
        stage = "projector" if "projector" in result["stages"] else result["stages"][-1]
        final = result["scores"][stage]
        series[f"{label} ({stage})"] = [final.get(t, {}).get("retention") for t in tasks]
    first = next(iter(runs.values()))["stages"][0]
    return Figure(
        "bars",
        {
            "groups": tasks,
            "series": series,
            "ylabel": "retention vs vision encoder",
            "lines": [1.0, 0.0],
            "size": [7, 3.2],
            "legend_fontsize": 7,
        },
        alt="retention by run",
        caption="Spatial retention through the projector",
        note=missing_bars_note(tasks, series, first),
    )
