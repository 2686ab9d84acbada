from __future__ import annotations

import json

import pyarrow as pa
import pytest
from model_fixtures import table_of

from driftloop.errors import InvalidInputError
from driftloop.model.inference import input_fn, model_fn, output_fn, predict_fn
from driftloop.model.recommender import Recommender

ROWS = [
    ("ann", "kettle", "purchase", "2026-02-01T09:00"),
    ("ann", "teapot", "view", "2026-02-01T09:05"),
    ("ben", "kettle", "purchase", "2026-02-02T09:00"),
    ("ben", "teapot", "purchase", "2026-02-02T09:10"),
    ("ben", "mug", "purchase", "2026-02-02T09:20"),
    ("cat", "mug", "purchase", "2026-02-03T09:00"),
    ("cat", "kettle", "purchase", "2026-02-03T09:30"),
    ("dan", "kettle", "purchase", "2026-02-04T09:00"),
]


@pytest.fixture()
def model_dir(tmp_path) -> str:
    Recommender.fit(table_of(ROWS)).save(tmp_path)
    (tmp_path / "serving.json").write_text(json.dumps({"k": 2}))
    return str(tmp_path)


def serve(model_dir: str, body: object) -> dict:
    model = model_fn(model_dir)
    return json.loads(output_fn(predict_fn(input_fn(json.dumps(body), "application/json"), model), "application/json"))


def test_known_user_gets_model_items_without_what_they_bought(model_dir: str) -> None:
    response = serve(model_dir, {"user_id": "ann", "k": 5})
    assert response["user_id"] == "ann" and response["source"] == "model"
    assert "kettle" not in response["items"]
    assert set(response["items"]) == {"teapot", "mug"}


def test_unknown_user_falls_back_to_popularity(model_dir: str) -> None:
    response = serve(model_dir, {"user_id": "stranger", "k": 1})
    assert response == {"user_id": "stranger", "items": ["kettle"], "source": "popularity"}


def test_batch_keeps_request_order_and_uses_the_model_default_k(model_dir: str) -> None:
    response = serve(model_dir, {"instances": ["stranger", {"user_id": "dan", "k": 1}, {"user_id": "ann"}]})
    predictions = response["predictions"]
    assert [p["user_id"] for p in predictions] == ["stranger", "dan", "ann"]
    assert len(predictions[0]["items"]) == 2 and len(predictions[1]["items"]) == 1
    assert "kettle" not in predictions[1]["items"]


def test_exclusion_can_be_turned_off_per_request(model_dir: str) -> None:
    response = serve(model_dir, {"user_id": "dan", "k": 3, "exclude_seen": False})
    assert "kettle" in response["items"]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"k": 3}),
        json.dumps({"user_id": "ann", "k": 0}),
        json.dumps({"user_id": "ann", "k": "3"}),
        json.dumps({"user_id": 7}),
        json.dumps({"instances": []}),
        json.dumps({"user_id": "ann", "colour": "red"}),
    ],
)
def test_bad_requests_are_rejected(body: str) -> None:
    with pytest.raises(InvalidInputError):
        input_fn(body, "application/json")


def test_only_json_is_spoken(model_dir: str) -> None:
    with pytest.raises(InvalidInputError):
        input_fn("user_id=ann", "text/csv")
    with pytest.raises(InvalidInputError):
        output_fn({"items": []}, "text/csv")
    assert json.loads(output_fn({"items": []}, "application/json; charset=utf-8")) == {"items": []}


def test_model_without_serving_file_defaults_to_ten(tmp_path) -> None:
    table = pa.table(
        {
            "user_id": [f"u{i % 3}" for i in range(30)],
            "item_id": [f"i{i}" for i in range(30)],
            "event_time": list(range(30)),
        }
    )
    Recommender.fit(table).save(tmp_path)
    model = model_fn(str(tmp_path))
    assert model.default_k == 10
    assert len(predict_fn(input_fn(json.dumps({"user_id": "new"})), model)["items"]) == 10


def test_recent_items_are_scored_and_excluded(model_dir: str) -> None:
    response = serve(model_dir, {"user_id": "dan", "k": 3, "recent_items": ["mug"]})
    assert response["source"] == "model"
    assert "mug" not in response["items"] and "kettle" not in response["items"]
    assert response["items"] == ["teapot"]


def test_a_new_user_with_recent_items_is_scored_from_them(model_dir: str) -> None:
    response = serve(model_dir, {"user_id": "newcomer", "k": 2, "recent_items": ["kettle", "never-sold"]})
    assert response["source"] == "recent"
    assert "kettle" not in response["items"]
    only_unknown = serve(model_dir, {"user_id": "newcomer", "k": 2, "recent_items": ["never-sold"]})
    assert only_unknown["source"] == "popularity"


def test_the_same_user_twice_in_a_batch_keeps_each_request_s_recent_items(model_dir: str) -> None:
    response = serve(
        model_dir,
        {"instances": [{"user_id": "dan", "k": 3, "recent_items": ["mug"]}, {"user_id": "dan", "k": 3}]},
    )
    first, second = response["predictions"]
    assert "mug" not in first["items"] and "mug" in second["items"]


@pytest.mark.parametrize(
    ("recent_items", "message"),
    [
        ("i3", "must be a list"),
        ({"i3": 1}, "must be a list"),
        (["i3", ""], "non-empty item id strings"),
        (["i3", 4], "non-empty item id strings"),
        ([None], "non-empty item id strings"),
        (["i"] * 1001, "at most 1000"),
    ],
)
def test_bad_recent_items_are_rejected_with_the_reason(recent_items: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        input_fn(json.dumps({"user_id": "ann", "recent_items": recent_items}), "application/json")
