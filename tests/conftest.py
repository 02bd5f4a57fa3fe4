"""Shared fixtures: tiny checkpoints of every family, built offline once per session and loaded by path."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hidden download must fail loudly, never hang or succeed
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from mmdiag.checkpoints.tiny import FAMILIES, build_tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one tiny checkpoint per family: <dir>/<family>."""
    root = tmp_path_factory.mktemp("tiny")
    for family in FAMILIES:
        build_tiny(family, root / family)
    return root


@pytest.fixture(scope="session")
def tiny_paths(tiny_dir: Path) -> dict[str, Path]:
    return {family: tiny_dir / family for family in FAMILIES}


@pytest.fixture(scope="session")
def family_audits(tiny_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    """One ``mmdiag audit`` (the default suite, 8 scenes) of every tiny family, shared by the end-to-end and the
    results-schema tests: family -> (run folder, exit code)."""
    from mmdiag.cli import main

    root = tmp_path_factory.mktemp("family-audits")
    return {
        family: (
            root / family,
            main(["audit", "--model", str(path), "--out", str(root / family), "--n-examples", "8", "--no-progress"]),
        )
        for family, path in tiny_paths.items()
    }


@pytest.fixture(scope="session")
def adapters(tiny_paths: dict[str, Path]) -> dict:
    from mmdiag.adapters import load_adapter

    return {family: load_adapter(str(path)) for family, path in tiny_paths.items()}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_paths: dict[str, Path]) -> Path:
    """A finished quick audit of the tiny CLIP, for tests that copy it and check that a refusal leaves it as it was."""
    from helpers import QUICK

    from mmdiag.cli import main

    run = tmp_path_factory.mktemp("finished") / "run"
    assert (
        main(["audit", "--model", str(tiny_paths["clip"]), "--out", str(run), "--suite", QUICK, "--no-progress"]) == 0
    )
    return run
