"""Helpers shared by tests: the release suite with its quality gates left out.

Tests that exercise the pipeline on random-weight tiny models (which rightly fail the release suite's quality
gates) run the release suite's probes and parameters unchanged with its integrity gates only.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

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
