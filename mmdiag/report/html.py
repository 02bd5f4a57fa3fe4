"""The self-contained HTML report: jinja2 with autoescaping, figures embedded as data URIs.

Every string that came from a model or a dataset reaches the page through autoescaping; nothing is
marked safe except the data URIs this module builds itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from mmdiag.metrics.pope import parse_answer
from mmdiag.probes.guidance import state_rank
from mmdiag.report import figures
from mmdiag.report.examples import ExampleImages
from mmdiag.results import read_examples, read_results
from mmdiag.sources import SourceRegistry
from mmdiag.verdicts import verdict_lines

HTML_FILE = "report.html"
MAX_EXAMPLES_SHOWN = 6


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


def build_context(run_dir: Path, sources: SourceRegistry | None = None,
                  data_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the template shows, computed from results.json and examples.jsonl alone (``data_params``: where
    the run's data source was found, when not where the run recorded it)."""
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
    flagged: dict[str, int] = {}
    for row in rows:
        state = (row["m"].get("status") or {}).get("state")
        if state in FLAG_STATES:
            flagged[state] = flagged.get(state, 0) + 1
    return {
        "metric_rows": rows,
        "attention_flags": [(state, flagged[state]) for state in FLAG_STATES if state in flagged],
        "rule_notes": unparsed_notes(probes.get("hallucination"), by_probe.get("hallucination", [])),
        "results": results,
        "verdict": verdict_lines(results),
        "meta": results["metadata"],
        "probes": probes,
        "failures": failures[:20],
        "n_failures": len(failures),
        "attention": _attention_section(probes.get("attention"), by_probe.get("attention", []), images),
        "spatial": _spatial_section(probes.get("spatial")),
        "hallucination": _hallucination_section(probes.get("hallucination"), by_probe.get("hallucination", []), images),
    }


FLAG_STATES = ("alarming", "unstable", "undefined")  # the states the summary line under the verdict counts
UNPARSED_NOTE_SHARE = 0.5  # a parsing rule that leaves more than this share unparsed gets a note saying why


def metric_rows(probes: dict[str, Any]) -> list[dict[str, Any]]:
    """Every headline metric of every probe as ``{probe, metric, m}``, most urgent first (failed gates, values
    outside the healthy range, unstable, undefined...; gated before ungated), else in the probe's own order."""
    rows = [{"probe": name, "metric": metric, "m": m}
            for name, probe in probes.items() if "error" not in probe
            for metric, m in probe.get("metrics", {}).items()]
    return sorted(rows, key=lambda row: state_rank(row["m"]))  # stable: ties keep the probe's order


def unparsed_notes(result: dict[str, Any] | None, records: list[dict[str, Any]]) -> list[str]:
    """One note per parsing rule that could not read most free-text answers, quoting an answer it could not parse:
    its numbers then say how the model words answers, not whether they are right."""
    if not result or "error" in result:
        return []
    answers = [a for r in records for a in (r.get("values") or {}).get("answers") or [] if isinstance(a, str)]
    notes = []
    for split, rules in (result.get("pope_rules") or {}).items():
        for rule, scores in rules.items():
            n, unparsed = scores.get("n") or 0, scores.get("unparsed") or 0
            if not n or unparsed / n <= UNPARSED_NOTE_SHARE:
                continue
            example = next((a for a in answers if _unparsed(a, rule)), None)
            quoted = f', e.g. "{example[:60]}"' if example is not None else ""
            notes.append(f"{split} / {rule}: {unparsed} of {n} answers unparsed - the model writes free text{quoted}, "
                         f"which the {rule} rule does not read as yes or no; its accuracy and F1 measure the wording, "
                         "not the answers (the logit decisions above do not depend on wording)")
    return notes


def _unparsed(answer: str, rule: str) -> bool:
    try:
        return parse_answer(answer, rule) is None
    except ValueError:
        return False


