"""SageMaker Data Capture files: where they are, how one is written, and a strict parser.

An endpoint config with Data Capture writes JSON Lines under
``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<name>.jsonl``, one record per captured request
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html)::

    {"captureData": {"endpointInput": {"observedContentType", "mode": "INPUT", "data", "encoding"},
                     "endpointOutput": {"observedContentType", "mode": "OUTPUT", "data", "encoding"}},
     "eventMetadata": {"eventId", "inferenceTime", "inferenceId" (only when the caller set one)},
     "eventVersion": "0"}

``encoding`` is ``JSON`` (``data`` is the payload's text), ``BASE64`` (the payload's bytes, base64) or
``CSV``. driftloop's requests and responses are JSON (:mod:`driftloop.model.inference`), so JSON and
BASE64 records are decoded; anything else is counted as a reason, as is every line that is not a
complete, well-formed record of a known variant. Nothing is dropped without being counted.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

CAPTURE_CONTENT_TYPE = "application/json"
DECODED_ENCODINGS = ("JSON", "BASE64")

# Why a captured line was not used; every skipped line is counted under exactly one of these.
TRUNCATED = "truncated"
MALFORMED = "malformed"
MISSING_FIELD = "missing_field"
UNSUPPORTED_ENCODING = "unsupported_encoding"
UNDECODABLE = "undecodable_payload"
UNKNOWN_VARIANT = "unknown_variant"
BAD_TIME = "bad_inference_time"
UNREADABLE_FILE = "unreadable_file"
_EXAMPLES_PER_REASON = 3


def capture_record(event_id: str, inferred_at: datetime, request: Mapping[str, Any], response: Mapping[str, Any],
                   inference_id: str | None = None) -> str:
    """One captured request as SageMaker writes it for JSON content types (one line, no newline)."""

    def payload(mode: str, document: Mapping[str, Any]) -> dict[str, str]:
        return {"observedContentType": CAPTURE_CONTENT_TYPE, "mode": mode, "data": json.dumps(document),
                "encoding": "JSON"}

    metadata = {"eventId": event_id, "inferenceTime": format_inference_time(inferred_at)}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    return json.dumps({"captureData": {"endpointInput": payload("INPUT", request),
                                       "endpointOutput": payload("OUTPUT", response)},
                       "eventMetadata": metadata, "eventVersion": "0"})


def format_inference_time(moment: datetime) -> str:
    """``2026-03-14T18:36:26.123456Z``: ISO 8601 in UTC (AWS's examples show whole seconds, also accepted)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ServedRecommendation:
    """One recommendation the endpoint served, read from a capture record."""

    variant: str
    event_id: str
    served_at: datetime
    user_id: str
    items: tuple[str, ...]
    recent_items: tuple[str, ...] = ()
    inference_id: str | None = None


@dataclass(frozen=True)
class CaptureFile:
    """What one capture file held: its usable records, its non-blank lines, and the lines it could not
    use per reason, with up to three examples each. :meth:`CaptureReader.add` counts it."""

    rows: tuple[ServedRecommendation, ...]
    lines: int
    skipped: dict[str, int]
    examples: dict[str, tuple[str, ...]]


class _Skip(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass
class CaptureReader:
    """Parses capture files into ``ServedRecommendation`` rows and counts every line it could not use.

    Parameters
    ----------
    known_variants
        Variant names the endpoint is known to have had; records of other variants are counted as
        ``unknown_variant`` (None: every variant is accepted).

    Example
    -------
    >>> from datetime import datetime, UTC
    >>> reader = CaptureReader(known_variants={"champion"})
    >>> line = capture_record("e-1", datetime(2026, 3, 14, 18, tzinfo=UTC), {"user_id": "u1", "k": 2},
    ...                       {"user_id": "u1", "items": ["i1", "i2"], "source": "model"})
    >>> [row.items for row in reader.read(line + "\\n", "champion", "a.jsonl")]
    [('i1', 'i2')]
    >>> _ = reader.read(line + "\\n" + line[:40], "champion", "b.jsonl")
    >>> reader.evidence()["skipped"]
    {'truncated': 1}

    References
    ----------
    Amazon SageMaker Developer Guide, "Capture data from real-time endpoint" and the
    DataCaptureConfig API (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DataCaptureConfig.html).
    """

    known_variants: set[str] | None = None
    files: int = 0
    lines: int = 0
    records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def read(self, content: bytes | str, variant: str, source: str) -> list[ServedRecommendation]:
        """The served recommendations of one file's content (``source`` names it in the evidence), counted."""
        return self.add(self.parse(content, variant, source))

    def parse(self, content: bytes | str, variant: str, source: str) -> CaptureFile:
        """One file's content read, not yet counted: what :meth:`add` counts, now or at a later read."""
        skipped: Counter[str] = Counter()
        examples: dict[str, list[str]] = {}
        if isinstance(content, bytes):
            try:
                content = content.decode("utf-8")
            except UnicodeDecodeError as error:
                _count(skipped, examples, MALFORMED, [f"{source}: not UTF-8 ({error})"],
                       max(1, content.count(b"\n")))
                return CaptureFile((), 0, dict(skipped), _frozen(examples))
        lines = content.split("\n")
        complete = content.endswith("\n")
        if complete:
            lines.pop()
        rows: list[ServedRecommendation] = []
        read = 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            read += 1
            last_unterminated = number == len(lines) and not complete
            try:
                rows.extend(self._parse(line, variant, last_unterminated))
            except _Skip as skip:
                _count(skipped, examples, skip.reason, [f"{source}:{number}: {skip}"])
        return CaptureFile(tuple(rows), read, dict(skipped), _frozen(examples))

    def add(self, parsed: CaptureFile) -> list[ServedRecommendation]:
        """Count one parsed file (as :meth:`read` would have); its rows."""
        self.files += 1
        self.lines += parsed.lines
        self.records += len(parsed.rows)
        for reason, count in parsed.skipped.items():
            _count(self.skipped, self.examples, reason, parsed.examples.get(reason, ()), count)
        return list(parsed.rows)

    def skip_file(self, source: str, why: str) -> None:
        """A listed file that could not be fetched: counted as one ``unreadable_file``."""
        self.files += 1
        _count(self.skipped, self.examples, UNREADABLE_FILE, [f"{source}: {why}"])

    def _parse(self, line: str, variant: str, last_unterminated: bool) -> list[ServedRecommendation]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise _Skip(TRUNCATED if last_unterminated else MALFORMED, f"not JSON: {error}") from None
        if self.known_variants is not None and variant not in self.known_variants:
            raise _Skip(UNKNOWN_VARIANT, f"variant {variant!r} is not one of {sorted(self.known_variants)}")
        capture = _field(record, "captureData", dict)
        metadata = _field(record, "eventMetadata", dict)
        event_id = _field(metadata, "eventId", str)
        served_at = parse_inference_time(_field(metadata, "inferenceTime", str))
        inference_id = metadata.get("inferenceId")
        if inference_id is not None and not isinstance(inference_id, str):
            raise _Skip(MALFORMED, f"eventMetadata.inferenceId is {type(inference_id).__name__}, not a string")
        request = _decode(_field(capture, "endpointInput", dict), "endpointInput")
        response = _decode(_field(capture, "endpointOutput", dict), "endpointOutput")
        pairs = _request_response_pairs(request, response)
        return [ServedRecommendation(variant, event_id if len(pairs) == 1 else f"{event_id}#{index}", served_at,
                                     user, items, recent, inference_id)
                for index, (user, recent, items) in enumerate(pairs)]

    def evidence(self) -> dict[str, Any]:
        """What was read and what was not, per reason, with a few examples each."""
        return {"files": self.files, "lines": self.lines, "records": self.records,
                "skipped": dict(sorted(self.skipped.items())), "skipped_total": sum(self.skipped.values()),
                "examples": {reason: list(lines) for reason, lines in sorted(self.examples.items())}}


def _count(skipped: Counter[str], examples: dict[str, list[str]], reason: str, details: Iterable[str],
           count: int = 1) -> None:
    """``count`` lines skipped for ``reason``; the first examples are kept, up to three per reason."""
    skipped[reason] += count
    kept = examples.setdefault(reason, [])
    kept.extend(detail[:300] for detail in list(details)[:_EXAMPLES_PER_REASON - len(kept)])


def _frozen(examples: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {reason: tuple(lines) for reason, lines in examples.items()}


def parse_inference_time(text: str) -> datetime:
    """``inferenceTime`` as an aware UTC datetime; a time without a zone or not ISO 8601 is refused."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise _Skip(BAD_TIME, f"inferenceTime {text!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise _Skip(BAD_TIME, f"inferenceTime {text!r} has no time zone")
    return moment.astimezone(UTC)


def _field(document: Any, name: str, kind: type) -> Any:
    value = document.get(name) if isinstance(document, dict) else None
    if value is None:
        raise _Skip(MISSING_FIELD, f"no {name}")
    if not isinstance(value, kind):
        raise _Skip(MALFORMED, f"{name} is {type(value).__name__}, not {kind.__name__}")
    return value


def _decode(payload: dict[str, Any], where: str) -> Any:
    encoding = _field(payload, "encoding", str)
    data = _field(payload, "data", str)
    if encoding not in DECODED_ENCODINGS:
        raise _Skip(UNSUPPORTED_ENCODING, f"{where} encoding {encoding!r} (decoded: {', '.join(DECODED_ENCODINGS)})")
    try:
        text = base64.b64decode(data, validate=True).decode("utf-8") if encoding == "BASE64" else data
        return json.loads(text)
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _Skip(UNDECODABLE, f"{where} {encoding} data does not decode to JSON: {error}") from None


_ID_TYPES = frozenset({str, int})


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not {type(item) for item in value} <= _ID_TYPES:
        raise _Skip(MALFORMED, f"{what} is not a list of ids")
    return tuple(map(str, value))


def _request_response_pairs(request: Any, response: Any) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(user, recent items, recommended items) per request of a single or a batch (``instances``) call."""
    if isinstance(request, dict) and "instances" in request:
        instances = request["instances"]
        predictions = response.get("predictions") if isinstance(response, dict) else None
        if not isinstance(instances, list) or not isinstance(predictions, list) or len(instances) != len(predictions):
            raise _Skip(MALFORMED, "a batch request needs as many predictions as instances")
        return [_pair(instance, prediction) for instance, prediction in zip(instances, predictions, strict=True)]
    return [_pair(request, response)]


def _pair(request: Any, response: Any) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    if isinstance(request, str | int) and not isinstance(request, bool):
        request = {"user_id": request}
    if not isinstance(request, dict) or not isinstance(response, dict):
        raise _Skip(MALFORMED, "request and response must be JSON objects")
    user = request.get("user_id")
    if not isinstance(user, str | int) or isinstance(user, bool) or user == "":
        raise _Skip(MISSING_FIELD, "the request has no user_id")
    recent = _strings(request.get("recent_items", []), "recent_items")
    items = _strings(_field(response, "items", list), "items")
    return str(user), recent, items
