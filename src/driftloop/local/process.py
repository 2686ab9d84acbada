"""What the local runtime changes in the process it runs in, for as long as it runs.

The local runtime is one process: the steps' handlers, moto, the simulated customers and the report share it,
and the training jobs run beside it. Three defaults of CPython, OpenBLAS and botocore, right for a program
of its own, cost that process time:

- **The collector's young generation.** moto's state and the calls in flight keep many objects alive past a
  young collection; with CPython's default of 700 they were promoted, and set off a full collection of the
  whole heap every few seconds (4.5 s of the demo's 70). The runtime raises it to 10,000; the other
  generations keep their defaults.
- **BLAS's threads.** OpenBLAS starts a thread per core for all but small products,
  and its threads spin for a while after each one. The recommender scores a chunk of users with such a
  product (:meth:`driftloop.model.recommender.Recommender._scores`), hundreds of times in the demo's year;
  with a thread per core, those spinning threads took a core from the handlers and the training jobs (the
  demo's CPU time rose by 6-13 s). The runtime keeps BLAS to one thread.
- **botocore's data loader.** Each botocore session gets its own loader, which parses the JSON service
  models again (S3's alone is over a megabyte); boto3 and moto build sessions all the time. Every session
  shares one loader instead, so each model is parsed once per process.

All three come back as they were when the runtime stops.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import botocore.session
from threadpoolctl import threadpool_limits

YOUNG_GENERATION_THRESHOLD = 10_000
BLAS_THREADS = 1
_SHARED_LOADER = lru_cache(maxsize=None)(botocore.session.create_loader)


@contextmanager
def tuned_process() -> Iterator[None]:
    """The collector's young generation at ``YOUNG_GENERATION_THRESHOLD``, the BLAS libraries loaded now at
    ``BLAS_THREADS`` thread(s) and one botocore data loader for every session, until the block ends."""
    saved_thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *saved_thresholds[1:])
    blas = threadpool_limits(limits=BLAS_THREADS, user_api="blas")
    saved_loader, botocore.session.create_loader = botocore.session.create_loader, _SHARED_LOADER
    try:
        yield
    finally:
        botocore.session.create_loader = saved_loader
        blas.restore_original_limits()
        gc.set_threshold(*saved_thresholds)
