"""What each step writes into the state machine's data, and the run record Finalize writes.

One model per ``ResultPath`` of statemachines/retrain.asl.json (``RunState`` maps them); every step
validates its result through its model (``@returns``), so a renamed or missing field fails the step
that wrote it instead of a Choice state or a later step. tests/unit/infra/test_asl_contracts.py checks
every path of the ASL against these models.

**Size budget.** A state over 256 KiB fails with ``States.DataLimitExceeded``. Lists that grow with
the data are capped in the state, keep their full length as ``<name>_count``, and their full copy lives
in S3 (``evidence_key``): ``STATE_LIST_LIMIT`` entries for the drift step's features, drifted features,
reasons, violations and unreadable uploads (pipeline/evidence.py cuts them), ``QUARANTINE_LIMIT`` for a
merge's quarantined files and failed scale-out uploads (the manifest and the part results keep them
all). Other lists are bounded by configuration: A/B looks and strata by ``TrafficStages`` x
``MaxBakeWaits``, earlier training failures by ``MAX_JOB_ATTEMPTS``.

Models of steps this project changes often (the rollout's steps, the retrain policy's evidence) accept
extra fields; the others forbid them. Fields a step leaves out stay out of the dumped JSON
(``exclude_unset``), so the run record's JSON is the same as before these models.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, ParamSpec

from pydantic import BaseModel, ConfigDict, Field, ValidationError

STATE_LIST_LIMIT = 25
QUARANTINE_LIMIT = 20

P = ParamSpec("P")
Number = int | float  # an int stays an int in the JSON


class Contract(BaseModel):
    """A step result whose every field is declared: an unknown field is an error.

    Each model builds its validator when first used (``defer_build``): a step uses two or three of them,
    and building all of them would add about 0.02 s to every cold start."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class OpenContract(Contract):
    """A step result with declared fields the ASL and later steps read, and room for more evidence."""

    model_config = ConfigDict(extra="allow")


