"""The local runtime: the stack on moto in this process (:mod:`driftloop.local.runtime`)."""
