"""The HTML reports in a real browser (headless Chromium): figures load, the console stays clean, and
markup injected through model answers or dataset strings stays text."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import integrity_suite

from mmdiag.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
ATTACKS = ["<script>window.__pwned = 1</script>", '<img src=x onerror="window.__pwned = 2">']
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def inject(run):
    results = json.loads((run / "results.json").read_text())
    results["metadata"]["model"]["source"] = ATTACKS[0]
    results["notes"].append(ATTACKS[1])
    (run / "results.json").write_text(json.dumps(results))
    records = [json.loads(line) for line in (run / "examples.jsonl").read_text().splitlines()]
    for r in records:
        values = r.get("values", {})
        if "questions" in values:
            values["questions"][0] = ATTACKS[0]
        if "question" in values:
            values["question"] = ATTACKS[1]
    (run / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def load(page_url):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        problems = []
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.goto(page_url)
        page.wait_for_load_state("load")
        state = page.evaluate("""() => ({
            images: Array.from(document.images).map(i => ({ok: i.complete && i.naturalWidth > 0, alt: i.alt})),
            scripts: document.querySelectorAll('script').length,
            handlers: document.querySelectorAll('[onerror], [onload], [onclick]').length,
            pwned: window.__pwned === undefined ? null : window.__pwned,
            text: document.body.innerText,
        })""")
        browser.close()
    return state, problems


def test_report_renders_with_figures_and_keeps_injected_markup_inert(tmp_path, tiny_paths):
    run = tmp_path / "run"
    assert main(["audit", "--model", str(tiny_paths["llava"]), "--out", str(run), "--n-scenes", "12", "--no-progress",
                 "--suite", integrity_suite()]) == 0
    inject(run)
    assert main(["report", str(run)]) == 0
    state, problems = load((run / "report.html").as_uri())
    assert problems == []
    assert len(state["images"]) >= 6 and all(i["ok"] for i in state["images"]), state["images"]
    assert state["scripts"] == 0 and state["handlers"] == 0 and state["pwned"] is None
    assert ATTACKS[0] in state["text"] and ATTACKS[1] in state["text"]  # shown as text, not run


def test_compare_page_renders(tmp_path, tiny_paths):
    for name in ("a", "b"):
        assert main(["audit", "--model", str(tiny_paths["clip"]), "--out", str(tmp_path / name), "--n-scenes", "6",
                     "--no-progress", "--suite", integrity_suite()]) == 0
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    state, problems = load((tmp_path / "cmp" / "compare.html").as_uri())
    assert problems == [] and state["scripts"] == 0
    assert "Paired differences" in state["text"]
