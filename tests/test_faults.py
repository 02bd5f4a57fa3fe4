"""Fault tests: kill -9 at seeded random points then resume, a full disk (real tmpfs and simulated), a second
audit started on a folder that a live audit is writing. Each ends with results equal to an uninterrupted run,
or with the live run untouched."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import QUICK

from mmdiag.cli import main
from mmdiag.results import read_examples

N_SCENES = 12  # quick suite: three probes, one record per scene each
TOTAL = 3 * N_SCENES


def audit_argv(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "audit",
        "--model",
        str(model),
        "--out",
        str(out),
        "--suite",
        QUICK,
        "--n-examples",
        str(N_SCENES),
        "--batch-size",
        "4",
        "--no-progress",
        *extra,
    ]


def comparable(run: Path) -> dict:
    """results.json without what legitimately differs between two runs of the same audit."""
    doc = json.loads((run / "results.json").read_text())
    for key in ("started_at", "finished_at", "command", "processes", "devices", "seconds_per_example"):
        doc["metadata"].pop(key)
    return doc


def values(run: Path) -> dict:
    return {(r["probe"], r["example_id"]): r["values"] for r in read_examples(run)}


def n_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, tiny_paths: dict) -> Path:
    run = tmp_path_factory.mktemp("whole") / "run"
    assert main(audit_argv(tiny_paths["llava"], run)) == 0
    return run


def kill_after(command: list[str], examples: Path, records: int) -> int:
    """Start ``command``, SIGKILL it once ``examples`` holds ``records`` lines; return the lines it left."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and n_lines(examples) < records and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return n_lines(examples)


def test_kill_9_at_random_points_then_resume_is_bit_identical(tmp_path, tiny_paths, uninterrupted):
    """Two kills at seeded random record counts, a torn last line, then resume: results.json is equal exactly
    (not within a tolerance: the runner re-measures a partly finished batch whole, so every example is
    computed in the same batch as in the uninterrupted run)."""
    first, second = sorted(random.Random(20261204).sample(range(3, TOTAL - 4), 2))
    out = tmp_path / "run"
    examples = out / "examples.jsonl"
    command = [sys.executable, "-m", "mmdiag", *audit_argv(tiny_paths["llava"], out)]
    left = kill_after(command, examples, first)
    assert first <= left < TOTAL and not (out / "results.json").exists(), "the first kill must land mid-way"
    left = kill_after([*command, "--resume"], examples, max(second, left + 1))
    assert left < TOTAL and not (out / "results.json").exists(), "the second kill must land mid-way"
    with examples.open("a") as f:
        f.write('{"probe": "spatial", "example_id": "torn')  # a record cut mid-write
    assert main([*audit_argv(tiny_paths["llava"], out), "--resume"]) == 0
    assert comparable(out) == comparable(uninterrupted)
    assert values(out) == values(uninterrupted)
    ids = [(r["probe"], r["example_id"]) for r in read_examples(out)]
    assert len(ids) == len(set(ids)) == TOTAL  # nothing measured twice, nothing lost


class FullDisk:
    """A file whose writes fail with ENOSPC after ``room`` successful ones (what a full disk does)."""

    def __init__(self, inner, room: int):  # noqa: ANN001
        self.inner, self.room = inner, room

    def write(self, text: str) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= 1
        return self.inner.write(text)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.inner, name)


def test_disk_full_simulated_is_one_line_and_resumes(tmp_path, tiny_paths, uninterrupted, monkeypatch, capsys):
    from mmdiag.run.store import RunStore

    enter = RunStore.__enter__

    def full_after_ten(self):  # noqa: ANN001, ANN202
        enter(self)
        self._file = FullDisk(self._file, room=10)
        return self

    out = tmp_path / "run"
    monkeypatch.setattr(RunStore, "__enter__", full_after_ten)
    capsys.readouterr()
    assert main(audit_argv(tiny_paths["llava"], out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "the disk is full" in err and "--resume" in err
    assert n_lines(out / "examples.jsonl") == 10  # every record written before the failure is kept
    monkeypatch.setattr(RunStore, "__enter__", enter)  # space is free again
    assert main([*audit_argv(tiny_paths["llava"], out), "--resume"]) == 0
    assert comparable(out) == comparable(uninterrupted)


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )


def test_disk_full_on_a_real_small_tmpfs(tmp_path, tiny_paths, uninterrupted, capsys):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "64k"):
        pytest.skip("mounting a tmpfs needs root and mount rights here; the simulated full-disk test covers the logic")
    try:
        out = disk / "run"
        capsys.readouterr()
        assert main(audit_argv(tiny_paths["llava"], out)) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "the disk is full" in err, err
        kept = n_lines(out / "examples.jsonl")
        assert 0 < kept < TOTAL
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space is free again
        assert main([*audit_argv(tiny_paths["llava"], out), "--resume"]) == 0
        assert comparable(out) == comparable(uninterrupted)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_second_audit_on_a_live_folder_touches_nothing(tmp_path, tiny_paths, capsys):
    out = tmp_path / "run"
    examples = out / "examples.jsonl"
    command = [
        sys.executable,
        "-m",
        "mmdiag",
        "audit",
        "--model",
        str(tiny_paths["llava"]),
        "--out",
        str(out),
        "--suite",
        QUICK,
        "--n-examples",
        "30",
        "--batch-size",
        "1",
        "--no-progress",
    ]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and n_lines(examples) < 3 and first.poll() is None:
            time.sleep(0.01)
        assert first.poll() is None, "the first audit must still be running"
        capsys.readouterr()
        code = main(
            [
                "audit",
                "--model",
                str(tiny_paths["clip"]),
                "--out",
                str(out),
                "--overwrite",
                "--suite",
                QUICK,
                "--no-progress",
            ]
        )
        err = capsys.readouterr().err
        assert code == 2 and "being written by another mmdiag run" in err and len(err.strip().splitlines()) == 1
        assert examples.exists() and n_lines(examples) >= 3
    finally:
        _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err[-2000:]
    results = json.loads((out / "results.json").read_text())
    records = read_examples(out)
    for name, probe in results["probes"].items():
        assert probe["n_examples"] + probe.get("n_failed", 0) == sum(r["probe"] == name for r in records) == 30
