"""The report contract: a probe describes its own report section as data, from its result and records alone.

``Probe.report_section(result, records)`` returns a :class:`ReportSection`: a title, an introduction and blocks
(paragraphs, notes, tables, figures, galleries of example images). The report (:mod:`mmdiag.report`) assembles the
sections in run order and draws them; it knows no probe's result keys, so a third-party probe gets a section too
(:func:`default_section` when it declares none). Figures are data too (:class:`Figure`: a line chart with CI bands,
a heatmap, grouped bars, a reliability diagram, an attention overlay on an example image); example images are
named by the example's stored ``to_dict`` (:class:`ExampleImage`), which the report re-makes through the run's data
source. Every string here is text: the report escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FIGURE_KINDS = ("lines", "heatmap", "bars", "reliability", "overlay")


@dataclass(frozen=True)
class Cell:
    """A table cell: its main value (a number is formatted by the report), smaller detail lines under it, and a
    hover text."""

    main: Any
    details: tuple[str, ...] = ()
    hint: str = ""


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]  # cells: text, numbers, None (shown as "–") or Cell
    title: str = ""
    digits: int = 3


@dataclass(frozen=True)
class Paragraph:
    text: str
    note: bool = False  # shown as a highlighted note


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Figure:
    """A figure drawn by the report: ``kind`` is one of :data:`FIGURE_KINDS`, ``data`` its numbers and labels
    (see :mod:`mmdiag.report.figures`), ``alt`` the text for screen readers and for why a figure is missing."""

    kind: str
    data: dict[str, Any]
    alt: str
    caption: str = ""
    note: str = ""  # why part of the figure is empty (e.g. bars that cannot be measured), shown under it

    def __post_init__(self) -> None:
        if self.kind not in FIGURE_KINDS:
            raise ValueError(f"figure kind must be one of {FIGURE_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class ExampleImage:
    """An example's image, named by its stored ``to_dict`` (re-made by the run's data source)."""

    example: dict[str, Any]
    alt: str = "example"


@dataclass(frozen=True)
class GalleryItem:
    """One item of a gallery: example images side by side (or a figure drawn on an example, e.g. an overlay), caption
    lines and an optional table."""

    images: tuple[ExampleImage, ...]
    caption: tuple[str, ...] = ()
    table: Table | None = None
    figure: Figure | None = None


@dataclass(frozen=True)
class Gallery:
    items: tuple[GalleryItem, ...]
    title: str = ""
    intro: str = ""
    collapsed: str = ""  # non-empty: shown folded, with this summary line
    limit: int = 6  # items shown at most (items whose images cannot be re-made are skipped)


Block = Paragraph | Heading | Table | Figure | Gallery


@dataclass(frozen=True)
class Finding:
    """What a probe found, for the top of the report: one plain sentence with its key numbers and their CIs, one
    figure (or why there is none), and what to run next. The report adds the gates the probe's metrics decided."""

    title: str
    sentence: str
    figure: Figure | None = None
    no_figure: str = ""  # why there is no figure, shown in its place
    next_steps: tuple[str, ...] = ()


def value_ci(metric: dict[str, Any] | None, percent: bool = False, digits: int = 3) -> str:
    """``0.555 [0.549, 0.560]`` (or ``55.5 % [54.9, 56.0]``) of a stored metric; ``undefined`` without a value."""
    if not metric or metric.get("value") is None:
        return "undefined"

    def num(x: float) -> str:
        return f"{100 * x:.1f}" if percent else f"{x:.{digits}f}"

    text = num(metric["value"]) + (" %" if percent else "")
    if metric.get("ci_low") is not None and metric.get("ci_high") is not None:
        text += f" [{num(metric['ci_low'])}, {num(metric['ci_high'])}]"
    return text


def ci_side(metric: dict[str, Any] | None, reference: float | None) -> str | None:
    """Where the metric's CI (its value when it has none) lies against ``reference``: ``"above"``, ``"below"`` or
    ``"covers"``; ``None`` without a value or a reference."""
    if not metric or metric.get("value") is None or reference is None:
        return None
    low = metric["value"] if metric.get("ci_low") is None else metric["ci_low"]
    high = metric["value"] if metric.get("ci_high") is None else metric["ci_high"]
    return "above" if low > reference else "below" if high < reference else "covers"


def default_finding(name: str, result: dict[str, Any], specs: dict[str, Any]) -> Finding:
    """The finding of a probe that declares none: its first metric with a value, with its meaning."""
    for metric, m in (result.get("metrics") or {}).items():
        if m.get("value") is not None:
            spec = specs.get(metric)
            meaning = spec.meaning if spec else m.get("description", metric)
            return Finding(name, f"{metric} {value_ci(m)}: {meaning}.", no_figure="this probe declares no figure")
    return Finding(name, "No metric has a value on this run (see the probe's section).", no_figure="no value")


@dataclass
class ReportSection:
    """One probe's section of the report."""

    id: str
    title: str
    intro: str = ""
    blocks: list[Block] = field(default_factory=list)


def default_section(name: str, result: dict[str, Any], specs: dict[str, Any]) -> ReportSection:
    """The section of a probe that declares none: its headline metrics with CI and meaning, and its notes."""
    rows = []
    for metric, m in (result.get("metrics") or {}).items():
        ci = (
            f"[{m['ci_low']:.3f}, {m['ci_high']:.3f}]"
            if m.get("ci_low") is not None and m.get("ci_high") is not None
            else ""
        )
        spec = specs.get(metric)
        rows.append(
            (
                metric,
                Cell(m.get("value"), (ci,) if ci else ())
                if m.get("value") is not None
                else Cell("undefined", (m.get("undefined") or "",)),
                spec.meaning if spec else m.get("description", ""),
            )
        )
    blocks: list[Block] = [Table(("metric", "value [95% CI]", "what it means"), tuple(rows))] if rows else []
    blocks += [Paragraph(note, note=True) for note in result.get("notes") or []]
    return ReportSection(name, name, f"{result.get('n_examples', 0)} examples measured", blocks)
