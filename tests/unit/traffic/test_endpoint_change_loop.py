"""``move_endpoint``: one step of an endpoint change per call, against the simulated endpoint that stays
Updating for a while after each change; and the execution timeout against the longest legitimate run."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from driftloop.adapters.endpoint import ModelSpec, Variant
from driftloop.config import Settings
from driftloop.errors import EndpointChangeError, TransientError
from driftloop.local.adapters import SimulatedEndpoint
from driftloop.local.runtime import Profile
from driftloop.local.template import load_app
from driftloop.pipeline.history import MAX_ENDPOINT_CHANGE_POLLS
from driftloop.pipeline.rollout import EndpointPollInvocation, move_endpoint, poll_endpoint
from driftloop.pipeline.services import Services

REPO = Path(__file__).resolve().parents[3]
UPDATE = 0.3


@pytest.fixture
def services(tmp_path: Path) -> Services:
    settings = Settings.from_env(load_app(REPO / "template.yaml").environment)
    endpoint = SimulatedEndpoint(tmp_path, settings.endpoint_name, s3=None, update_seconds=UPDATE)
    for model in ("old", "new"):
        endpoint.ensure_model(ModelSpec(model, f"s3://b/{model}.tar.gz", "image", "role"))
    return Services(settings=settings, s3=None, sagemaker=None, sns=None, states=None, events=None, ledger=None,
                    trainer=None, endpoint=endpoint)


def settle() -> None:
    time.sleep(UPDATE + 0.05)


def variants(*pairs: tuple[str, str, float]) -> list[Variant]:
    return [Variant(name, model, weight) for name, model, weight in pairs]


def test_a_change_is_requested_once_waited_for_and_then_settled(services: Services) -> None:
    alone = variants(("champion", "old", 1.0))
    first = move_endpoint(services, alone, {})
    assert first["settled"] is False and first["requested"] == first["actions"][0]
    assert services.endpoint.describe().status == "Creating"
    waiting = move_endpoint(services, alone, first)
    assert waiting["settled"] is False and waiting["actions"] == first["actions"], "no second request"
    with pytest.raises(TransientError):
        services.endpoint.deploy("other", variants(("champion", "new", 1.0)))
    settle()
    done = move_endpoint(services, alone, waiting)
    assert done["settled"] is True and "old 100%" in done["serving"]

    split = variants(("champion", "old", 90.0), ("challenger", "new", 10.0))
    ab = move_endpoint(services, split, done)
    assert ab["requested"].startswith("config ") and services.endpoint.describe().status == "Updating"
    assert [v.model_name for v in services.endpoint.describe().variants] == ["old"], "the old config serves"
    settle()
    half = variants(("champion", "old", 50.0), ("challenger", "new", 50.0))
    weights = move_endpoint(services, half, move_endpoint(services, split, ab))
    assert weights["requested"] == "weights champion=50, challenger=50"


def test_rollback_drains_the_challenger_first_then_swaps_configs(services: Services) -> None:
    move_endpoint(services, variants(("champion", "old", 90.0), ("challenger", "new", 10.0)), {})
    settle()
    alone = variants(("champion", "old", 1.0))
    drain = {"champion": 1.0, "challenger": 0.0}
    first = move_endpoint(services, alone, {}, drain=drain)
    assert first["requested"] == "weights champion=1, challenger=0"
    settle()
    second = move_endpoint(services, alone, first, drain=drain)
    assert second["requested"].startswith("config ")
    settle()
    done = move_endpoint(services, alone, second, drain=drain)
    assert done["settled"] and done["actions"] == [first["requested"], second["requested"]]


def test_a_change_that_does_not_take_effect_is_an_error_not_a_loop(services: Services) -> None:
    alone = variants(("champion", "old", 1.0))
    settle()
    move_endpoint(services, alone, {})
    settle()
    asked = move_endpoint(services, variants(("champion", "new", 1.0)), {"settled": True})
    state = services.endpoint._state()
    state["endpoint"].pop("pending")  # SageMaker rolled the update back: InService on the old config
    services.endpoint._commit(state, "update rolled back")
    with pytest.raises(EndpointChangeError, match="did not take effect"):
        move_endpoint(services, variants(("champion", "new", 1.0)), asked)


@pytest.mark.parametrize("profile", [{}, "local"])
def test_the_execution_timeout_covers_the_longest_legitimate_run(profile: dict[str, str] | str) -> None:
    parameters = Profile.load(REPO).parameters if profile == "local" else {}
    app = load_app(REPO / "template.yaml", parameters)
    settings = Settings.from_env(app.environment)
    bake_seconds = int(app.definition["States"]["Bake"]["Seconds"])
    longest = (settings.max_training_seconds + len(settings.traffic_stages) * settings.max_bake_waits * bake_seconds
               + 4 * 3 * 3600 + 3600)
    assert app.definition["TimeoutSeconds"] >= longest


def test_an_endpoint_that_keeps_settling_fails_after_the_polls_one_change_may_take(
        services: Services, tmp_path: Path) -> None:
    slow = SimulatedEndpoint(tmp_path / "slow", services.settings.endpoint_name, s3=None, update_seconds=3600)
    slow.ensure_model(ModelSpec("old", "s3://b/old.tar.gz", "image", "role"))
    services = dataclasses.replace(services, endpoint=slow)
    context = {"Execution": {"Id": "arn:aws:states:us-east-1:1:execution:m:run-1", "Name": "run-1",
                             "StartTime": "2025-08-01T00:05:12Z"},
               "State": {"Name": "PollPromotion", "EnteredTime": "2025-08-01T00:06:00Z"}}
    state = {"promotion": move_endpoint(services, variants(("champion", "old", 1.0)), {})}

    def poll() -> dict:
        return poll_endpoint(EndpointPollInvocation(state=state, context=context, change="promotion"), services)

    for count in range(1, MAX_ENDPOINT_CHANGE_POLLS + 1):
        state["endpoint"] = poll()
        assert state["endpoint"]["settling"] and state["endpoint"]["polls"] == count
    with pytest.raises(EndpointChangeError, match=f"{MAX_ENDPOINT_CHANGE_POLLS} polls after the change"):
        poll()
    state["promotion"] = {**state["promotion"], "started": state["promotion"]["started"] + 1}
    assert poll()["polls"] == 1, "another change counts its own polls"
