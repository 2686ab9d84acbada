"""The local runtime's simulated clock: waits jump when everyone waits, never while work runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from driftloop.local import clock as local_clock
from driftloop.local.clock import VirtualClock

HOUR = 3600.0


def test_a_lone_sleeper_jumps_to_its_end_and_listeners_see_the_stretch_first() -> None:
    clock = VirtualClock(start=1_000.0)
    passed: list[tuple[float, float]] = []
    clock.add_listener(lambda since, until: passed.append((since, until)))
    started = time.monotonic()
    clock.sleep(24 * HOUR)
    assert time.monotonic() - started < 1.0
    assert clock.now() - 1_000.0 == pytest.approx(24 * HOUR, abs=1.0)
    (since, until), = passed
    assert since == pytest.approx(1_000.0, abs=1.0) and until == pytest.approx(1_000.0 + 24 * HOUR, abs=1.0)


def test_the_clock_never_goes_back_and_listeners_never_see_a_stretch_twice() -> None:
    clock = VirtualClock(start=5_000.0)
    passed: list[tuple[float, float]] = []
    clock.add_listener(lambda since, until: passed.append((since, until)))
    clock.advance_to(9_000.0)
    clock.advance_to(7_000.0)
    assert clock.now() >= 9_000.0
    assert len(passed) == 1
    clock.advance_to(10_000.0)
    assert passed[1][0] == passed[0][1] == 9_000.0


def test_no_jump_while_work_runs_the_sleeper_waits_for_the_work_to_end() -> None:
    clock = VirtualClock(start=0.0)
    clock.begin_work()
    woke = threading.Event()
    sleeper = threading.Thread(target=lambda: (clock.sleep(HOUR), woke.set()))
    sleeper.start()
    assert not woke.wait(0.3), "the clock jumped while work was running"
    assert clock.now() < 10
    clock.end_work()
    assert woke.wait(5)
    sleeper.join()
    assert clock.now() >= HOUR


def test_no_jump_until_every_running_execution_sleeps() -> None:
    running = [2]
    clock = VirtualClock(start=0.0, running=lambda: running[0])
    order: list[str] = []
    first = threading.Thread(target=lambda: (clock.sleep(2 * HOUR), order.append("two hours")))
    first.start()
    time.sleep(0.2)
    assert clock.now() < 10, "one of two executions sleeps: no jump"
    second = threading.Thread(target=lambda: (clock.sleep(HOUR), order.append("one hour")))
    second.start()
    second.join(5)
    running[0] = 1  # the execution that slept an hour goes on and ends
    first.join(5)
    assert order == ["one hour", "two hours"]
    assert clock.now() == pytest.approx(2 * HOUR, abs=1.0)


def test_a_handler_pausing_between_retries_lets_the_clock_jump_and_works_again_after() -> None:
    clock = VirtualClock(start=0.0, running=lambda: 1)
    local_clock.install(clock)
    try:
        with clock.working():  # the handler, as the local runtime invokes it
            started = time.monotonic()
            local_clock.pause(5.0)
            assert time.monotonic() - started < 1.0, "the pause waited in real time"
            assert clock.now() >= 5.0
            woke = threading.Event()
            sleeper = threading.Thread(target=lambda: (clock.sleep(HOUR), woke.set()))
            sleeper.start()
            assert not woke.wait(0.3), "the handler works again after its pause: no jump"
        assert woke.wait(5)
        sleeper.join()
    finally:
        local_clock.install(None)


def test_a_pause_outside_a_local_runtime_is_a_real_sleep() -> None:
    local_clock.install(None)
    started = time.monotonic()
    local_clock.pause(0.2)
    assert time.monotonic() - started >= 0.2


def test_a_cancelled_sleep_returns_without_jumping() -> None:
    clock = VirtualClock(start=0.0, running=lambda: 2)
    clock.sleep(HOUR, cancelled=lambda: True)
    assert clock.now() < 10


def test_without_a_local_runtime_time_is_real_and_holding_is_harmless() -> None:
    local_clock.install(None)
    assert local_clock.now() == pytest.approx(time.time(), abs=1.0)
    local_clock.hold()()


def test_holding_the_installed_clock_is_released_on_the_clock_that_was_held() -> None:
    clock = VirtualClock(start=0.0)
    local_clock.install(clock)
    try:
        release = local_clock.hold()
        local_clock.install(None)
        release()
        clock.sleep(HOUR)  # would never jump if the hold had not been released on this clock
        assert clock.now() >= HOUR
    finally:
        local_clock.install(None)


def test_a_corrupt_saved_clock_or_start_fails_with_one_clear_message(tmp_path: Path) -> None:
    from driftloop.errors import ConfigurationError
    from driftloop.local.runtime import _epoch_seconds
    from driftloop.local.workspace import Workspace

    workspace = Workspace(tmp_path)
    assert workspace.load_clock() is None
    workspace.save_clock(1_750_000_000.5)
    assert workspace.load_clock() == 1_750_000_000.5
    (tmp_path / "clock.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="clock.json is not the local runtime's clock"):
        workspace.load_clock()
    assert _epoch_seconds("2025-01-01") == _epoch_seconds("2025-01-01T00:00:00+00:00")
    with pytest.raises(ConfigurationError, match="clock_start"):
        _epoch_seconds("January")
