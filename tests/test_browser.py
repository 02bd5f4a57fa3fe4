"""The HTML reports in a real browser (headless Chromium), at desktop and narrow widths with full-page
screenshots: figures load, the console stays clean, the verdict and the findings are on the first
screen, nothing scrolls sideways, and markup injected through model answers or dataset strings stays text."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import integrity_suite

from mmdiag.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)"
)
ATTACKS = ["<script>window.__pwned = 1</script>", '<img src=x onerror="window.__pwned = 2">']
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


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


WIDTHS = {"desktop": 1400, "narrow": 420}


def load(page_url, shots=None):
    """Open the page at desktop and narrow widths; ``shots``: a folder for full-page screenshots. Returns the
    desktop state, every console problem, and per width where the verdict block and table of contents sit and
    how far the page overflows sideways."""
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        problems, layouts, state = [], {}, None
        for name, width in WIDTHS.items():
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on(
                "console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
            )
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.goto(page_url)
            page.wait_for_load_state("load")
            layouts[name] = page.evaluate("""() => {
                const box = id => { const e = document.getElementById(id); if (!e) return null;
                                    const r = e.getBoundingClientRect(); return {top: r.top, left: r.left, right: r.right}; };
                const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);
                const findings = Array.from(document.querySelectorAll('.card')).map(c => ({id: c.id,
                    text: c.querySelector('.finding').innerText,
                    bottom: c.querySelector('.finding').getBoundingClientRect().bottom,
                    right: c.getBoundingClientRect().right}));
                return {verdict: box('verdict'), contents: box('contents'), duplicate_ids: ids.length - new Set(ids).size,
                        findings: findings,
                        overflow: document.documentElement.scrollWidth - window.innerWidth,
                        links: Array.from(document.querySelectorAll('#contents a')).map(a => a.getAttribute('href')),
                        targets: Array.from(document.querySelectorAll('#contents a'))
                                      .every(a => document.getElementById(a.getAttribute('href').slice(1)) !== null)};
            }""")
            if shots is not None:
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            if state is None:
                state = page.evaluate("""() => ({
                    images: Array.from(document.images).map(i => ({ok: i.complete && i.naturalWidth > 0, alt: i.alt})),
                    scripts: document.querySelectorAll('script').length,
                    handlers: document.querySelectorAll('[onerror], [onload], [onclick]').length,
                    pwned: window.__pwned === undefined ? null : window.__pwned,
                    text: document.body.innerText,
                })""")
            page.close()
        browser.close()
    state["layouts"] = layouts
    return state, problems


def check_layout(state, shots):
    """The verdict block on the first screen at both widths, every contents link lands on a section, the page does
    not scroll sideways, and the screenshots are real full-page PNGs of the right width."""
    from PIL import Image

    for name, width in WIDTHS.items():
        layout = state["layouts"][name]
        assert layout["contents"] is not None and layout["links"] and layout["targets"], (name, layout)
        assert layout["duplicate_ids"] == 0, f"{name}: {layout['duplicate_ids']} duplicate element ids"
        if layout["verdict"] is not None:
            assert 0 <= layout["verdict"]["top"] < 900 and layout["verdict"]["right"] <= width + 1, (name, layout)
        assert layout["contents"]["right"] <= width + 1, (name, layout)
        assert layout["overflow"] <= 1, f"{name}: the page scrolls sideways by {layout['overflow']} px"
        with Image.open(shots / f"{name}.png") as shot:
            assert shot.format == "PNG" and shot.width == width and shot.height >= 900


def test_report_renders_with_figures_and_keeps_injected_markup_inert(tmp_path, tiny_paths):
    run = tmp_path / "run"
    assert (
        main(
            [
                "audit",
                "--model",
                str(tiny_paths["llava"]),
                "--out",
                str(run),
                "--n-examples",
                "12",
                "--no-progress",
                "--suite",
                integrity_suite(),
            ]
        )
        == 0
    )
    inject(run)
    assert main(["report", str(run)]) == 0
    state, problems = load((run / "report.html").as_uri(), shots=tmp_path)
    assert problems == []
    check_layout(state, tmp_path)
    assert state["layouts"]["desktop"]["verdict"] is not None
    assert "#metrics" in state["layouts"]["desktop"]["links"]
    assert [f["id"] for f in state["layouts"]["desktop"]["findings"]] == [
        "finding-attention",
        "finding-spatial",
        "finding-hallucination",
    ]
    assert len(state["images"]) >= 6 and all(i["ok"] for i in state["images"]), state["images"]
    assert state["scripts"] == 0 and state["handlers"] == 0 and state["pwned"] is None
    assert ATTACKS[0] in state["text"] and ATTACKS[1] in state["text"]  # shown as text, not run


def test_compare_page_renders(tmp_path, tiny_paths):
    for name in ("a", "b"):
        assert (
            main(
                [
                    "audit",
                    "--model",
                    str(tiny_paths["clip"]),
                    "--out",
                    str(tmp_path / name),
                    "--n-examples",
                    "6",
                    "--no-progress",
                    "--suite",
                    integrity_suite(),
                ]
            )
            == 0
        )
    assert (
        main(
            [
                "compare",
                str(tmp_path / "a"),
                str(tmp_path / "b"),
                "--out",
                str(tmp_path / "cmp"),
                "--fail-on-regression",
                "0.5",
            ]
        )
        == 0
    )
    state, problems = load((tmp_path / "cmp" / "compare.html").as_uri(), shots=tmp_path)
    assert problems == [] and state["scripts"] == 0
    check_layout(state, tmp_path)
    assert state["layouts"]["narrow"]["verdict"] is not None and "Regression check: PASS" in state["text"]
    assert "Paired differences" in state["text"]


@pytest.mark.parametrize("defect", [None, "image-blind"])
def test_first_screen_says_what_each_diagnostic_found(tmp_path, defect):
    """The reference model under the release suite (the clean model and a planted image-blind one): at 1400×900 the
    first screen holds the verdict and the three findings, each a sentence with its key number, and a failing
    diagnostic names its failed gate on its card."""
    from dataclasses import replace

    from mmdiag import api
    from mmdiag.run.suites import load_suite
    from mmdiag.zoo.build import SHIPPED_DIR

    if not (SHIPPED_DIR / "ref-llava-mlp" / "config.json").is_file():
        pytest.skip("the shipped reference model is not installed")
    config = load_suite(Path(__file__).resolve().parent.parent / "probes" / "release.yaml").config
    light = {
        "attention": {"generate_tokens": 0, "untrained_baseline": False},
        "spatial": {"untrained_baseline": False, "llm_layers": []},
        "hallucination": {"free_text": False, "captions": False},
    }
    params = {probe: {**config.probe_params.get(probe, {}), **light[probe]} for probe in config.probes}
    run = tmp_path / "run"
    api.audit(
        str(SHIPPED_DIR / "ref-llava-mlp"),
        run,
        replace(config, probe_params=params, n_examples=24),
        progress=False,
        plant=defect,
    )
    state, problems = load((run / "report.html").as_uri(), shots=tmp_path)
    assert problems == []
    check_layout(state, tmp_path)
    desktop = state["layouts"]["desktop"]
    assert desktop["verdict"]["top"] < 900
    findings = {f["id"]: f for f in desktop["findings"]}
    assert list(findings) == ["finding-attention", "finding-spatial", "finding-hallucination"]
    assert all(f["bottom"] <= 900 and f["right"] <= 1401 for f in findings.values()), findings
    assert "of its attention to image tokens" in findings["finding-attention"]["text"]
    assert "3×3 grid cell" in findings["finding-spatial"]["text"]
    assert "POPE accuracy is" in findings["finding-hallucination"]["text"]
    assert all(re.search(r"\[-?\d", f["text"]) for f in findings.values()), findings  # key numbers with CIs
    text = state["text"]
    first_screen = text[: text.index("What to do next")]
    if defect is None:
        assert "PASS" in first_screen and "FAIL" not in first_screen
        assert "unstable" not in first_screen and "undefined" not in first_screen  # no noise above the findings
    else:
        assert "FAIL" in first_screen and "hallucination.multimodal_gain.ci_low >= 0.15: FAIL" in first_screen
