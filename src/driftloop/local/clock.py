"""Simulated time for the local runtime: waits jump ahead instead of sleeping.

The local runtime reads every time through one :class:`VirtualClock` (moto's timestamps, the pipeline's
``Services.clock``, the local trainer and endpoint, the simulated customers). The clock runs at the pace of
real time, plus the jumps: a Wait state sleeps on it, and when every running execution is sleeping and
nothing works (no Lambda handler, no training job), the clock jumps to the earliest sleeper's end. A bake
of an hour thus takes as long as the steps around it, and the same template parameters (hours, minutes)
run locally at their real values. Listeners (the simulated customers) are told of every stretch of time
the clock passes before anyone wakes up after it, so what happened during a wait is there when it ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

Listener = Callable[[float, float], None]
_REAL_RECHECK_SECONDS = 0.02


class VirtualClock:
    """Epoch seconds that pass with real time and jump over waits.

    Parameters
    ----------
    start : float
        Epoch seconds the clock shows when created.
    running : callable
        How many executions are running now; the clock jumps only when that many are sleeping.

    Example
    -------
    >>> clock = VirtualClock(start=1_000.0)
    >>> clock.sleep(3_600)       # nothing else runs: returns at once, an hour later
    >>> round(clock.now() - 1_000.0)
    3600
    >>> clock.advance_to(500.0)  # never backwards
    >>> round(clock.now() - 1_000.0)
    3600
    """

    def __init__(self, start: float, running: Callable[[], int] = lambda: 0) -> None:
        self._offset = start - time.monotonic()
        self._running = running
        self._condition = threading.Condition()
        self._sleepers: dict[object, float] = {}
        self._working = 0
        self._listeners: list[Listener] = []
        self._passed_until = self.now()

    def now(self) -> float:
        return time.monotonic() + self._offset

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    # -- who is working -------------------------------------------------------------------
    def begin_work(self) -> None:
        """Something runs that takes real time (a handler, a training job): the clock does not jump."""
        with self._condition:
            self._working += 1

    def end_work(self) -> None:
        with self._condition:
            self._working -= 1
            self._condition.notify_all()

    @contextmanager
    def working(self) -> Iterator[None]:
        self.begin_work()
        try:
            yield
        finally:
            self.end_work()

    def add_listener(self, listener: Listener) -> None:
        """``listener(since, until)`` is called for the time passed whenever the clock jumps."""
        with self._condition:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._condition:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- moving on ------------------------------------------------------------------------
    def advance_to(self, when: float) -> None:
        """Jump to epoch seconds ``when`` (nothing happens if the clock is already past it)."""
        with self._condition:
            since, self._passed_until = self._passed_until, max(self._passed_until, when)
            listeners = list(self._listeners)
        if when > since:
            for listener in listeners:
                listener(since, when)
        with self._condition:
            self._offset = max(self._offset, when - time.monotonic())
            self._condition.notify_all()

    def sleep(self, seconds: float, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Return once ``seconds`` of clock time have passed (or ``cancelled()``): by a jump when every
        running execution sleeps and nothing works, else as real time passes."""
        deadline = self.now() + max(seconds, 0.0)
        token = object()
        with self._condition:
            self._sleepers[token] = deadline
        try:
            while self.now() < deadline and not cancelled():
                with self._condition:
                    target = min(self._sleepers.values())
                    idle = self._working == 0 and len(self._sleepers) >= self._running()
                    if not idle:
                        self._condition.wait(min(_REAL_RECHECK_SECONDS, max(deadline - self.now(), 0.0)))
                        continue
                    self._working += 1  # one jump at a time: others wait while listeners run
                try:
                    self.advance_to(target)
                finally:
                    self.end_work()
        finally:
            with self._condition:
                del self._sleepers[token]

    def pause_work(self, seconds: float) -> None:
        """``sleep`` from inside work (a handler waiting between retries of an AWS call): the work stops
        counting while it waits, so the clock may jump over the wait as over any other sleeper."""
        with self._condition:
            inside = self._working > 0
            if inside:
                self._working -= 1
                self._condition.notify_all()
        try:
            self.sleep(seconds)
        finally:
            if inside:
                self.begin_work()


_installed: VirtualClock | None = None


def install(clock: VirtualClock | None) -> None:
    """The clock of the running local runtime (None: real time)."""
    global _installed
    _installed = clock


def now() -> float:
    """Epoch seconds of the local runtime's clock, or real time when no local runtime runs."""
    return _installed.now() if _installed is not None else time.time()


def utcnow() -> datetime:
    return datetime.fromtimestamp(now(), UTC)


def hold() -> Callable[[], None]:
    """Keep the running local runtime's clock from jumping (work that outlives the call that started it,
    like a training job's thread); returns the function that lets go."""
    clock = _installed
    if clock is None:
        return lambda: None
    clock.begin_work()
    return clock.end_work


def pause(seconds: float) -> None:
    """Wait ``seconds`` inside a handler: on the running local runtime's clock, else in real time."""
    clock = _installed
    if clock is None:
        time.sleep(seconds)
    else:
        clock.pause_work(seconds)
