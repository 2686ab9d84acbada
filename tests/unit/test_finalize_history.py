"""Finalize reads the execution's history page by page, without the events' inputs and outputs (the run's
state rides on every event; the record needs only states, attempts, times and errors)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from driftloop.pipeline.finalize import execution_history


class _States:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages, self.requests = pages, []

    def get_execution_history(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return self.pages[len(self.requests) - 1]


def test_the_history_is_read_without_execution_data_across_every_page() -> None:
    states = _States([{"events": [{"id": 1}], "nextToken": "t1"}, {"events": [{"id": 2}]}])
    services: Any = SimpleNamespace(states=states)
    assert execution_history(services, "arn:exec") == [{"id": 1}, {"id": 2}]
    assert [request.get("nextToken") for request in states.requests] == [None, "t1"]
    assert all(request["includeExecutionData"] is False and request["executionArn"] == "arn:exec"
               for request in states.requests)
