"""The per-example bar of a measuring phase, which moves inside a batch too.

Examples are measured in batches (one batched forward serves several examples), so finished examples arrive a
batch at a time. Between arrivals a heartbeat (:meth:`PhaseBar.tick`, once a second from a background thread)
keeps the line alive: the seconds the batch under way has taken, and, once this phase has finished a batch, how
many of the batch's examples this phase's measured pace says are done (never the whole batch before it is). The
ETA is tqdm's, from this run's own throughput. ``clock`` is injectable and ``heartbeat=0`` turns the thread off,
for tests.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm.auto import tqdm


class PhaseBar:
    """A tqdm bar of ``total`` examples with batch-aware interpolation (silent when ``enabled`` is false)."""

    def __init__(
        self,
        total: int,
        desc: str,
        enabled: bool = True,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: float | None = None,
    ) -> None:
        self.clock = clock
        self.total = total
        self.done = 0  # examples finished
        self._measured_time = 0.0  # seconds spent on finished batches
        self._measured = 0  # examples in finished batches
        self._batch_start: float | None = None
        self._batch_size = 0
        self._lock = threading.Lock()
        self.bar: Any = tqdm(
            total=total,
            desc=desc,
            unit="ex",
            disable=not enabled,
            file=stream or sys.stderr,
            dynamic_ncols=True,
        )
        self._stop = threading.Event()
        self._thread = None
        if heartbeat is None:  # a second on a terminal; in a log file a line every 15 s is enough
            heartbeat = 1.0 if getattr(stream or sys.stderr, "isatty", lambda: False)() else 15.0
        if enabled and heartbeat > 0:
            self._thread = threading.Thread(target=self._beat, args=(heartbeat,), daemon=True)
            self._thread.start()

    def start_batch(self, size: int) -> None:
        """A batch of ``size`` examples starts."""
        with self._lock:
            self._batch_start, self._batch_size = self.clock(), size
            self._show()

    def finish(self, n: int = 1) -> None:
        """``n`` examples of the batch under way are finished and stored."""
        with self._lock:
            self.done += n
            if self._batch_start is not None and self.done - self._measured >= self._batch_size:
                self._measured_time += self.clock() - self._batch_start
                self._measured = self.done
                self._batch_start = None
            self._show()

    def estimate(self) -> tuple[int, float | None]:
        """Examples done by this phase's measured pace (finished ones plus the share of the batch under way that
        the pace accounts for, at most all but one of the batch), and the seconds the batch has run."""
        if self._batch_start is None:
            return self.done, None
        running = self.clock() - self._batch_start
        if not self._measured:
            return self.done, running
        pace = self._measured_time / self._measured  # seconds per example, this phase
        in_batch = min(self._batch_size - 1, int(running / pace)) if pace > 0 else 0
        return max(self.done, self._measured + in_batch), running

    def tick(self) -> None:
        """Redraw the line now (the heartbeat calls this; other updates follow tqdm's own refresh interval)."""
        with self._lock:
            self._show(force=True)

    def _show(self, force: bool = False) -> None:
        shown, running = self.estimate()
        postfix = f"batch of {self._batch_size} under way {running:.0f} s" if running is not None else ""
        self.bar.set_postfix_str(postfix, refresh=False)
        if shown > self.bar.n:
            self.bar.update(shown - self.bar.n)  # tqdm redraws at most every mininterval
        if force:
            self.bar.refresh()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            self.tick()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self.bar.n = self.done
            self.bar.set_postfix_str("", refresh=False)
            self.bar.close()

    def __enter__(self) -> PhaseBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
