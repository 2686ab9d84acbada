"""The worst-case execution history of a run, counted from the state machine's definition."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from driftloop.config import Settings
from driftloop.errors import ConfigurationError
from driftloop.local.runtime import Profile
from driftloop.local.template import load_app
from driftloop.pipeline.history import (
    HISTORY_LIMIT,
    MAX_ENDPOINT_CHANGE_POLLS,
    MAX_ENDPOINT_CHANGE_SECONDS,
    SAFE_SHARE,
    check_history,
    wait_visits,
)

PROJECT = Path(__file__).resolve().parents[2]
RETRY = [{"ErrorEquals": ["TransientError"], "MaxAttempts": 4}, {"ErrorEquals": ["Lambda.Unknown"]}]


def task(following: str, **extra: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "arn", "Next": following, **extra}


def settled(variable: str, done: str, otherwise: str) -> dict[str, Any]:
    return {"Type": "Choice", "Default": otherwise,
            "Choices": [{"Variable": variable, "BooleanEquals": True, "Next": done}]}


# Admit, one bake stage, a promotion that polls the endpoint, and a failure path.
TOY = {"StartAt": "Admit", "States": {
    "Admit": task("Bake", Retry=RETRY, Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Restore"}]),
    "Bake": {"Type": "Wait", "Seconds": 10, "Next": "AnalyseAB"},
    "AnalyseAB": task("ABDecision"),
    "ABDecision": settled("$.win", "Promote", "Bake"),
    "Promote": task("PromoteSettled"),
    "PromoteSettled": settled("$.settled", "Done", "WaitForPromotion"),
    "WaitForPromotion": {"Type": "Wait", "Seconds": 600, "Next": "PollPromotion"},
    "PollPromotion": task("PromotionSettling", Parameters={"change": "promotion"}),
    "PromotionSettling": settled("$.settling", "WaitForPromotion", "Promote"),
    "Done": {"Type": "Succeed"},
    "Restore": task("Failed"),
    "Failed": {"Type": "Fail"},
}}


def test_a_toy_definition_counts_every_event_of_its_worst_run() -> None:
    promotion_polls = min(math.ceil(MAX_ENDPOINT_CHANGE_SECONDS / 600), MAX_ENDPOINT_CHANGE_POLLS) + 1
    expected = (
        2  # ExecutionStarted, ExecutionSucceeded
        + 5  # Admit, up to the Bake Wait
        + 2 * 4 * (2 + 5 + 2)  # 2 stages x 4 bakes: Bake, AnalyseAB, ABDecision
        + 2 * (5 + 2 + 5 + 2 + 2)  # each stage leaves through ABDecision, Promote, PromoteSettled, Done
        + promotion_polls * (2 + 5 + 2 + 5 + 2)  # WaitForPromotion, PollPromotion, Settling, Promote, Settled
        + (5 + 2 + 5 + 2 + 2)  # it ends: PollPromotion, PromotionSettling, Promote, PromoteSettled, Done
        + (5 + 1)  # the Catch once: Restore, Failed
        + 3 * (4 + 3)  # Admit's retries: Scheduled, Started, Failed each
    )
    assert check_history(json.dumps(TOY), 3600, 2, 4) == expected


def test_a_wait_with_no_known_bound_or_a_loop_without_a_wait_is_refused() -> None:
    unknown = json.loads(json.dumps(TOY))
    unknown["States"]["WaitForPromotion"]["Next"] = "Promote"
    with pytest.raises(ConfigurationError, match="the Wait WaitForPromotion loops with no known bound"):
        check_history(json.dumps(unknown), 3600, 2, 4)
    busy = json.loads(json.dumps(TOY))
    busy["States"]["PromotionSettling"]["Choices"][0]["Next"] = "PollPromotion"
    busy["States"]["PromoteSettled"]["Default"] = "PollPromotion"
    with pytest.raises(ConfigurationError, match="loops without a Wait"):
        check_history(json.dumps(busy), 3600, 2, 4)


def deployed(**parameters: str) -> tuple[str, Settings]:
    """The state machine definition and Admit's settings as the template deploys them."""
    app = load_app(PROJECT / "template.yaml", parameters)
    return json.dumps(app.definition), Settings.from_env(app.functions["AdmitFunction"].environment)


def history_of(definition: str, settings: Settings) -> int:
    return check_history(definition, settings.max_training_seconds, len(settings.traffic_stages),
                         settings.max_bake_waits)


def test_the_real_definition_polling_every_two_minutes_fits() -> None:
    definition, settings = deployed(PollSeconds="120")
    events = history_of(definition, settings)
    assert 10_000 < events <= SAFE_SHARE * HISTORY_LIMIT
    visits = wait_visits(json.loads(definition)["States"], settings.max_training_seconds, 3, 24)
    assert visits["WaitForTraining"] == (1, 31) and visits["Bake"] == (3, 72)
    assert visits["WaitForWeights"] == (3, 3 * 91) and visits["WaitForRestore"] == (1, 91)


def test_the_real_definition_with_default_parameters_fits() -> None:
    definition, settings = deployed()
    assert history_of(definition, settings) <= SAFE_SHARE * HISTORY_LIMIT


def test_polling_every_second_for_an_hour_of_training_is_refused_with_the_parameters_to_change() -> None:
    definition, settings = deployed(PollSeconds="1")
    with pytest.raises(ConfigurationError) as refused:
        history_of(definition, settings)
    message = str(refused.value)
    assert "more than 90% of Step Functions' 25,000-event limit" in message
    assert "raise PollSeconds" in message and "MaxTrainingSeconds" in message and "MaxBakeWaits" in message
    assert "WaitForTraining 3601 x 9" in message and "WaitForWeights 543 x 16" in message


def test_more_bakes_per_stage_cost_their_events() -> None:
    definition, settings = deployed(PollSeconds="120")
    fewer = check_history(definition, settings.max_training_seconds, 3, 24)
    assert check_history(definition, settings.max_training_seconds, 3, 25) - fewer == 3 * (2 + 5 + 2 + 5 + 2)


def test_the_local_profile_fits() -> None:
    definition, settings = deployed(**Profile.load(PROJECT).parameters)
    assert history_of(definition, settings) <= SAFE_SHARE * HISTORY_LIMIT
