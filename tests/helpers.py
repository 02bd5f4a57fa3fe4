"""Helpers shared by tests: the release suite with its quality gates left out.

Tests that exercise the pipeline on random-weight tiny models (which rightly fail the release suite's quality
gates) run the release suite's probes and parameters unchanged with its integrity gates only.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "probes" / "quick.yaml")


@functools.lru_cache(maxsize=1)
def integrity_suite() -> str:
    """Path of a copy of probes/release.yaml whose gates are its ``all`` (integrity) gates alone."""
    data = yaml.safe_load((ROOT / "probes" / "release.yaml").read_text())
    data["gates"] = list(data["gates"]["all"])
    path = Path(tempfile.mkdtemp(prefix="mmdiag-suite-")) / "release-integrity.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the sha256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def check_one_line_refusal(
    case: tuple[str, Callable, tuple[str, ...]], tmp: Path, finished_run: Path, tiny_paths: dict, capsys: Any
) -> None:
    """Run one bad-input case (command template, setup(tmp, run, tiny) -> placeholders, words the line must hold)
    in process next to a copy of a finished run: exit 2, exactly one line ``mmdiag: error: ...`` with the words, no
    traceback, and the run folder unchanged byte for byte."""
    from mmdiag.cli import main

    template, setup, needles = case
    run = tmp / "run"
    shutil.copytree(finished_run, run)
    extra = setup(tmp, run, tiny_paths)
    before = snapshot(run)
    values = {"run": run, "tmp": tmp, "quick": QUICK, **{k: str(v) for k, v in tiny_paths.items()}, **extra}
    capsys.readouterr()
    code = main(shlex.split(template.format(**values)))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert lines[0].startswith("mmdiag: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert snapshot(run) == before, "a refused command changed the existing run folder"
