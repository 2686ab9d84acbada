"""Inference handlers in the SageMaker framework-container conventions; the simulated local endpoint
calls the same four functions.

Request (``application/json``): ``{"user_id": "u1", "k": 5}`` or ``{"instances": [{"user_id": "u1"},
"u2", ...]}`` (``k`` and ``exclude_seen`` optional per instance). Response: for one user
``{"user_id", "items", "source"}`` where ``source`` is ``"model"`` or ``"popularity"`` (unknown user);
for ``instances``, ``{"predictions": [...]}`` in request order. Items already bought are excluded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from driftloop.errors import InvalidInputError
from driftloop.model.recommender import Recommender

JSON = "application/json"
SERVING_FILE = "serving.json"
DEFAULT_K = 10
MAX_K = 1000


@dataclass(frozen=True)
class RecommendationRequest:
    user_id: str
    k: int | None = None  # None: the model's default
    exclude_seen: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.user_id, str) or not self.user_id:
            raise InvalidInputError(f"user_id must be a non-empty string, not {self.user_id!r}")
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K):
            raise InvalidInputError(f"k must be an integer in [1, {MAX_K}], not {self.k!r}")
        if not isinstance(self.exclude_seen, bool):
            raise InvalidInputError(f"exclude_seen must be true or false, not {self.exclude_seen!r}")


@dataclass(frozen=True)
class ParsedInput:
    requests: tuple[RecommendationRequest, ...]
    batch: bool


@dataclass(frozen=True)
class ServedModel:
    recommender: Recommender
    default_k: int


def model_fn(model_dir: str) -> ServedModel:
    recommender = Recommender.load(model_dir)
    default_k = DEFAULT_K
    serving_path = os.path.join(model_dir, SERVING_FILE)
    if os.path.exists(serving_path):
        with open(serving_path, encoding="utf-8") as handle:
            default_k = int(json.load(handle).get("k", DEFAULT_K))
    return ServedModel(recommender, default_k)


def _request(instance: Any) -> RecommendationRequest:
    if isinstance(instance, str):
        return RecommendationRequest(instance)
    if not isinstance(instance, dict) or "user_id" not in instance:
        raise InvalidInputError(f"each request needs a user_id: {instance!r}")
    unknown = set(instance) - {"user_id", "k", "exclude_seen"}
    if unknown:
        raise InvalidInputError(f"unknown request field(s) {sorted(unknown)}")
    return RecommendationRequest(
        user_id=instance["user_id"],
        k=instance.get("k"),
        exclude_seen=instance.get("exclude_seen", True),
    )


def input_fn(request_body: str | bytes, request_content_type: str = JSON) -> ParsedInput:
    if request_content_type.split(";")[0].strip() != JSON:
        raise InvalidInputError(f"unsupported content type {request_content_type!r}; send {JSON}")
    try:
        payload = json.loads(request_body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"request body is not JSON: {error}") from None
    if isinstance(payload, dict) and "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidInputError("instances must be a non-empty list")
        return ParsedInput(tuple(_request(instance) for instance in instances), batch=True)
    return ParsedInput((_request(payload),), batch=False)


def predict_fn(input_data: ParsedInput, model: ServedModel) -> dict[str, Any]:
    recommender = model.recommender
    predictions = []
    groups: dict[tuple[int, bool], list[int]] = {}
    for position, request in enumerate(input_data.requests):
        groups.setdefault((request.k or model.default_k, request.exclude_seen), []).append(position)
    items: list[list[str]] = [[] for _ in input_data.requests]
    for (k, exclude_seen), positions in groups.items():
        users = [input_data.requests[position].user_id for position in positions]
        for position, ranked in zip(positions, recommender.recommend(users, k, exclude_seen), strict=True):
            items[position] = ranked
    for request, ranked in zip(input_data.requests, items, strict=True):
        predictions.append(
            {
                "user_id": request.user_id,
                "items": ranked,
                "source": "model" if recommender.knows(request.user_id) else "popularity",
            }
        )
    return {"predictions": predictions} if input_data.batch else predictions[0]


def output_fn(prediction: dict[str, Any], accept: str = JSON) -> str:
    if accept and accept.split(";")[0].strip() not in (JSON, "*/*"):
        raise InvalidInputError(f"unsupported accept type {accept!r}; accept {JSON}")
    return json.dumps(prediction)
