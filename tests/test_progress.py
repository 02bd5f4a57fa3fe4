"""Every phase of an audit announces itself on stderr with the time it took and an overall ETA."""

from __future__ import annotations

import io
import re

from helpers import QUICK

from mmdiag.cli import main
from mmdiag.run.progress import AuditProgress, audit_phases


def test_phase_lines_with_eta_for_every_phase(tmp_path, tiny_paths, capsys):
    assert (
        main(
            [
                "audit",
                "--model",
                str(tiny_paths["llava"]),
                "--suite",
                QUICK,
                "--out",
                str(tmp_path / "r"),
                "--n-examples",
                "3",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    done = re.findall(r"mmdiag: \[(\d)/(\d)\] ([^\n]*?): done in [\d.]+ s \(elapsed [\d.]+ s", err)
    names = [name for _, _, name in done]
    assert names == [
        "loading the model",
        "attention: measuring",
        "attention: aggregating",
        "spatial: measuring",
        "spatial: aggregating",
        "hallucination: measuring",
        "hallucination: aggregating",
        "writing the reports",
    ], err
    assert all(total == "8" for _, total, _ in done) and "left in all)" in err
    assert (
        main(
            [
                "audit",
                "--model",
                str(tiny_paths["clip"]),
                "--suite",
                QUICK,
                "--out",
                str(tmp_path / "q"),
                "--n-examples",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "mmdiag: [" not in capsys.readouterr().err


def test_eta_is_calibrated_on_the_finished_phases():
    progress = AuditProgress([("a", 1.0), ("b", 3.0)], stream=io.StringIO())
    assert progress.eta() == 4.0  # nothing finished: the reference weights themselves
    progress._started -= 10.0  # pretend phase a took 10 s instead of 1 s
    progress._done.add("a")
    progress._spent_weight = 1.0
    assert 29.9 < progress.eta() < 30.5  # b's weight times the observed 10 s per weight unit
    progress.skip("b")
    assert progress.eta() == 0.0
    phases = dict(audit_phases(["spatial"], 96))
    assert phases["spatial: aggregating"] == 9.0 and set(phases) == {
        "loading the model",
        "spatial: measuring",
        "spatial: aggregating",
        "writing the reports",
    }
