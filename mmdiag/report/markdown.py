"""A Markdown summary for pull requests: verdict, gates, headline metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdiag.report.html import format_number
from mmdiag.results import read_results
from mmdiag.verdicts import verdict_lines

MARKDOWN_FILE = "report.md"


def _cell(value: Any) -> str:
    """A table cell: numbers formatted, text with pipes, newlines and HTML-significant characters escaped."""
    text = format_number(value) if not isinstance(value, str) else value
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("\n", " "))


def render_markdown(results: dict[str, Any]) -> str:
    meta = results["metadata"]
    verdict, *failures = verdict_lines(results)
    lines = [
        f"## mmdiag audit: {_cell(meta['model']['source'])}",
        "",
        f"**{_cell(verdict)}**",
        "",
    ]
    lines += [f"- {_cell(line.strip())}" for line in failures]
    lines += ["", f"{_cell(meta['model']['architecture'])} · seed {meta['seed']} · config `{meta['config_hash']}` · "
              f"mmdiag {meta['versions'].get('mmdiag')}", ""]
    lines += [f"> {_cell(note)}" for note in results.get("notes", [])]
    if results.get("gates"):
        lines += ["", "| gate | metric [95% CI] | compared | margin | verdict |", "|---|---|---|---|---|"]
        for g in results["gates"]:
            ci = (f" [{format_number(g.get('ci_low'))}, {format_number(g.get('ci_high'))}]"
                  if g.get("ci_low") is not None else "")
            verdict_cell = "pass" if g["passed"] else "**FAIL**" + (f": {_cell(g['reason'])}" if g.get("reason") else "")
            lines.append(f"| {_cell(g['gate'])} | {_cell(g.get('estimate', g['value']))}{ci} | {_cell(g['value'])} | "
                         f"{_cell(g['margin'])} | {verdict_cell} |")
    lines += ["", "| probe | metric | value | 95% CI | null | p | n |", "|---|---|---|---|---|---|---|"]
    for name, probe in results.get("probes", {}).items():
        if "error" in probe:
            lines.append(f"| {name} | error | {_cell(probe['error'])} | |")
            continue
        for metric, m in probe.get("metrics", {}).items():
            ci = f"[{format_number(m.get('ci_low'))}, {format_number(m.get('ci_high'))}]" if m.get("ci_low") is not None else ""
            value = _cell(m.get("value")) if m.get("value") is not None or not m.get("undefined") else \
                f"undefined: {_cell(m['undefined'])}"
            lines.append(f"| {name} | {metric} | {value} | {ci} | {_cell(m.get('null'))} | {_cell(m.get('p_value'))} | "
                         f"{_cell(m.get('n'))} |")
    failed = {k: v for k, v in results.get("failed_examples", {}).items() if v}
    if failed:
        lines += ["", "Failed examples: " + ", ".join(f"{k}: {v}" for k, v in failed.items())]
    return "\n".join(lines) + "\n"


def write_markdown_report(run_dir: Path) -> Path:
    path = Path(run_dir) / MARKDOWN_FILE
    path.write_text(render_markdown(read_results(Path(run_dir))), encoding="utf-8")
    return path
