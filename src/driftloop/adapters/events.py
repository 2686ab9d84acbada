"""EventBridge PutEvents that either delivers every entry or says it did not.

PutEvents can succeed as a call and still refuse entries (``FailedEntryCount``), and it is throttled
under load; both are retried here with capped exponential backoff and full jitter (AWS Architecture
Blog, "Exponential Backoff And Jitter"), resending only the refused entries.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from driftloop.adapters.aws_errors import error_code, is_transient, raise_for_client_error
from driftloop.errors import TransientError

ATTEMPTS = 5
BASE_DELAY_SECONDS = 0.2
MAX_DELAY_SECONDS = 5.0


def put_events(events: Any, entries: list[dict[str, Any]], sleep: Callable[[float], None] = time.sleep) -> None:
    """Send ``entries`` (at most 10, PutEvents' limit); raise TransientError when some are still refused
    after ``ATTEMPTS`` tries, so the caller keeps what it was about to hand on and its Task retries."""
    remaining = list(entries)
    problems: list[str] = []
    for attempt in range(ATTEMPTS):
        if attempt:
            sleep(random.uniform(0, min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** attempt)))
        try:
            response = events.put_events(Entries=remaining)
        except ClientError as error:
            if not is_transient(error):
                raise_for_client_error(error, "EventBridge PutEvents")
            problems = [error_code(error)]
            continue
        if not response.get("FailedEntryCount"):
            return
        results = response.get("Entries", [])
        refused = [index for index, result in enumerate(results) if result.get("ErrorCode")]
        problems = [f"{results[index].get('ErrorCode')}: {results[index].get('ErrorMessage', '')}".strip()
                    for index in refused]
        remaining = [remaining[index] for index in refused] or remaining
    raise TransientError(f"EventBridge PutEvents refused {len(remaining)} of {len(entries)} entries after "
                         f"{ATTEMPTS} attempts ({'; '.join(problems)[:300]})")
