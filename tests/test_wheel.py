"""From a built wheel, outside the source tree: the suites and the zoo ship inside the package, so
``--suite quick`` and ``--model ref-llava-biased`` work by name, and ``mmdiag ls`` lists them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory):
    """The wheel built from this tree (no dependencies, no isolation: offline), unpacked as site-packages would
    hold it."""
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((out / "dist").glob("mmdiag-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(out / "site")
    return out / "site"


def run_from(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "MMDIAG_HOME": str(cwd / "home")}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from mmdiag.cli import main; sys.exit(main(sys.argv[1:]))", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_suites_and_zoo_models_by_name_from_an_installed_wheel(unpacked_wheel, tmp_path):
    shipped = sorted(p.name for p in (unpacked_wheel / "mmdiag" / "suites").glob("*.yaml"))
    assert shipped == sorted(p.name for p in (ROOT / "probes").glob("*.yaml"))
    assert not (unpacked_wheel / "mmdiag" / "suites" / "quick.yaml").is_symlink()  # a copy, not a dangling link
    listing = run_from(unpacked_wheel, tmp_path, "ls")
    assert listing.returncode == 0, listing.stderr
    assert (
        "quick" in listing.stdout and "release" in listing.stdout and "ref-llava-biased       shipped" in listing.stdout
    )
    audit = run_from(
        unpacked_wheel,
        tmp_path,
        "audit",
        "--suite",
        "quick",
        "--model",
        "ref-llava-biased",
        "--probes",
        "hallucination",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert audit.returncode in (0, 1), audit.stderr[-2000:]
    assert (tmp_path / "run" / "report.html").is_file()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "site" in results["metadata"]["model"]["source"] and results["metadata"]["config"]["n_scenes"] == 8
