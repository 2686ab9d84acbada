"""Inference handlers in the SageMaker framework-container conventions; the simulated local endpoint
calls the same four functions.

Request (``application/json``): ``{"user_id": "u1", "k": 5, "recent_items": ["i3", "i9"]}`` or
``{"instances": [{"user_id": "u1", "recent_items": [...]}, "u2", ...]}``. Per request:

- ``user_id`` (required): a non-empty string.
- ``k`` (optional): list length, an integer in [1, 1000]; default the model's ``serving.json`` k (10).
- ``exclude_seen`` (optional, default true): leave out items the user bought.
- ``recent_items`` (optional): the item ids the user interacted with since the model was trained, oldest
  first, at most 1000 non-empty strings (a longer history: send the latest 1000). They join the user's
  history before item-item scoring, so recommendations follow what the customer did without a retrain;
  with ``exclude_seen`` they are left out too. Items the model does not know are ignored.

Anything else (another field, a wrong type, an empty id) is rejected with ``InvalidInputError`` naming it.
Response: for one user ``{"user_id", "items", "source"}`` where ``source`` is ``"model"`` (a user the
model knows), ``"recent"`` (a new user scored from ``recent_items``) or ``"popularity"``; for
``instances``, ``{"predictions": [...]}`` in request order.
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
MAX_RECENT_ITEMS = 1000
REQUEST_FIELDS = ("user_id", "k", "exclude_seen", "recent_items")


@dataclass(frozen=True)
class RecommendationRequest:
    user_id: str
    k: int | None = None  # None: the model's default
    exclude_seen: bool = True
    recent_items: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.user_id, str) or not self.user_id:
            raise InvalidInputError(f"user_id must be a non-empty string, not {self.user_id!r}")
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K):
            raise InvalidInputError(f"k must be an integer in [1, {MAX_K}], not {self.k!r}")
        if not isinstance(self.exclude_seen, bool):
            raise InvalidInputError(f"exclude_seen must be true or false, not {self.exclude_seen!r}")
        object.__setattr__(self, "recent_items", _recent_items(self.recent_items))


def _recent_items(items: Any) -> tuple[str, ...]:
    if not isinstance(items, list | tuple):
        raise InvalidInputError(f"recent_items must be a list of item ids, not {type(items).__name__}")
    if len(items) > MAX_RECENT_ITEMS:
        raise InvalidInputError(
            f"recent_items has {len(items)} entries; send at most {MAX_RECENT_ITEMS} (the latest)"
        )
    for item in items:
        if not isinstance(item, str) or not item:
            raise InvalidInputError(f"recent_items must hold non-empty item id strings, not {item!r}")
    return tuple(items)


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
    unknown = set(instance) - set(REQUEST_FIELDS)
    if unknown:
        raise InvalidInputError(f"unknown request field(s) {sorted(unknown)}; known: {list(REQUEST_FIELDS)}")
    return RecommendationRequest(
        user_id=instance["user_id"],
        k=instance.get("k"),
        exclude_seen=instance.get("exclude_seen", True),
        recent_items=instance.get("recent_items", []),
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


def _batches(requests: tuple[RecommendationRequest, ...], default_k: int) -> list[tuple[int, bool, list[int]]]:
    """Request positions grouped by (k, exclude_seen), a user at most once per group (its recent items
    are keyed by user)."""
    batches: list[tuple[int, bool, list[int]]] = []
    users_in: list[set[str]] = []
    for position, request in enumerate(requests):
        k = request.k or default_k
        for (batch_k, exclude_seen, positions), users in zip(batches, users_in, strict=True):
            if (batch_k, exclude_seen) == (k, request.exclude_seen) and request.user_id not in users:
                positions.append(position)
                users.add(request.user_id)
                break
        else:
            batches.append((k, request.exclude_seen, [position]))
            users_in.append({request.user_id})
    return batches


def _source(recommender: Recommender, request: RecommendationRequest) -> str:
    if recommender.knows(request.user_id):
        return "model"
    return "recent" if any(recommender.knows_item(item) for item in request.recent_items) else "popularity"


def predict_fn(input_data: ParsedInput, model: ServedModel) -> dict[str, Any]:
    recommender = model.recommender
    requests = input_data.requests
    items: list[list[str]] = [[] for _ in requests]
    for k, exclude_seen, positions in _batches(requests, model.default_k):
        users = [requests[position].user_id for position in positions]
        recent = {requests[position].user_id: requests[position].recent_items for position in positions}
        recent = {user: recent_items for user, recent_items in recent.items() if recent_items}
        for position, ranked in zip(positions, recommender.recommend(users, k, exclude_seen, recent), strict=True):
            items[position] = ranked
    predictions = [
        {"user_id": request.user_id, "items": ranked, "source": _source(recommender, request)}
        for request, ranked in zip(requests, items, strict=True)
    ]
    return {"predictions": predictions} if input_data.batch else predictions[0]


def output_fn(prediction: dict[str, Any], accept: str = JSON) -> str:
    if accept and accept.split(";")[0].strip() not in (JSON, "*/*"):
        raise InvalidInputError(f"unsupported accept type {accept!r}; accept {JSON}")
    return json.dumps(prediction)
