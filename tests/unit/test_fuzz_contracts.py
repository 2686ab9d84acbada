"""Fuzzed contracts between the state machine and the steps: what a step accepts, what the run record
says about any history, and how AWS errors (SageMaker throttling above all) map onto retryable or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from driftloop.adapters.aws_errors import raise_for_client_error
from driftloop.adapters.training import SageMakerTrainer
from driftloop.errors import DriftloopError, TransientError
from driftloop.pipeline.finalize import OUTCOMES, build_record, steps_from_history
from driftloop.pipeline.invocation import StepInvocation

CONTEXT = {"Execution": {"Id": "arn:aws:states:eu-west-1:1:execution:m:e-1", "Name": "e-1",
                         "StartTime": "2025-08-01T00:05:12Z", "Input": {"source": "aws.s3"}},
           "State": {"Name": "Finalize", "EnteredTime": "2025-08-01T00:06:00Z", "RetryCount": 0}}
THROTTLING = ["ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
              "ProvisionedThroughputExceededException", "ServiceUnavailable", "InternalFailure", "SlowDown"]
NOT_RETRYABLE = ["ValidationException", "AccessDeniedException", "ResourceLimitExceeded", "UnrecognizedClientException"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=15,
)


# -- what every step receives ---------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(payload=st.dictionaries(st.sampled_from(["state", "context", "other"]), json_values, max_size=3))
def test_a_step_input_is_a_valid_invocation_or_a_validation_error(payload: dict[str, Any]) -> None:
    try:
        invocation = StepInvocation.model_validate(payload)
    except ValidationError:
        return
    assert isinstance(invocation.state, dict)
    assert 1 <= len(invocation.context.execution.name) <= 80
    assert invocation.result("anything") == {} or isinstance(invocation.result("anything"), dict)


@settings(max_examples=100, deadline=None)
@given(name=st.text(max_size=100), retries=st.integers(min_value=-3, max_value=10))
def test_the_context_object_enforces_execution_name_and_retry_count_limits(name: str, retries: int) -> None:
    context = {**CONTEXT, "Execution": {**CONTEXT["Execution"], "Name": name},
               "State": {**CONTEXT["State"], "RetryCount": retries}}
    valid = 1 <= len(name) <= 80 and retries >= 0
    try:
        StepInvocation.model_validate({"state": {}, "context": context})
    except ValidationError:
        assert not valid
        return
    assert valid


# -- what the run record says about any history -----------------------------------------------------
STATES = ["Admit", "ComputeDrift", "MergeDatasets", "StartTraining", "Promote"]
attempt_outcomes = st.lists(st.sampled_from(["ok", "LambdaFunctionFailed", "LambdaFunctionTimedOut"]),
                            min_size=1, max_size=5)


def history_of(visits: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    clock = datetime(2025, 8, 1, tzinfo=UTC)
    events: list[dict[str, Any]] = []

    def add(kind: str, **details: Any) -> None:
        nonlocal clock
        clock += timedelta(seconds=1)
        events.append({"type": kind, "timestamp": clock, **details})

    for state, attempts in visits:
        add("TaskStateEntered", stateEnteredEventDetails={"name": state})
        for outcome in attempts:
            add("LambdaFunctionScheduled")
            if outcome == "ok":
                add("LambdaFunctionSucceeded")
                break
            add(outcome, **{f"{outcome[0].lower()}{outcome[1:]}EventDetails": {"error": "E", "cause": "c"}})
        if attempts[-1] == "ok" or "ok" in attempts:
            add("TaskStateExited", stateExitedEventDetails={"name": state})
    return events


@settings(max_examples=200, deadline=None)
@given(visits=st.lists(st.tuples(st.sampled_from(STATES), attempt_outcomes), min_size=1, max_size=6))
def test_steps_count_every_attempt_and_fail_only_when_the_last_attempt_failed(
        visits: list[tuple[str, list[str]]]) -> None:
    steps = steps_from_history(history_of(visits))
    assert [step["name"] for step in steps] == [state for state, _ in visits]
    for step, (_, attempts) in zip(steps, visits, strict=True):
        tried = attempts[: attempts.index("ok") + 1] if "ok" in attempts else attempts
        assert step["attempts"] == len(tried)
        assert len(step["errors"]) == sum(outcome != "ok" for outcome in tried)
        assert step["status"] == ("succeeded" if tried[-1] == "ok" else "failed")


@settings(max_examples=200, deadline=None)
@given(admitted=st.booleans(), outcome=st.sampled_from([None, *OUTCOMES]), error=st.one_of(
    st.none(), st.fixed_dictionaries({"Error": st.text(max_size=30), "Cause": st.text(max_size=200)})))
def test_the_run_record_names_its_outcome_and_a_failure_its_cause(admitted: bool, outcome: str | None,
                                                                  error: dict[str, str] | None) -> None:
    state: dict[str, Any] = {}
    if admitted:
        state["admission"] = {"admitted": True, "run": {"run_id": "r-1", "trigger": {"type": "upload"},
                                                        "started_at": "2025-08-01T00:05:12Z", "execution": "e"}}
    if outcome:
        state["outcome"] = outcome
    if error is not None:
        state["error"] = error
    invocation = StepInvocation.model_validate({"state": state, "context": CONTEXT})
    steps = steps_from_history(history_of([("Admit", ["ok"]), ("MergeDatasets", ["LambdaFunctionFailed"])]))
    record = build_record(invocation, steps, 1_754_000_000.0)
    assert record["run_id"] == ("r-1" if admitted else "unadmitted-e-1")
    if error is not None or outcome == "failed":
        assert record["outcome"] == "failed"
        assert record["error"]["error"] == (error or {}).get("Error", "Unknown")
        assert record["error"]["step"] == "MergeDatasets", "the step that failed last"
    else:
        assert record["outcome"] == outcome and "error" not in record


# -- AWS errors: what is retried ------------------------------------------------------------------
def client_error(code: str, operation: str = "DescribeTrainingJob", message: str = "Rate exceeded") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize("code", THROTTLING)
def test_throttling_and_unavailability_are_transient(code: str) -> None:
    with pytest.raises(TransientError, match=code):
        raise_for_client_error(client_error(code), "DescribeTrainingJob j")


@pytest.mark.parametrize("code", NOT_RETRYABLE)
def test_errors_retrying_cannot_fix_are_not_transient(code: str) -> None:
    with pytest.raises(DriftloopError) as raised:
        raise_for_client_error(client_error(code, message="bad request"), "CreateTrainingJob j")
    assert not isinstance(raised.value, TransientError)


@settings(max_examples=200, deadline=None)
@given(code=st.text(max_size=40), message=st.text(max_size=80))
def test_every_client_error_becomes_a_driftloop_error_that_keeps_its_code(code: str, message: str) -> None:
    with pytest.raises(DriftloopError) as raised:
        raise_for_client_error(client_error(code, message=message), "op")
    assert isinstance(raised.value, TransientError) == (code in THROTTLING or code in {
        "InternalServerError", "RequestTimeout"} or "in-progress" in message.lower())


def test_sagemaker_throttling_reaches_the_state_machine_as_a_transient_error() -> None:
    client = boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    trainer = SageMakerTrainer(client)
    with Stubber(client) as stubber:
        stubber.add_client_error("describe_training_job", service_error_code="ThrottlingException",
                                 service_message="Rate exceeded", http_status_code=400)
        stubber.add_client_error("create_training_job", service_error_code="ThrottlingException",
                                 service_message="Rate exceeded", http_status_code=400)
        with pytest.raises(TransientError, match="DescribeTrainingJob j-1: ThrottlingException"):
            trainer.describe("j-1")
        with pytest.raises(TransientError, match="CreateTrainingJob j-2: ThrottlingException"):
            trainer.start(_training_request("j-2"))


def _training_request(name: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name, "RoleArn": "arn:aws:iam::123456789012:role/sagemaker-training",
        "AlgorithmSpecification": {"TrainingImage": "1.dkr.ecr.eu-west-1.amazonaws.com/i:1",
                                   "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/models/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
