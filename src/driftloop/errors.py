"""The one exceptions module.

The state machine retries a Lambda error by its ``errorType``, which is the exception's class
name: ``TransientError`` is retried with backoff; every other class goes straight to ``Catch``.
Keep ``TransientError`` a leaf class so that name stays stable.
"""

from __future__ import annotations


class DriftloopError(Exception):
    """Base class: a failure the run record can explain."""


class TransientError(DriftloopError):
    """May succeed on retry (throttling, eventual consistency, a resource still updating)."""


class InvalidInputError(DriftloopError):
    """The event, object or data is malformed; retrying cannot help."""


class UnsafeSchemaChangeError(InvalidInputError):
    """A file's column changed type in a way that would lose or corrupt data."""


class NotFoundError(DriftloopError):
    """A referenced object, model or endpoint does not exist."""


class ConfigurationError(DriftloopError):
    """The deployment's parameters are inconsistent."""


class TrainingFailedError(DriftloopError):
    """The training job ended in Failed or Stopped."""


class LockLostError(DriftloopError):
    """The run's lease on its model's lock lapsed and another run took it: it must not change the model."""


class InjectedFault(DriftloopError):
    """Raised on purpose by a local fault-injection profile (never in AWS)."""


class EndpointChangeError(DriftloopError):
    """An endpoint change did not take effect: SageMaker undid it, the endpoint failed, or it never settled."""
