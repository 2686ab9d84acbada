"""Map AWS client errors onto the error taxonomy: throttling and in-progress states are transient."""

from __future__ import annotations

from typing import NoReturn

from botocore.exceptions import ClientError

from driftloop.errors import DriftloopError, NotFoundError, TransientError

_TRANSIENT_CODES = {
    "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
    "ProvisionedThroughputExceededException", "ServiceUnavailable", "InternalFailure", "InternalServerError",
    "SlowDown", "RequestTimeout",
}
_NOT_FOUND_CODES = {"ResourceNotFound", "ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "404"}


def raise_for_client_error(error: ClientError, what: str) -> NoReturn:
    code = error.response["Error"].get("Code", "")
    message = error.response["Error"].get("Message", "")
    if code in _TRANSIENT_CODES:
        raise TransientError(f"{what}: {code} {message}".strip()) from error
    if code in _NOT_FOUND_CODES or "could not find" in message.lower():
        raise NotFoundError(f"{what}: {message or code}") from error
    raise DriftloopError(f"{what}: {code} {message}".strip()) from error
