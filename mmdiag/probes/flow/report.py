"""The information-flow probe's report section and finding, from its stored result alone."""

from __future__ import annotations

from typing import Any

from mmdiag.probes.flow.specs import METRIC_SPECS
from mmdiag.probes.sections import (
    Cell,
    Figure,
    Finding,
    Paragraph,
    ReportSection,
    Table,
    ci_side,
    default_section,
    value_ci,
)

LABELS = {"question": "question → image", "last": "last position → image"}
COLOURS = {"question": "#1f77b4", "last": "#d62728"}


def curve_figure(result: dict[str, Any]) -> Figure | None:
    """Paired change in P(correct) per knocked-out layer window, one line per source, with its simultaneous band."""
    curves = result.get("curves") or {}
    if not curves or not any(curves.values()):
        return None
    first = next(iter(curves.values()))
    x = [c["start"] for c in first]
    series = [
        {
            "label": LABELS.get(source, source),
            "values": [c["delta"] for c in points],
            "ci": [[c["ci_low"], c["ci_high"]] for c in points],
            "colour": COLOURS.get(source),
            "marker": "o",
        }
        for source, points in curves.items()
    ]
    series.append({"label": "no change", "values": [0.0] * len(x), "colour": "#888888", "ls": ":"})
    width = result.get("window", 1)
    return Figure(
        "lines",
        {
            "x": x,
            "series": series,
            "xlabel": "first knocked-out LLM layer" + (f" (window of {width})" if width > 1 else ""),
            "ylabel": "Δ P(correct answer)",
        },
        alt="Change in the probability of the correct answer when attention to the image is blocked in each layer "
        "window, from the question and from the last position, with simultaneous 95% bands",
        caption="Where the image is read: the paired change in P(correct) when attention to the image tokens is "
        "blocked in one window of LLM layers (band: simultaneous 95% CI over windows, scenes resampled). Below 0: "
        "the answer needs the image there.",
    )


def layout_figure(result: dict[str, Any]) -> Figure | None:
    """Share of left/right answers flipped when the mirror's image-token states are patched in from layer l on."""
    layout = result.get("layout") or []
    if not layout:
        return None
    return Figure(
        "lines",
        {
            "x": [p["layer"] for p in layout],
            "series": [
                {
                    "label": "mirror's image tokens from layer l on",
                    "values": [p["flips"] for p in layout],
                    "ci": [[p["ci_low"], p["ci_high"]] for p in layout],
                    "colour": "#2ca02c",
                    "marker": "o",
                }
            ],
            "xlabel": "first patched LLM layer",
            "ylabel": "left/right answers flipped",
            "ylim": [0, 1],
        },
        alt="Share of left/right answers that flip when the mirror image's image-token states replace the scene's from "
        "each LLM layer on, with simultaneous 95% bands",
        caption="Is the decoded layout used, and where? Patching the mirror's image tokens in from layer l on flips "
        "this share of left/right answers; where it reaches 0 the text has already read the layout.",
    )


