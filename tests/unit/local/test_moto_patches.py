"""The local runtime's changes to moto: installed for a block, removed after it, and checked against moto."""

from __future__ import annotations

from typing import Any

import pytest
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.botocore_stubber import BotocoreStubber
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

from driftloop.errors import ConfigurationError
from driftloop.local import moto_patches
from driftloop.local.clock import VirtualClock
from driftloop.local.moto_patches import check_moto_internals, patched_moto


class _Dispatcher:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def invoke(self, function_name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        self.calls.append(function_name)
        return b"{}"


def test_the_installed_moto_has_every_internal_the_runtime_patches() -> None:
    check_moto_internals()


def test_a_moto_without_a_patched_internal_fails_with_a_message_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(ErrorEqualsDecl, "_STATE_ALL_ERROR")
    with pytest.raises(ConfigurationError, match=r"ErrorEqualsDecl\._STATE_ALL_ERROR.*") as raised:
        check_moto_internals()
    assert "moto_patches.py" in str(raised.value)


def test_the_patches_hold_inside_the_block_and_are_gone_after_it() -> None:
    originals = (LambdaSimpleBackend.invoke, BotocoreStubber.process_request, ErrorEqualsDecl._eval_body)
    dispatcher = _Dispatcher()
    with patched_moto(dispatcher, VirtualClock(0.0)):  # type: ignore[arg-type]
        assert LambdaSimpleBackend.invoke is not originals[0]
        assert LambdaSimpleBackend.invoke(None, "fn", None, b"{}", {}, {}) == b"{}"
        assert BotocoreStubber.process_request is not originals[1]
        assert ErrorEqualsDecl._eval_body is moto_patches._error_equals_as_in_aws
        assert "__deepcopy__" in vars(StateMachine)
    assert dispatcher.calls == ["fn"]
    assert (LambdaSimpleBackend.invoke, BotocoreStubber.process_request, ErrorEqualsDecl._eval_body) == originals
    assert "__deepcopy__" not in vars(StateMachine)


def test_the_patches_are_removed_when_the_block_fails() -> None:
    original = LambdaSimpleBackend.invoke
    with pytest.raises(RuntimeError), patched_moto(_Dispatcher(), VirtualClock(0.0)):  # type: ignore[arg-type]
        raise RuntimeError("boom")
    assert LambdaSimpleBackend.invoke is original


def test_moto_reads_the_virtual_clock_inside_the_block_and_real_time_after_it() -> None:
    import datetime

    import moto.s3.models
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

    clock = VirtualClock(start=datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC).timestamp())
    with patched_moto(_Dispatcher(), clock):  # type: ignore[arg-type]
        assert moto.s3.models.utcnow().date() == datetime.date(2025, 3, 1)
        assert EventManager._get_current_timestamp().date() == datetime.date(2025, 3, 1)
    assert moto.s3.models.utcnow().year > 2025
    assert EventManager._get_current_timestamp().year > 2025


def test_a_lambda_task_reuses_one_client_per_region_inside_the_block() -> None:
    from moto import mock_aws
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    original = lambda_eval_utils.boto_client_for
    with mock_aws(), patched_moto(_Dispatcher(), VirtualClock(0.0)):  # type: ignore[arg-type]
        first = lambda_eval_utils.boto_client_for(region="us-east-1", service="lambda", state_credentials=None)
        assert lambda_eval_utils.boto_client_for("us-east-1", "lambda") is first
        assert lambda_eval_utils.boto_client_for("eu-west-1", "lambda") is not first
    assert lambda_eval_utils.boto_client_for is original


def test_s3_answers_inside_the_block_without_reimporting_its_url_table() -> None:
    import boto3
    import moto.s3.urls
    from moto import mock_aws
    from moto.s3.models import S3Backend

    original = vars(S3Backend)["_url_module"]
    with mock_aws(), patched_moto(_Dispatcher(), VirtualClock(0.0)):  # type: ignore[arg-type]
        urls = vars(S3Backend)["_url_module"].fget(None)
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="urls-test")
        s3.put_object(Bucket="urls-test", Key="k", Body=b"v")
        assert s3.get_object(Bucket="urls-test", Key="k")["Body"].read() == b"v"
        assert vars(S3Backend)["_url_module"].fget(None) is urls is moto.s3.urls
    assert vars(S3Backend)["_url_module"] is original


def test_a_valid_definition_is_validated_once_and_an_invalid_one_is_refused_every_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    monkeypatch.setattr(moto_patches, "_VALID_DEFINITIONS", set())
    checked = []

    def validate(definition: str) -> None:
        checked.append(definition)
        if definition == "invalid":
            raise ValueError("InvalidDefinition")

    validate_once = moto_patches._validated_once(validate).__func__
    for _ in range(3):
        validate_once("valid")
    for _ in range(2):
        with pytest.raises(ValueError):
            validate_once("invalid")
    assert checked == ["valid", "invalid", "invalid"]
    original = vars(StepFunctionsParserBackend)["_validate_definition"]
    with patched_moto(_Dispatcher(), VirtualClock(0.0)):  # type: ignore[arg-type]
        assert vars(StepFunctionsParserBackend)["_validate_definition"] is not original
    assert vars(StepFunctionsParserBackend)["_validate_definition"] is original


def test_a_definition_is_parsed_once_and_gets_fresh_components_inside_the_block() -> None:
    import json

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    original = vars(AmazonStateLanguageParser)["parse"]
    with patched_moto(_Dispatcher(), VirtualClock(0.0)):  # type: ignore[arg-type]
        first_program, first_tree = AmazonStateLanguageParser.parse(definition)
        second_program, second_tree = AmazonStateLanguageParser.parse(definition)
        assert second_tree is first_tree, "the parse tree is kept"
        assert second_program is not first_program and type(second_program) is type(first_program)
        for _ in range(2):
            with pytest.raises(ASLParserException):
                AmazonStateLanguageParser.parse('{"StartAt": 1}')
    assert vars(AmazonStateLanguageParser)["parse"] is original
    with patched_moto(_Dispatcher(), VirtualClock(0.0)):  # type: ignore[arg-type]
        assert AmazonStateLanguageParser.parse(definition)[1] is first_tree, "and kept across runtimes"


def test_the_execution_history_leaves_out_inputs_and_outputs_only_when_asked_to() -> None:
    import json
    import time

    import boto3
    from moto import mock_aws

    definition = json.dumps({"StartAt": "Carry", "States": {"Carry": {"Type": "Pass", "End": True}}})
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), \
            patched_moto(_Dispatcher(), VirtualClock(0.0)):  # type: ignore[arg-type]
        states = boto3.client("stepfunctions", region_name="us-east-1")
        machine = states.create_state_machine(name="m", definition=definition,
                                              roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
        execution = states.start_execution(stateMachineArn=machine, input='{"state": "large"}')["executionArn"]
        while states.describe_execution(executionArn=execution)["status"] == "RUNNING":
            time.sleep(0.01)

        def data_fields(**request: Any) -> set[str]:
            events = states.get_execution_history(executionArn=execution, **request)["events"]
            return {name for event in events for key, details in event.items() if key.endswith("EventDetails")
                    for name in details if name in ("input", "output")}

        assert data_fields() == {"input", "output"}
        assert data_fields(includeExecutionData=False) == set()
        assert data_fields(includeExecutionData=True) == {"input", "output"}, "the stored events keep their data"
