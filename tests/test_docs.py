"""The documentation site builds strictly, and its tables are generated from the code and the benchmark files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmdiag import docs_tables

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


def test_every_page_of_the_nav_is_built_and_no_marker_is_left(site):
    for path in (ROOT / "docs").rglob("*.md"):
        name = path.relative_to(ROOT / "docs").with_suffix("")
        html = (site / "index.html") if name.as_posix() == "index" else site / name / "index.html"
        assert html.is_file(), name
        assert "<!-- mmdiag:" not in html.read_text(encoding="utf-8"), f"{name}: a table marker was not replaced"


def test_generated_tables_come_from_the_code(site):
    from mmdiag.adapters.registry import BUILTIN_ADAPTERS

    cli = page(site, "cli")
    assert "--output-path" in cli and "--fail-on-regression" in cli and "--intervene" in cli and "mmdiag pope" in cli
    families = page(site, "families")
    assert all(arch in families for arch in BUILTIN_ADAPTERS if arch != "open_clip")
    assert "hallucination.multimodal_gain" in page(site, "metrics")
    zoo = page(site, "zoo")
    assert "ref-llava-biased" in zoo and "0.985" in zoo  # the card's measured prior, not a copied number
    assert "mmdiag.api.audit" in page(site, "api")  # the API reference is generated from the docstrings


def test_benchmark_and_gate_tables_are_read_from_the_recorded_files(site, tmp_path):
    for path in sorted((ROOT / "bench" / "results").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            assert {"figure", "value", "unit", "machine", "measured_at", "command"} <= set(row), (path, row)
            assert row["command"].startswith(
                f"python bench/{path.stem.split('_power')[0]}".replace("gate", "gate_power")
            )
    gates = page(site, "gates")
    assert "ref-llava-mlp+image-blind" in gates and "positionless-1" in gates
    release = docs_tables.gate_matrix("release")
    assert "| ref-llava-biased | 20 | 20 |" in release
    # a figure changes by re-recording, not by editing prose: a new file changes the page's table
    shutil.copytree(ROOT / "bench" / "results", tmp_path / "results")
    rows = [json.loads(line) for line in (tmp_path / "results" / "audit_speed.jsonl").read_text().splitlines()]
    rows[0]["value"] = 12.34
    (tmp_path / "results" / "audit_speed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "12.34 s" in docs_tables.benchmark("audit_speed", tmp_path / "results")
    assert "Not recorded yet" in docs_tables.benchmark("no_such_bench", tmp_path / "results")


def test_an_unknown_marker_fails_the_build():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import hooks
    finally:
        sys.path.remove(str(ROOT / "docs"))

    class Page:
        class file:  # noqa: N801 - mkdocs' attribute name
            src_path = "x.md"

    assert "| variant |" in hooks.on_page_markdown("<!-- mmdiag:gate-matrix release -->", Page, None, None)
    with pytest.raises(ValueError, match="unknown table marker 'nope'"):
        hooks.on_page_markdown("<!-- mmdiag:nope -->", Page, None, None)


def test_record_writes_one_line_per_figure_with_the_machine(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from record import figure, record
    finally:
        sys.path.remove(str(ROOT / "bench"))
    path = record("demo", [figure("a", 1.5, "s", "<= 2 s"), figure("b", None)], folder=tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["figure"] for r in rows] == ["a", "b"] and rows[0]["machine"] and rows[0]["command"].startswith("python")
    assert "| a | 1.5 s | <= 2 s |" in docs_tables.benchmark("demo", tmp_path)
