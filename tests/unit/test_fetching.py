"""Reading many objects at once: order kept, memory bounded, errors in their turn, nothing left running."""

from __future__ import annotations

import random
import threading
import time

import pytest

from driftloop.fetching import fetch_in_order


def test_results_come_in_the_order_of_the_keys_whatever_order_the_fetches_finish_in() -> None:
    delays = random.Random(7)

    def fetch(key: int) -> int:
        time.sleep(delays.random() * 0.01)
        return key * 10

    assert list(fetch_in_order(fetch, range(200), workers=8)) == [(key, key * 10) for key in range(200)]


def test_fetches_overlap_but_never_run_further_ahead_than_twice_the_workers() -> None:
    lock = threading.Lock()
    running, most_running, started = 0, 0, []

    def fetch(key: int) -> int:
        nonlocal running, most_running
        with lock:
            running += 1
            most_running = max(most_running, running)
            started.append(key)
        time.sleep(0.005)
        with lock:
            running -= 1
        return key

    for consumed, (key, _) in enumerate(fetch_in_order(fetch, range(100), workers=4), start=1):
        assert max(started) < consumed + 8, "fetched more than 2 x workers ahead of the consumer"
        assert key == consumed - 1
    assert 1 < most_running <= 4


def test_an_error_is_raised_at_its_turn_and_later_fetches_are_not_started() -> None:
    started: list[int] = []

    def fetch(key: int) -> int:
        started.append(key)
        if key == 3:
            raise OSError("gone")
        return key

    seen = []
    with pytest.raises(OSError, match="gone"):
        for key, _ in fetch_in_order(fetch, range(1_000), workers=2):
            seen.append(key)
    assert seen == [0, 1, 2]
    assert len(started) < 20


def test_a_consumer_that_stops_early_leaves_no_fetch_running() -> None:
    reads = iter(fetch_in_order(lambda key: key, range(1_000), workers=3))
    assert next(reads) == (0, 0)
    reads.close()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("fetch")]


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(fetch_in_order(lambda key: key, [1], workers=0))
