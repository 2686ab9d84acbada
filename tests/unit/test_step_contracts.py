"""The step contracts (pipeline/contracts.py) at run time: what a step may return, how later steps read
it, how the drift step's evidence fits the state, and how old run records are read back."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from driftloop.admission import AdmissionRules
from driftloop.errors import InvalidInputError
from driftloop.pipeline.contracts import (
    STATE_LIST_LIMIT,
    Admission,
    Drift,
    EndpointChange,
    Merge,
    returns,
)
from driftloop.pipeline.evidence import compact_drift
from driftloop.pipeline.invocation import StepInvocation
from driftloop.report.reading import read_record

RUN = {"run_id": "r-1", "model": "recommender", "trigger": {"type": "upload", "key": "incoming/a.csv"},
       "started_at": "2025-08-01T00:05:12Z", "execution": "arn:exec-1"}
MERGE = {"dataset_dir": "datasets/recommender/v=r-1", "manifest_key": "datasets/recommender/v=r-1/_manifest.json",
         "rows_in": 10, "rows_out": 9, "duplicates_dropped": 1, "null_key_rows": 0, "quarantined": [],
         "content_hash": "abc", "previous_version": None, "holdout_from": "2025-07-25T00:00:00"}
CONTEXT = {"Execution": {"Id": "arn:exec-1", "Name": "r-1", "StartTime": "2025-08-01T00:05:12Z"},
           "State": {"Name": "StartTraining", "EnteredTime": "2025-08-01T00:06:00Z"}}


def invocation(**state: Any) -> StepInvocation:
    return StepInvocation.model_validate({"state": state, "context": CONTEXT})


def test_a_step_returning_a_renamed_field_fails_loudly():
    @returns(Merge)
    def step() -> dict[str, Any]:
        return {**{k: v for k, v in MERGE.items() if k != "dataset_dir"}, "dataset_path": "datasets/x"}

    with pytest.raises(ValidationError) as raised:
        step()
    assert {error["loc"][0] for error in raised.value.errors()} == {"dataset_dir", "dataset_path"}


def test_a_step_result_is_plain_json_with_what_the_step_set():
    @returns(Merge)
    def step() -> dict[str, Any]:
        return MERGE

    result = step()
    assert result == MERGE and "scale_out" not in result, "fields the step left out stay out"
    assert json.loads(json.dumps(result)) == result
    assert step.contract is Merge


def test_an_open_contract_keeps_extra_evidence_but_needs_its_declared_fields():
    assert EndpointChange.model_validate({"settled": True, "weights": {"champion": 100}}).dump() == {
        "settled": True, "weights": {"champion": 100}}, "an int stays an int"
    with pytest.raises(ValidationError, match="settled"):
        EndpointChange.model_validate({"serving": "champion"})


def test_earlier_results_are_read_through_their_contracts():
    reader = invocation(admission={"admitted": True, "reason": "ok", "run": RUN}, merge=MERGE)
    assert reader.merge.dataset_dir == MERGE["dataset_dir"]
    assert reader.run == RUN
    with pytest.raises(InvalidInputError, match=r"\$.training is missing"):
        _ = reader.training
    broken = invocation(admission={"admitted": True, "reason": "ok", "run": RUN}, merge={"dataset_dir": 3})
    with pytest.raises(InvalidInputError, match=r"\$.merge does not match its contract Merge"):
        _ = broken.merge


def test_every_admission_rule_meets_the_admission_contract():
    rules = AdmissionRules(cooldown_hours=1)
    decisions = [rules.duplicate(RUN, "arn:exec-0", "arn:exec-1"), rules.out_of_order(RUN, "k", "1", "2"),
                 rules.already_merged(RUN, "merged"), rules.deferred_by_cooldown(RUN, 0.0, "soon"),
                 rules.deferred_by_lock(RUN, "r-0", 0.0),
                 rules.admitted(RUN, "upload", 0.0, False, ["a", "b"], "a")]
    for decision in decisions:
        assert Admission.model_validate(decision.to_dict()).dump() == decision.to_dict()


class RecordingS3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:  # noqa: N803
        self.objects[Key] = Body


def test_the_drift_evidence_fits_the_state_and_is_whole_in_s3():
    s3 = RecordingS3()
    services = SimpleNamespace(s3=s3, settings=SimpleNamespace(data_bucket="bucket"))
    many = 3 * STATE_LIST_LIMIT
    result = {"decision": "retrain", "uploads": many, "reasons": [f"reason {i}" for i in range(many)],
              "unreadable": [{"key": f"incoming/{i}.csv", "reason": "empty"} for i in range(many)],
              "features": {f"f{i}": {"psi": i / many, "js_distance": 0.0, "drifted": i % 2 == 0} for i in range(many)},
              "drifted_features": [f"f{i}" for i in range(0, many, 2)],
              "violations": [{"feature_name": f"f{i}", "constraint_check_type": "data_type_check"}
                             for i in range(many)]}
    with pytest.raises(ValidationError):
        Drift.model_validate(result)
    small = Drift.model_validate(compact_drift(services, "r-1", result)).dump()
    assert small["unreadable_count"] == small["reasons_count"] == small["features_count"] == many
    assert len(small["unreadable"]) == len(small["features"]) == STATE_LIST_LIMIT
    assert json.loads(s3.objects[small["evidence_key"]])["unreadable"] == result["unreadable"]


class OneObject:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def read(self, key: str) -> bytes:
        return self.body


def test_an_old_record_without_the_newer_fields_is_read():
    old = {"run_id": "r-0", "trigger": {"type": "upload"}, "started_at": "2025-01-01T00:00:00Z",
           "outcome": "promoted", "steps": [{"name": "Admit", "status": "succeeded"}]}
    assert read_record(OneObject(json.dumps(old).encode()), "runs/r-0/record.json") == old


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "runs/r-0/record.json is not JSON"),
    (b'{"trigger": {}}', "runs/r-0/record.json is not a run record: run_id: Field required"),
    (b"[1, 2]", "runs/r-0/record.json is not a run record"),
])
def test_a_record_that_is_not_one_is_named_in_one_line(body, message):
    with pytest.raises(InvalidInputError, match=message):
        read_record(OneObject(body), "runs/r-0/record.json")
