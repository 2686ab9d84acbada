"""The local runtime: the stack on moto in this process (:mod:`driftloop.local.runtime`)."""

# While a runtime runs, moto's state and the calls in flight keep many objects alive past a young
# collection; with CPython's default of 700 they were promoted, and set off a full collection of the whole
# heap every few seconds (4.5 s of the demo's 70). The other generations keep their defaults.
YOUNG_GENERATION_THRESHOLD = 10_000
