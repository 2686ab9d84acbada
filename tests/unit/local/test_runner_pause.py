"""Between two looks at its executions the runner waits ``poll_seconds``, but wakes as soon as moto's memory
shows that every execution has ended or that an event waits for a rule."""

from __future__ import annotations

from typing import Any

import pytest

from driftloop.local import runner as runner_module
from driftloop.local.runner import Runner


class _FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class _World:
    """Reports ``running`` executions until check number ``news_at``, then the news."""

    def __init__(self, news_at: int | None, news: str) -> None:
        self.checks, self.news_at, self.news = 0, news_at, news

    def _arrived(self) -> bool:
        return self.news_at is not None and self.checks >= self.news_at

    def running_executions(self) -> int:
        self.checks += 1
        return 0 if self._arrived() and self.news == "ended" else 1

    def events_waiting(self) -> bool:
        return self._arrived() and self.news == "event"


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> _FakeTime:
    clock = _FakeTime()
    monkeypatch.setattr(runner_module.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(runner_module.time, "sleep", clock.sleep)
    return clock


@pytest.mark.parametrize("news", ["ended", "event"])
def test_the_pause_ends_at_the_first_check_that_sees_news(fake_time: _FakeTime, news: str) -> None:
    world: Any = _World(news_at=3, news=news)
    Runner(world, printer=None, poll_seconds=2.0)._pause()
    assert world.checks == 3
    assert fake_time.now == pytest.approx(3 * runner_module._NEWS_CHECK_SECONDS)


def test_without_news_the_pause_lasts_the_poll_interval(fake_time: _FakeTime) -> None:
    world: Any = _World(news_at=None, news="ended")
    Runner(world, printer=None, poll_seconds=0.5)._pause()
    assert fake_time.now == pytest.approx(0.5)
    assert world.checks == pytest.approx(0.5 / runner_module._NEWS_CHECK_SECONDS, abs=1)
