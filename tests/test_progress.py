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


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_eta_comes_from_this_runs_measured_pace_never_from_reference_seconds():
    clock = FakeClock()
    progress = AuditProgress([("a", 1.0), ("b", 3.0), ("c", 2.0)], stream=io.StringIO(), clock=clock)
    assert progress.eta() is None  # nothing measured: no promise
    with progress.phase("a"):
        clock.now += 10.0  # a takes 10 s where the reference took 1: this machine is 10x slower
    assert progress.eta() == 50.0  # b and c at the measured 10 s per unit
    with progress.phase("b"):
        clock.now += 5.0
        progress.advance(1, 4)  # a quarter of b in 5 s: b's own pace says 15 s more of b
        pace = 15.0 / (1.0 + 3.0 * 0.25)  # 15 s spent on a and a quarter of b, 1.75 units of expected work
        assert progress.eta() == 15.0 + pace * 2.0  # the rest of b at its pace, c at the run's pace
        clock.now += 15.0
        progress.advance(4, 4)
    assert progress.eta() == 30.0 / 4.0 * 2.0  # 30 s for 4 units so far: c (2 units) at 7.5 s per unit
    progress.skip("c")
    assert progress.eta() == 0.0
    phases = dict(audit_phases(["spatial"], 96))
    assert phases["spatial: aggregating"] == 9.0 and set(phases) == {
        "loading the model",
        "spatial: measuring",
        "spatial: aggregating",
        "writing the reports",
    }


def test_the_bar_moves_inside_a_batch_at_this_phases_measured_pace():
    """Finished examples arrive a batch at a time; in between, the bar shows how long the batch has run and, once a
    batch of this phase has been timed, how many of its examples that pace says are done (never all of them)."""
    from mmdiag.run.phase_bar import PhaseBar

    clock, stream = FakeClock(), io.StringIO()
    bar = PhaseBar(24, "hallucination", stream=stream, clock=clock, heartbeat=0)
    bar.start_batch(8)
    clock.now += 12.0
    bar.tick()
    assert bar.estimate() == (0, 12.0)  # no pace yet: no made-up progress, only the time it has run
    assert "batch of 8 under way 12 s" in stream.getvalue()
    bar.finish(8)  # 8 examples in 12 s: 1.5 s per example
    assert bar.estimate() == (8, None)
    bar.start_batch(8)
    clock.now += 6.0
    bar.tick()
    assert bar.estimate() == (12, 6.0)  # 6 s at 1.5 s per example: 4 of the batch
    assert "12/24" in stream.getvalue()
    clock.now += 100.0
    assert bar.estimate()[0] == 15  # a slow batch never shows as finished before it is
    bar.finish(8)  # the second batch took 106 s: the pace is now (12 + 106) / 16 per example
    bar.start_batch(8)
    clock.now += 118.0 / 16 * 3
    assert bar.estimate()[0] == 16 + 3
    bar.finish(8)
    bar.close()
    assert bar.done == 24 and "24/24" in stream.getvalue()
