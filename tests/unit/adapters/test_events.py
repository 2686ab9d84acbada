"""PutEvents that delivers every entry or says it did not: throttling and refused entries are retried."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from driftloop.adapters.events import ATTEMPTS, put_events
from driftloop.errors import DriftloopError, TransientError

ENTRIES = [{"Source": "driftloop", "DetailType": "Retrain Requested", "Detail": "{}"},
           {"Source": "driftloop", "DetailType": "Retrain Requested", "Detail": '{"n": 2}'}]


@pytest.fixture
def events() -> Any:
    return boto3.client("events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_throttling_and_refused_entries_are_retried_and_only_the_refused_entries_resent(events: Any) -> None:
    delays: list[float] = []
    with Stubber(events) as stubber:
        stubber.add_client_error("put_events", service_error_code="ThrottlingException")
        stubber.add_response("put_events", {"FailedEntryCount": 1, "Entries": [
            {"EventId": "1"}, {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]},
            {"Entries": ENTRIES})
        stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "2"}]},
                             {"Entries": ENTRIES[1:]})
        put_events(events, ENTRIES, sleep=delays.append)
        stubber.assert_no_pending_responses()
    assert len(delays) == 2 and all(delay >= 0 for delay in delays)


def test_entries_still_refused_after_every_attempt_raise_a_transient_error(events: Any) -> None:
    with Stubber(events) as stubber:
        for _ in range(ATTEMPTS):
            stubber.add_response("put_events", {"FailedEntryCount": 1, "Entries": [
                {"ErrorCode": "InternalFailure", "ErrorMessage": "down"}]})
        with pytest.raises(TransientError, match=f"refused 1 of 1 entries after {ATTEMPTS} attempts"):
            put_events(events, ENTRIES[:1], sleep=lambda _: None)


def test_a_permanent_error_is_not_retried(events: Any) -> None:
    with Stubber(events) as stubber:
        stubber.add_client_error("put_events", service_error_code="AccessDeniedException", service_message="no")
        with pytest.raises(DriftloopError, match="AccessDeniedException") as raised:
            put_events(events, ENTRIES[:1], sleep=lambda _: None)
    assert not isinstance(raised.value, TransientError)
