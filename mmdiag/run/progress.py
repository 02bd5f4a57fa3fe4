"""Progress of a whole audit: one line per phase on stderr (loading, each probe's measuring and aggregation,
the reports), with the time it took and an overall ETA; measuring also shows a per-example bar.

The ETA is this run's measured pace: the phase under way at its own per-example pace, the phases to come in
proportion to their share of the default audit measured on the reference model (``bench/audit_speed.py``: load
2.5 s; per 48 scenes attention 1.6 s, spatial 1.2 s + 4.5 s aggregation, hallucination 4.5 s; reports 1.3 s),
scaled by the scene count and by how much slower or faster this run has been so far. Nothing is promised before
anything is measured.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

REFERENCE_SCENES = 48
MEASURE_SECONDS = {"attention": 1.6, "spatial": 1.2, "hallucination": 4.5}  # per 48 scenes, reference model
AGGREGATE_SECONDS = {"attention": 0.1, "spatial": 4.5, "hallucination": 0.4}
LOAD_SECONDS, REPORT_SECONDS, OTHER_PROBE_SECONDS = 2.5, 1.3, 2.0


def audit_phases(probes: list[str], n_scenes: int) -> list[tuple[str, float]]:
    """The phases of an audit of ``probes`` on ``n_scenes`` scenes, with their expected weights in seconds."""
    scale = n_scenes / REFERENCE_SCENES
    phases = [("loading the model", LOAD_SECONDS)]
    for probe in probes:
        phases.append((f"{probe}: measuring", MEASURE_SECONDS.get(probe, OTHER_PROBE_SECONDS) * scale))
        phases.append((f"{probe}: aggregating", AGGREGATE_SECONDS.get(probe, OTHER_PROBE_SECONDS / 4) * scale))
    phases.append(("writing the reports", REPORT_SECONDS))
    return phases


class AuditProgress:
    """Phase lines with elapsed time and an overall ETA (silent when ``enabled`` is false).

    The ETA comes from this run's measured throughput only: none until some work is done; within a phase that
    reports per-example progress (:meth:`advance`), the rest of it at that phase's own measured pace; phases not yet
    started at the pace of everything measured so far, in proportion to their expected weights. ``clock`` is
    injectable for tests.
    """

    def __init__(
        self,
        phases: list[tuple[str, float]],
        enabled: bool = True,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.phases = phases
        self.enabled = enabled
        self.stream = stream
        self.clock = clock
        self._weights = dict(phases)
        self._done: set[str] = set()
        self._started = clock()
        self._spent_weight = 0.0
        self._current: str | None = None
        self._current_start = 0.0
        self._fraction = 0.0  # of the current phase, from advance()

    def eta(self) -> float | None:
        """Seconds left, from what this run has measured; None before anything is measured."""
        now = self.clock()
        current = self._weights.get(self._current, 0.0) if self._current else 0.0
        measured = self._spent_weight + current * self._fraction
        if measured <= 0:
            return None
        pace = (now - self._started) / measured  # seconds per unit of expected weight, this run
        waiting = sum(w for name, w in self.phases if name not in self._done and name != self._current)
        if self._current and self._fraction > 0:
            rest_of_current = (now - self._current_start) / self._fraction * (1 - self._fraction)
        else:
            rest_of_current = pace * current
        return pace * waiting + rest_of_current

    def advance(self, done: int, total: int) -> None:
        """Per-example progress of the running phase (``done`` of ``total``)."""
        if total > 0:
            self._fraction = min(1.0, done / total)

    def skip(self, name: str) -> None:
        """A phase that will not run (a probe that does not apply to the model): out of the ETA."""
        self._done.add(name)

    def _say(self, text: str) -> None:
        if self.enabled:
            print(f"mmdiag: {text}", file=self.stream or sys.stderr, flush=True)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Announce phase ``name`` (one of :attr:`phases`, or an extra one with no weight), time it, and after it
        print the time taken, the elapsed total and the ETA of the rest."""
        index = next((k for k, (n, _) in enumerate(self.phases) if n == name), None)
        position = f"[{index + 1}/{len(self.phases)}] " if index is not None else ""
        eta = self.eta()
        self._say(f"{position}{name}..." + (f" (about {_duration(eta)} left in all)" if eta else ""))
        self._current, self._current_start, self._fraction = name, self.clock(), 0.0
        try:
            yield
        finally:
            self._current = None
        took = self.clock() - self._current_start
        self._done.add(name)
        self._spent_weight += self._weights.get(name, 0.0)
        left = self.eta()
        tail = f"; about {_duration(left)} left" if left else ""
        self._say(
            f"{position}{name}: done in {_duration(took)} (elapsed {_duration(self.clock() - self._started)}{tail})"
        )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
