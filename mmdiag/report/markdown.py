"""A Markdown summary for pull requests: verdict, gates, headline metrics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmdiag.report.findings import model_name, next_steps, probe_findings
from mmdiag.report.html import format_number, metric_rows
from mmdiag.results import read_results
from mmdiag.verdicts import verdict_lines

MARKDOWN_FILE = "report.md"
_MARKUP = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?\w+;)")  # a '<' that opens a tag / an '&' that starts an entity
# a Markdown link or link reference definition: [text](target) / [text]: target, with the target's first word
_LINK = re.compile(r"\[([^\]]*)\](\s*(?:\(|:)\s*<?)([^\s)>]*)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
SAFE_SCHEMES = ("http:", "https:")


def _neutralise_links(text: str) -> str:
    """Links whose target is neither http(s) nor a relative path (``javascript:``, ``data:``, ``file:`` ...) lose
    their brackets' meaning (backslash-escaped), so they show as text and never become clickable."""

    def fix(match: re.Match) -> str:
        target = match.group(3)
        if not _SCHEME.match(target) or target.lower().startswith(SAFE_SCHEMES):
            return match.group(0)
        return f"\\[{match.group(1)}\\]{match.group(2)}{target}"

    return _LINK.sub(fix, text)


def _cell(value: Any) -> str:
    """A table cell: numbers formatted; in text, pipes and newlines escaped, and every '<' that could open an HTML
    tag, comment or autolink and every '&' that could start an entity backslash-escaped, so that no markup from a
    model or dataset string renders while the raw file stays readable (``>= 0.8``, not ``&gt;= 0.8``)."""
    text = format_number(value) if not isinstance(value, str) else value
    text = _MARKUP.sub(lambda m: "\\" + m.group(0), text.replace("\\", "\\\\")).replace("|", "\\|")
    return _neutralise_links(text.replace("\n", " ").replace("\r", " "))


def _code(text: str) -> str:
    """Inline code (metric and gate names): no escaping inside, backticks in the text fenced by longer runs."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text.replace(chr(10), ' ').replace('|', '¦')}{fence}"


ARROWS = {"higher": "↑", "lower": "↓", "near_reference": "≈", "neither": "·"}


BADGES = {"pass": "gates pass", "fail": "**FAIL**", "ungated": "no quality gate"}


def render_markdown(results: dict[str, Any], run_dir: str = "RUN") -> str:
    """Verdict, one finding per diagnostic with the gates it decided, what to do next; then, folded, the gates and
    every metric."""
    meta = results["metadata"]
    verdict = verdict_lines(results)[0]
    lines = [
        f"## mmdiag audit: {_cell(model_name(meta['model']))}",
        "",
        f"**{_cell(verdict)}**",
        "",
        f"{_cell(meta['model']['architecture'])} · seed {meta['seed']} · config `{meta['config_hash']}` · "
        f"mmdiag {meta['versions'].get('mmdiag')}",
        "",
        "### Findings",
        "",
    ]
    if meta["config"].get("interventions"):
        lines[-2:-2] = [
            f"> measured under {_cell(' + '.join(meta['config']['interventions']))}: compare with a run without it",
            "",
        ]
    cards = probe_findings(results, {})
    for card in cards:
        gates = card["gates"]
        badge = BADGES[card["state"]]
        if gates["total"] and card["state"] != "ungated":
            badge = f"{gates['passed']} of {gates['total']} {badge}"
        lines.append(f"- **{_cell(card['finding'].title)}** ({badge}): {_cell(card['finding'].sentence)}")
        lines += [f"  - {_cell(line)}" for line in gates["failed"]]
    lines += ["", "### What to do next", ""]
    lines += [f"- {_cell(step)}" for step in next_steps(results, cards, run_dir)]
    lines += [""]
    lines += [f"> {_cell(note)}" for note in results.get("notes", [])]
    lines += ["", "<details><summary>Gates and every metric</summary>", ""]
    if results.get("gates"):
        lines += ["", "| gate | metric [95% CI] | compared | margin | verdict |", "|---|---|---|---|---|"]
        for g in results["gates"]:
            ci = (
                f" [{format_number(g.get('ci_low'))}, {format_number(g.get('ci_high'))}]"
                if g.get("ci_low") is not None
                else ""
            )
            verdict_cell = (
                "pass" if g["passed"] else "**FAIL**" + (f": {_cell(g['reason'])}" if g.get("reason") else "")
            )
            lines.append(
                f"| {_code(g['gate'])} | {_cell(g.get('estimate', g['value']))}{ci} | {_cell(g['value'])} | "
                f"{_cell(g['margin'])} | {verdict_cell} |"
            )
    lines += [
        "",
        "### Headline metrics, most urgent first",
        "",
        "Status: **alarming** (a gate fails, or outside the release gates' healthy range), **unstable** (a value "
        "that is not a finding, why given), **undefined** (why given), healthy, at reference (the CI covers the "
        "no-signal value), measured (no range set). Better: ↑ higher, ↓ lower, ≈ nearest the reference, · "
        "descriptive.",
        "",
        "| status | metric | value [95% CI] | better | reference | healthy range | n | meaning |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, probe in results.get("probes", {}).items():
        if "error" in probe:
            lines.append(f"| **failed** | {_code(name)} | | | | | | {_cell(probe['error'])} |")
    for row in metric_rows(results.get("probes", {})):
        m, guide, status = row["m"], row["m"].get("guide") or {}, row["m"].get("status") or {}
        state = status.get("state", "measured")
        ci = (
            f" [{format_number(m.get('ci_low'))}, {format_number(m.get('ci_high'))}]"
            if m.get("ci_low") is not None
            else ""
        )
        value = "undefined" if m.get("value") is None else f"{_cell(m.get('value'))}{ci}"
        reference = (
            ""
            if guide.get("reference") is None
            else f"{_cell(guide['reference'])} ({_cell(guide.get('reference_label', ''))})"
        )
        healthy = (
            ""
            if not guide.get("healthy")
            else _code(guide["healthy"])
            + ("" if guide.get("healthy_source") == "this run's gates" else " (release suite, not gated here)")
        )
        meaning = _cell(guide.get("meaning") or m.get("description", ""))
        why = f"<br>{_cell(status['reason'])}" if state in ("alarming", "unstable", "undefined", "at_reference") else ""
        status_cell = f"**{state}**" if state in ("alarming", "unstable", "undefined") else state.replace("_", " ")
        lines.append(
            f"| {status_cell} | {_code(row['probe'] + '.' + row['metric'])} | {value} | "
            f"{ARROWS.get(guide.get('better', 'neither'), '·')} | {reference} | {healthy} | {_cell(m.get('n'))} | "
            f"{meaning}{why} |"
        )
    failed = {k: v for k, v in results.get("failed_examples", {}).items() if v}
    if failed:
        lines += ["", "Failed examples: " + ", ".join(f"{k}: {v}" for k, v in failed.items())]
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def write_markdown_report(run_dir: Path) -> Path:
    path = Path(run_dir) / MARKDOWN_FILE
    path.write_text(render_markdown(read_results(Path(run_dir)), str(run_dir)), encoding="utf-8")
    return path
