"""Map AWS client errors onto the error taxonomy: throttling and in-progress states are transient.

SageMaker reports most conditions as ``ValidationException`` with a telling message, so the
helpers below look at the message as well as the code (the real texts are in the adapter tests).
"""

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
# ValidationException texts that mean "not yet": the endpoint is being created or updated.
_TRANSIENT_MESSAGES = ("cannot update in-progress endpoint",)
_NOT_FOUND_MESSAGES = ("could not find", "requested resource not found", "does not exist")
# "Cannot create already existing endpoint ...", "... a training job with this name already exists ..."
_ALREADY_EXISTS_CODES = {"ResourceInUse"}
_ALREADY_EXISTS_MESSAGES = ("already existing", "already exists")


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def is_not_found(error: ClientError) -> bool:
    message = error_message(error).lower()
    return error_code(error) in _NOT_FOUND_CODES or any(text in message for text in _NOT_FOUND_MESSAGES)


def is_already_exists(error: ClientError) -> bool:
    message = error_message(error).lower()
    return error_code(error) in _ALREADY_EXISTS_CODES or any(text in message for text in _ALREADY_EXISTS_MESSAGES)


def is_transient(error: ClientError) -> bool:
    message = error_message(error).lower()
    return error_code(error) in _TRANSIENT_CODES or any(text in message for text in _TRANSIENT_MESSAGES)


def raise_for_client_error(error: ClientError, what: str) -> NoReturn:
    code = error_code(error)
    message = error_message(error)
    if is_transient(error):
        raise TransientError(f"{what}: {code} {message}".strip()) from error
    if code in _NOT_FOUND_CODES or "could not find" in message.lower():
        raise NotFoundError(f"{what}: {message or code}") from error
    raise DriftloopError(f"{what}: {code} {message}".strip()) from error
