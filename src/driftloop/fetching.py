"""Many small reads at once, in order.

S3 answers a GET in tens of milliseconds, so a step or the report reading thousands of Data Capture files
one after another spends most of its time waiting: a week of hourly files of two variants from a few
instances is thousands of GETs, minutes in a row. Reading them a few dozen at a time overlaps the waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

FETCH_WORKERS = 16

Key = TypeVar("Key")
Value = TypeVar("Value")


def fetch_in_order(fetch: Callable[[Key], Value], keys: Iterable[Key],
                   workers: int = FETCH_WORKERS) -> Iterator[tuple[Key, Value]]:
    """``(key, fetch(key))`` for every key, in the order of ``keys``, with up to ``workers`` fetches running
    and at most ``2 * workers`` results waiting to be consumed (memory stays bounded however many keys).
    An exception raised by ``fetch`` is raised when its key's turn comes; fetches not yet started are then
    cancelled, as they are when the consumer stops early.

    Parameters
    ----------
    fetch
        Reads one key; called from worker threads, so it must be thread-safe (boto3 clients are).
    keys
        What to read, consumed lazily.
    workers
        Fetches running at once.

    Example
    -------
    >>> [value for _, value in fetch_in_order(lambda n: n * n, range(6), workers=2)]
    [0, 1, 4, 9, 16, 25]
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    remaining = iter(keys)
    pending: deque[tuple[Key, Future[Value]]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
    try:
        for key in remaining:
            pending.append((key, pool.submit(fetch, key)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            key, future = pending.popleft()
            value = future.result()
            following = next(remaining, _END)
            if following is not _END:
                pending.append((following, pool.submit(fetch, following)))
            yield key, value
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()
