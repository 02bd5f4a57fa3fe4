"""The README's two commands stay true: CI runs exactly the README's test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = [line for line in ci.splitlines() if "pytest" in line and not line.startswith("#")]
    assert len(command) == 1
    assert command[0].strip() in readme


def test_readme_main_command_audits_the_default_model():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && HF_HUB_OFFLINE=1 mmdiag audit --out runs/demo" in readme