def _attention_section(result: dict[str, Any] | None, records: list[dict[str, Any]], images: ExampleImages) -> dict[str, Any] | None:
    if not result or "error" in result:
        return None
    overlays = []
    grid = result.get("token_grid")
    for record in records:
        values = record.get("values")
        if not values or not grid or len(overlays) >= 4:
            continue
        attention = values.get("attention_map") or values.get("image_token_attention")
        if attention is None and values.get("cls_patch_attention"):
            attention = [sum(col) / len(col) for col in zip(*values["cls_patch_attention"])]
        image = images.array(record["scene"])
        if attention and len(attention) == grid[0] * grid[1] and image is not None:
            overlays.append({"uri": figures.attention_overlay(image, attention, tuple(grid)),
                             "caption": values.get("question") or values.get("caption", "")})
    blind = None
    gen_records = [r["values"] for r in records if r.get("values") and "blind" in r["values"]]
    if gen_records:
        blind = {name: {"yes_shift": sum(v["blind"][name]["yes_shift"] for v in gen_records) / len(gen_records),
                        "tv": sum(v["blind"][name]["tv"] for v in gen_records) / len(gen_records)}
                 for name in gen_records[0]["blind"]}
    return {"curves": figures.attention_layer_curves(result), "heatmap": figures.head_layer_heatmap(result),
            "answer_curves": figures.attention_layer_curves(result, "answer_layer_mass", "at generated answer tokens"),
            "overlays": overlays, "blind": blind}


def _spatial_section(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if not result or "error" in result:
        return None
    return {"bars": figures.retention_bars(result)}


def _hallucination_section(result: dict[str, Any] | None, records: list[dict[str, Any]], images: ExampleImages) -> dict[str, Any] | None:
    if not result or "error" in result:
        return None
    shown, pairs = [], []
    for record in records:
        values = record.get("values")
        if not values or "questions" not in values or len(shown) >= MAX_EXAMPLES_SHOWN:
            continue
        blind = values.get("blind", {}).get("mean_colour", {"p_yes": [], "p_no": []})
        rows = [
            {"question": q, "label": lab, "splits": ", ".join(sp), "p_yes": _share(py, pn), "blind_p_yes": _share(by, bn),
             "answer": answer}
            for q, lab, sp, py, pn, by, bn, answer in zip(values["questions"], values["labels"], values["splits"], values["p_yes"],
                                                          values["p_no"], blind["p_yes"], blind["p_no"],
                                                          values.get("answers") or [""] * len(values["questions"]))
        ]
        image = images.uri(record["scene"])
        if image is None:  # the run's data source is not installed here: the example is listed without pictures
            continue
        for cf in values.get("counterfactuals", []):
            edited = images.uri(cf["scene_after"])
            if len(pairs) < 3 * MAX_EXAMPLES_SHOWN and edited is not None:
                pairs.append({"image": image, "edited": edited,
                              "edit": cf["edit"], "question": cf["question"], "before": cf["before"], "after": cf["after"],
                              "p_yes_before": _share(cf["p_yes_before"], cf["p_no_before"]),
                              "p_yes_after": _share(cf["p_yes_after"], cf["p_no_after"])})
        shown.append({"id": record["example_id"], "image": image, "rows": rows, "caption": values.get("caption")})
    return {"examples": shown, "pairs": pairs, "reliability": figures.reliability_diagram(result.get("reliability") or [])}


def _share(p_yes: float, p_no: float) -> float:
    return p_yes / (p_yes + p_no) if p_yes + p_no else 0.5


def write_html_report(run_dir: Path, sources: SourceRegistry | None = None,
                      data_params: dict[str, Any] | None = None) -> Path:
    """Render ``report.html`` into the run folder."""
    html = _environment().get_template("report.html").render(**build_context(Path(run_dir), sources, data_params))
    path = Path(run_dir) / HTML_FILE
    path.write_text(html, encoding="utf-8")
    return path
