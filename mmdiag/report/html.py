"""The self-contained HTML report: jinja2 with autoescaping, figures embedded as data URIs.

Every string that came from a model or a dataset reaches the page through autoescaping; nothing is
marked safe except the data URIs this module builds itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from mmdiag.errors import MmdiagError
from mmdiag.probes.guidance import state_rank
from mmdiag.probes.registry import ProbeRegistry
from mmdiag.probes.sections import Cell, Figure, Gallery, Heading, Table, default_section
from mmdiag.report import figures
from mmdiag.report.examples import ExampleImages
from mmdiag.report.findings import model_name, next_steps, probe_findings, verdict_headline
from mmdiag.results import read_examples, read_results
from mmdiag.sources import SourceRegistry
from mmdiag.verdicts import verdict_lines

HTML_FILE = "report.html"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mmdiag.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = format_number
    return env


def format_number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def build_context(
    run_dir: Path, sources: SourceRegistry | None = None, data_params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the template shows, computed from results.json and examples.jsonl alone (``data_params``: where
    the run's data source was found, when not where the run recorded it). Each probe renders its own section
    (``Probe.report_section``); this module knows no probe's result keys."""
    results = read_results(run_dir)
    records = read_examples(run_dir)
    resolution = int(results["metadata"]["config"].get("resolution", 64))
    images = ExampleImages.of_run(results["metadata"]["config"], resolution, sources, data_params)
    probes = results.get("probes", {})
    by_probe: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_probe.setdefault(record.get("probe", "?"), []).append(record)
    failures = [r for r in records if "error" in r]
    rows = metric_rows(probes)
    sections = probe_sections(probes, by_probe, images)
    cards = probe_findings(results, by_probe)
    for card in cards:
        figure = card["finding"].figure
        card["figure"] = _figure(figure, images) if figure is not None else None
        card["section"] = next((sec["id"] for sec in sections if sec["probe"] == card["probe"]), None)
    flagged: dict[str, int] = {}
    for row in rows:
        state = (row["m"].get("status") or {}).get("state")
        if state in FLAG_STATES:
            flagged[state] = flagged.get(state, 0) + 1
    return {
        "metric_rows": rows,
        "attention_flags": [(state, flagged[state]) for state in FLAG_STATES if state in flagged],
        "results": results,
        "verdict": verdict_lines(results),
        "meta": results["metadata"],
        "probes": probes,
        "failures": failures[:20],
        "n_failures": len(failures),
        "sections": sections,
        "findings": cards,
        "steps": next_steps(results, cards, str(run_dir)),
        "model_name": model_name(results["metadata"]["model"]),
        "headline": verdict_headline(results),
        "card": results["metadata"]["model"].get("card"),
    }


FLAG_STATES = ("alarming", "unstable", "undefined")  # the states the summary line under the verdict counts


def metric_rows(probes: dict[str, Any]) -> list[dict[str, Any]]:
    """Every headline metric of every probe as ``{probe, metric, m}``, most urgent first (failed gates, values
    outside the healthy range, unstable, undefined...; gated before ungated), else in the probe's own order."""
    rows = [
        {"probe": name, "metric": metric, "m": m}
        for name, probe in probes.items()
        if "error" not in probe
        for metric, m in probe.get("metrics", {}).items()
    ]
    return sorted(rows, key=lambda row: state_rank(row["m"]))  # stable: ties keep the probe's order


def probe_sections(
    probes: dict[str, Any],
    records: dict[str, list[dict[str, Any]]],
    images: ExampleImages,
    registry: ProbeRegistry | None = None,
) -> list[dict[str, Any]]:
    """Each probe's report section, in run order, with its figures drawn and its example images made (a probe
    that is not installed here gets the default section)."""
    registry = registry or ProbeRegistry()
    out = []
    for name, result in probes.items():
        if "error" in result:
            continue
        try:
            cls = registry.get(name)
            section = cls.report_section(result, records.get(name, []))
        except MmdiagError:
            section = default_section(name, result, {})
        if section is not None:
            out.append(
                {
                    "id": section.id,
                    "probe": name,
                    "title": section.title,
                    "intro": section.intro,
                    "blocks": [_block(block, images) for block in section.blocks],
                }
            )
    return out


def _block(block: Any, images: ExampleImages) -> dict[str, Any]:
    if isinstance(block, Figure):
        return {
            "type": "figure",
            "uri": _figure(block, images),
            "alt": block.alt,
            "caption": block.caption,
            "note": block.note,
        }
    if isinstance(block, Gallery):
        items = []
        for item in block.items:
            if len(items) >= block.limit:
                break
            uris = [images.uri(image.example) for image in item.images]
            figure = _figure(item.figure, images) if item.figure is not None else None
            if any(uri is None for uri in uris) or (item.figure is not None and figure is None):
                continue  # the run's data source is not installed here: the example is left out
            items.append(
                {
                    "images": [{"uri": uri, "alt": image.alt} for uri, image in zip(uris, item.images)],
                    "figure": figure,
                    "caption": list(item.caption),
                    "table": _table(item.table) if item.table is not None else None,
                }
            )
        return {
            "type": "gallery",
            "title": block.title,
            "intro": block.intro,
            "collapsed": block.collapsed,
            "items": items,
        }
    if isinstance(block, Table):
        return {"type": "table", **_table(block)}
    if isinstance(block, Heading):
        return {"type": "heading", "text": block.text}
    return {"type": "paragraph", "text": block.text, "note": block.note}


def _table(table: Table) -> dict[str, Any]:
    def cell(value: Any) -> dict[str, Any]:
        if isinstance(value, Cell):
            return {"main": format_number(value.main, table.digits), "details": list(value.details), "hint": value.hint}
        return {"main": format_number(value, table.digits), "details": [], "hint": ""}

    return {"title": table.title, "header": list(table.header), "rows": [[cell(v) for v in row] for row in table.rows]}


def _figure(figure: Figure, images: ExampleImages) -> str | None:
    if figure.kind == "overlay":
        image = images.array(figure.data["example"])
        return None if image is None else figures.overlay(image, figure.data["attention"], tuple(figure.data["grid"]))
    return figures.DRAWERS[figure.kind](figure.data)


def write_html_report(
    run_dir: Path, sources: SourceRegistry | None = None, data_params: dict[str, Any] | None = None
) -> Path:
    """Render ``report.html`` into the run folder."""
    html = _environment().get_template("report.html").render(**build_context(Path(run_dir), sources, data_params))
    path = Path(run_dir) / HTML_FILE
    path.write_text(html, encoding="utf-8")
    return path
