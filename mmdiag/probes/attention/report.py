"""The attention probe's report section (see :mod:`mmdiag.probes.sections`), from its result and records."""

from __future__ import annotations

from typing import Any

from mmdiag.probes.sections import (
    Figure,
    Gallery,
    GalleryItem,
    Heading,
    Paragraph,
    ReportSection,
    Table,
)

PART_COLOURS = {
    "image": "#1f77b4",
    "system": "#ff7f0e",
    "instruction": "#2ca02c",
    "bos": "#7f7f7f",
    "generated": "#d62728",
}
MAX_OVERLAYS = 4


def layer_curves(result: dict[str, Any], key: str = "layer_mass", title: str | None = None) -> Figure | None:
    """Mass per part across LLM layers with bootstrap CI bands; sink-free, sink and untrained curves dashed."""
    layer_mass = result.get(key) or {}
    if not layer_mass:
        return None
    series = []
    for part, values in layer_mass.items():
        if not any(values):
            continue  # e.g. "generated" at the prompt row
        series.append(
            {
                "label": part,
                "values": values,
                "colour": PART_COLOURS.get(part),
                "marker": "o",
                "ci": (result.get(f"{key}_ci") or {}).get(part) or [],
            }
        )
    if key == "layer_mass":
        free = (result.get("sink_free_layer_mass") or {}).get("image")
        if free:
            series.append({"label": "image, sink-free", "values": free, "colour": PART_COLOURS["image"], "ls": "--"})
        sinks = result.get("sink_layer_mass")
        if sinks:
            series.append({"label": "sinks (BOS + visual)", "values": sinks, "colour": PART_COLOURS["bos"], "ls": "-."})
        untrained = (result.get("untrained_layer_mass") or {}).get("image")
        if untrained:
            series.append({"label": "image, untrained copy", "values": untrained, "colour": "black", "ls": ":"})
    n_layers = len(next(iter(layer_mass.values())))
    return Figure(
        "lines",
        {
            "series": series,
            "x": list(range(n_layers)),
            "xlabel": "LLM layer",
            "ylabel": "attention mass",
            "ylim": [0, 1],
            "title": title,
        },
        alt="attention per layer" if key == "layer_mass" else "attention at answer tokens",
    )


def section(result: dict[str, Any], records: list[dict[str, Any]]) -> ReportSection:
    out = ReportSection(
        "attention",
        "Attention dominance",
        "Mass of the last prompt token's attention on each part of the input, averaged over heads; bands "
        "are bootstrap 95% CIs over examples. High image mass alone does not show that the image is "
        "used: read it next to blind_answer_shift.",
    )
    out.blocks += [Paragraph(note, note=True) for note in result.get("notes") or []]  # e.g. which layers were read
    figures = [layer_curves(result)]
    if result.get("head_image_mass"):
        figures.append(
            Figure(
                "heatmap",
                {"matrix": result["head_image_mass"], "xlabel": "head", "ylabel": "layer", "label": "image mass"},
                alt="head by layer image mass",
            )
        )
    figures.append(layer_curves(result, "answer_layer_mass", "at generated answer tokens"))
    out.blocks += [f for f in figures if f is not None]
    counts = result.get("token_counts") or {}
    if counts:
        out.blocks.append(
            Paragraph(
                "Tokens per example (mean): "
                + ", ".join(f"{p} {n:.1f}" for p, n in counts.items())
                + ". Uniform attention would give the image a mass equal to its share of tokens."
            )
        )
    blind = _blind_shifts(records)
    if blind:
        out.blocks.append(
            Table(
                ("image replaced by", "mean |ΔP(yes)|", "mean TV distance of next-token distribution"),
                tuple((name, b["yes_shift"], b["tv"]) for name, b in blind.items()),
            )
        )
    if result.get("top_heads"):
        out.blocks += [
            Heading("Heads that attend to the image most"),
            Table(
                ("layer", "head", "image mass", "95% CI"),
                tuple(
                    (h["layer"], h["head"], h["image_mass"], f"[{h['ci_low']:.3f}, {h['ci_high']:.3f}]")
                    for h in result["top_heads"]
                ),
            ),
        ]
    sinks = result.get("sinks")
    if sinks:
        where = (
            f" (image-token indices {', '.join(map(str, sinks['visual_sink_indices']))})"
            if sinks.get("visual_sink_indices")
            else ""
        )
        out.blocks.append(
            Paragraph(
                f"Sinks: BOS, plus image tokens whose peak activation is ≥ {sinks['threshold']}× the median token's "
                f"(from layer {sinks['from_layer']}): {sinks['examples_with_visual_sinks']} example(s) had visual "
                f"sinks{where}; largest ratio {_num(sinks.get('max_phi'), 1)}, BOS {_num(sinks.get('max_bos_phi'), 1)}."
            )
        )
    for key, text in (
        ("qformer_layer_object_ratio", "Q-Former cross-attention, object/background patch ratio per layer"),
        (
            "cls_layer_object_ratio",
            "Attention of the image's pooling token over patches (the CLS token; "
            "SigLIP: its pooling head's query, one layer), object/background patch "
            "ratio per layer",
        ),
    ):
        if result.get(key):
            out.blocks.append(Paragraph(f"{text}: " + ", ".join(_num(r, 2) for r in result[key]) + "."))
    overlays = _overlays(result, records)
    if overlays:
        out.blocks.append(Gallery(tuple(overlays), title="Where in the image", limit=MAX_OVERLAYS))
    return out


def _overlays(result: dict[str, Any], records: list[dict[str, Any]]) -> list[GalleryItem]:
    grid = result.get("token_grid")
    items = []
    for record in records:
        values = record.get("values")
        if not values or not grid:
            continue
        attention = values.get("attention_map") or values.get("image_token_attention")
        if attention is None and values.get("cls_patch_attention"):
            attention = [sum(col) / len(col) for col in zip(*values["cls_patch_attention"])]
        if attention and len(attention) == grid[0] * grid[1]:
            items.append(
                GalleryItem(
                    (),
                    (values.get("question") or values.get("caption", ""),),
                    figure=Figure(
                        "overlay",
                        {"example": record["scene"], "attention": attention, "grid": list(grid)},
                        alt="attention overlay",
                    ),
                )
            )
    return items


def _blind_shifts(records: list[dict[str, Any]]) -> dict[str, dict[str, float]] | None:
    gen = [r["values"] for r in records if r.get("values") and "blind" in r["values"]]
    if not gen:
        return None
    return {
        name: {
            "yes_shift": sum(v["blind"][name]["yes_shift"] for v in gen) / len(gen),
            "tv": sum(v["blind"][name]["tv"] for v in gen) / len(gen),
        }
        for name in gen[0]["blind"]
    }


def _num(value: Any, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