def finding(result: dict[str, Any]) -> Finding:
    metrics = result.get("metrics") or {}
    n_layers = result.get("n_layers") or 0
    clauses = []
    dependence = metrics.get("image_dependence")
    if dependence and dependence.get("value") is not None:
        clauses.append(
            f"Blocking the question's attention to the image in every LLM layer lowers P(correct answer) by "
            f"{value_ci(dependence)}"
        )
    until = metrics.get("read_until_layer")
    if until and until.get("value") is not None:
        layer = int(until["value"])
        clauses.append(
            "no single layer window's knockout changes the answers detectably"
            if layer == 0
            else f"the image is read up to layer {layer - 1} of {n_layers} (0-based); blocking it from layer {layer} "
            "on changes nothing detectable"
            if layer < n_layers
            else f"the image is still read in the last of the {n_layers} layers"
        )
    safe = metrics.get("fastv_safe_layer")
    if safe and safe.get("value") is not None:
        clauses.append(f"FastV's pruning of half the image tokens is safe from layer K={int(safe['value'])} on")
    elif safe and safe.get("undefined"):
        clauses.append("FastV's pruning of half the image tokens changes accuracy at every K")
    use, mirror = metrics.get("layout_use"), metrics.get("mirror_flip")
    if use and use.get("value") is not None:
        clauses.append(
            f"swapping in the mirror image's tokens at the projector output flips {value_ci(use, percent=True)} of "
            f"left/right answers (the mirror image itself: {value_ci(mirror, percent=True)})"
        )
    read_by = metrics.get("layout_read_by_layer")
    if use and use.get("value") is not None and read_by and read_by.get("value") is not None:
        layer = int(read_by["value"])
        clauses.append(
            "the text never reads the layout from the image tokens"
            if layer == 0
            else f"from layer {layer} on the mirror's image tokens flip no answer detectably: the text has read the "
            f"layout by then"
            if layer < n_layers
            else "the layout is still read from the image tokens in the last layer"
        )
    sentence = "; ".join(clauses) + "." if clauses else "No information-flow metric has a value on this run."
    steps = []
    if dependence and ci_side(dependence, 0.0) not in (None, "above"):
        steps.append("The answers do not need the image at all: see the hallucination card's multimodal gain.")
    if use and ci_side(use, 0.0) not in (None, "above"):
        steps.append(
            "Position may be decodable (spatial card) yet unused by the answers: relation questions follow the words."
        )
    figure = curve_figure(result)
    return Finding(
        "Information flow: where the image enters the answer",
        sentence,
        figure=figure,
        no_figure="" if figure is not None else "no knockout curve was measured on this run",
        next_steps=tuple(steps),
    )


def section(result: dict[str, Any]) -> ReportSection:
    base = default_section("flow", result, METRIC_SPECS)
    blocks: list[Any] = [
        Paragraph(
            "Interventions turn correlations into causes: attention from the question (every position after the "
            "image) or from the last position to every image token is blocked (Geva et al. 2023's knockout) in one "
            "window of LLM layers at a time, and the paired change in P(correct answer) is measured on presence and "
            "relation questions."
        )
    ]
    for figure in (curve_figure(result), layout_figure(result)):
        if figure is not None:
            blocks.append(figure)
    rows = []
    for source, points in (result.get("curves") or {}).items():
        for c in points:
            detectable = c["ci_low"] > 0 or c["ci_high"] < 0
            rows.append(
                (
                    LABELS.get(source, source),
                    f"{c['start']}-{c['end']}" if c["end"] != c["start"] else str(c["start"]),
                    Cell(c["delta"], (f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}]",)),
                    "yes" if detectable else "no",
                )
            )
    if rows:
        blocks.append(
            Table(("knocked out", "LLM layers", "Δ P(correct) [simultaneous 95% CI]", "detectable"), tuple(rows))
        )
    fastv = result.get("fastv") or []
    if fastv:
        blocks.append(
            Table(
                ("FastV K (half the image tokens pruned from layer K)", "Δ accuracy [simultaneous 95% CI]"),
                tuple(
                    (f["k"], Cell(f["delta_accuracy"], (f"[{f['ci_low']:.3f}, {f['ci_high']:.3f}]",))) for f in fastv
                ),
                title="FastV's claim on this model",
            )
        )
    return ReportSection(
        "flow", "Information flow (knockout, FastV, mirror patching)", base.intro, blocks + base.blocks
    )


def compare_figure(results: dict[str, dict[str, Any]]) -> Figure | None:
    """The question → image knockout curve of each run, with its band."""
    series = []
    x: list[int] = []
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for index, (label, result) in enumerate(results.items()):
        points = (result.get("curves") or {}).get("question") or []
        if not points:
            continue
        x = x or [c["start"] for c in points]
        if [c["start"] for c in points] != x:
            continue  # a different depth: not on the same axis
        series.append(
            {
                "label": label,
                "values": [c["delta"] for c in points],
                "ci": [[c["ci_low"], c["ci_high"]] for c in points],
                "colour": palette[index % len(palette)],
                "marker": "o",
            }
        )
    if not series:
        return None
    return Figure(
        "lines",
        {"x": x, "series": series, "xlabel": "knocked-out LLM layer window", "ylabel": "Δ P(correct answer)"},
        alt="Knockout curves of the compared runs: the change in P(correct) when the question's attention to the "
        "image is blocked per layer window, with simultaneous 95% bands",
        caption="Where each run reads the image (knockout per layer window)",
    )