def returns(model: type[Contract]) -> Callable[[Callable[P, Any]], Callable[P, dict[str, Any]]]:
    """Validate a step function's result through ``model`` and return it as JSON-ready plain data.
    The model is kept as ``function.contract`` (the ASL test reads it)."""

    def wrap(function: Callable[P, Any]) -> Callable[P, dict[str, Any]]:
        @functools.wraps(function)
        def validated(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
            result = function(*args, **kwargs)
            return (result if isinstance(result, model) else model.model_validate(result)).dump()

        validated.contract = model  # type: ignore[attr-defined]
        return validated

    return wrap


def problems(error: ValidationError, limit: int = 5) -> str:
    """A validation error in one line: each failing field (the first ``limit``) and why."""
    return "; ".join(f"{'.'.join(str(part) for part in problem['loc']) or 'the document'}: {problem['msg']}"
                     for problem in error.errors()[:limit])


# $.admission ---------------------------------------------------------------------------------------
class RunDescription(Contract):
    """``$.admission.run``: the run as Admit described it; the head of the run record."""

    run_id: str = Field(min_length=1)
    model: str
    trigger: dict[str, Any]
    started_at: str
    execution: str
    duplicate_of: str | None = None
    lock_expires_at: str | None = None
    first_deployment: bool | None = None


class Admission(Contract):
    admitted: bool
    reason: str
    outcome: Literal["duplicate_ignored", "deferred"] | None = None
    coalesced_triggers: int | None = Field(default=None, ge=0)
    run: RunDescription


# $.drift -------------------------------------------------------------------------------------------
class UnreadableUpload(Contract):
    key: str
    reason: str


class FeatureDrift(OpenContract):
    psi: Number | None = None
    js_distance: Number | None = None
    drifted: bool


class ConceptDrift(OpenContract):
    """The champion's conversion check (``drift.concept.ConversionMonitor`` and its feedback window)."""

    decision: str
    detected: bool
    tested: bool
    reasons: list[str]


class RetrainDecision(OpenContract):
    """``$.drift.retrain``: the cost-aware policy's decision in brief; the full one is ``report_key``.
    Open: a policy may add its own evidence."""

    policy: str
    retrain: bool
    reasons: list[str]
    report_key: str | None = None
    previous_run_id: str | None = None
    scored_until: str | None = None
    policy_state: dict[str, Any] | None = None
    expected_gain: Number | None = None
    gain_ci: list[Number | None] | None = None
    staleness_cost: Number | None = None
    retraining_cost: Number | None = None
    signals: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    overridden_by: list[str] | None = None


class Drift(Contract):
    """``$.drift``: the drift step's decision with capped evidence (full copy at ``evidence_key``)."""

    decision: Literal["retrain", "warn", "none"]
    uploads: int = Field(ge=0)
    reasons: list[str] = Field(max_length=STATE_LIST_LIMIT)
    reasons_count: int | None = None
    unreadable: list[UnreadableUpload] = Field(max_length=STATE_LIST_LIMIT)
    unreadable_count: int | None = None
    violations: list[dict[str, Any]] | None = Field(default=None, max_length=STATE_LIST_LIMIT)
    violations_count: int | None = None
    concept: ConceptDrift | None = None
    report_key: str | None = None
    data_drift: str | None = None
    rows: dict[str, Any] | None = None
    features: dict[str, FeatureDrift] | None = Field(default=None, max_length=STATE_LIST_LIMIT)
    features_count: int | None = None
    drifted_features: list[str] | None = Field(default=None, max_length=STATE_LIST_LIMIT)
    drifted_count: int | None = None
    retrain: RetrainDecision | None = None
    evidence_key: str | None = None


# $.merge_plan, $.merge_parts, $.merge -------------------------------------------------------------
class MergePlan(Contract):
    items_key: str
    items: int = Field(ge=0)
    uploads: int = Field(ge=0)
    partials_dir: str


class ScaleOut(OpenContract):
    uploads: int
    items: int
    failed_uploads: list[str] = Field(max_length=QUARANTINE_LIMIT)
    failed_count: int


class Merge(Contract):
    """``$.merge``: the committed dataset version (its manifest keeps every quarantined file)."""

    dataset_dir: str
    manifest_key: str
    rows_in: int
    rows_out: int
    duplicates_dropped: int
    null_key_rows: int
    quarantined: list[dict[str, Any]] = Field(max_length=QUARANTINE_LIMIT)
    content_hash: str
    previous_version: str | None
    holdout_from: str
    scale_out: ScaleOut | None = None


# $.training ----------------------------------------------------------------------------------------
class Training(Contract):
    """``$.training``: StartTraining's job, then PollTraining's view of it (``model.jobs.TrainingStatus``)."""

    job_name: str
    attempt: int = Field(ge=0)
    status: str
    adopted: bool
    earlier_failures: list[dict[str, Any]]
    source_uri: str
    secondary_status: str | None = None
    failure_reason: str | None = None
    billable_seconds: int | None = None
    training_seconds: int | None = None
    model_artifact: str | None = None
    status_message: str | None = None
    terminal: bool | None = None
    cost: dict[str, Any] | None = None


# $.evaluation --------------------------------------------------------------------------------------
class Evaluation(Contract):
    passed: bool
    first_deployment: bool
    reason: str
    baseline: str
    primary_metric: str
    holdout_users: int
    metrics: dict[str, Any]
    differences: dict[str, Any]
    model_package_arn: str
    report: str


# $.traffic, $.endpoint, $.ab, $.promotion, $.rollback ----------------------------------------------
class EndpointChange(OpenContract):
    """What ``rollout.move_endpoint`` carries between the calls of a step that changes the endpoint."""

    settled: bool
    serving: str | None = None


class Traffic(EndpointChange):
    deployment_mode: str
    stage_index: int
    weights: dict[str, Number]
    challenger_model: str
    ab_started_at: str | None
    waits: int


class EndpointPoll(OpenContract):
    change: Literal["traffic", "promotion", "rollback"]
    settling: bool
    status: str | None
    started: Number
    polls: int
    waited_seconds: Number
    serving: str


class ABDecision(OpenContract):
    action: Literal["wait", "continue", "promote", "rollback"]
    reason: str
    stage_index: int | None
    next_stage_index: int | None
    waits: int


class Promotion(EndpointChange):
    champion: dict[str, Any] | None = None


class Rollback(EndpointChange):
    restored: bool


# $.record and the run record -----------------------------------------------------------------------
class FinalizeResult(Contract):
    run_id: str
    outcome: str
    record_uri: str
    deferred_triggers_handed_on: int
    notification_error: str | None = None


class StepVisit(OpenContract):
    name: str
    status: Literal["running", "succeeded", "failed"]
    attempts: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    errors: list[dict[str, Any]] = []
    duration_seconds: Number | None = None


class DecisionSummary(OpenContract):
    decision: str | None
    reasons: list[str]
    policy: str | None = None
    policy_retrain: bool | None = None
    overridden_by: list[str] = []


class RunRecord(OpenContract):
    """``runs/<run_id>/record.json`` and the ledger's run item. Read back tolerantly: every field after
    the run's description is optional, as older records may lack it."""

    run_id: str = Field(min_length=1)
    trigger: dict[str, Any]
    started_at: str
    execution: str | None = None
    model: str | None = None
    outcome: str | None = None
    finished_at: str | None = None
    steps: list[StepVisit] = []
    evidence: dict[str, Any] = {}
    decision: DecisionSummary | None = None
    error: dict[str, Any] | None = None
    restore_error: dict[str, Any] | None = None
    serving: str | None = None
    record_uri: str | None = None
    notification_error: str | None = None


class AWSError(OpenContract):
    """What a Catch writes (``ResultPath: $.error`` / ``$.restore_error``)."""

    Error: str
    Cause: str | None = None


class RunState(OpenContract):
    """The state machine's data: the execution input plus one field per ``ResultPath``."""

    admission: Admission | None = None
    drift: Drift | None = None
    merge_plan: MergePlan | None = None
    merge_parts: dict[str, Any] | None = None  # the Distributed Map's ResultWriter summary (AWS-defined)
    merge: Merge | None = None
    training: Training | None = None
    evaluation: Evaluation | None = None
    traffic: Traffic | None = None
    endpoint: EndpointPoll | None = None
    ab: ABDecision | None = None
    promotion: Promotion | None = None
    rollback: Rollback | None = None
    record: FinalizeResult | None = None
    outcome: Literal["no_drift", "challenger_rejected", "promoted", "rolled_back"] | None = None
    error: AWSError | None = None
    restore_error: AWSError | None = None
