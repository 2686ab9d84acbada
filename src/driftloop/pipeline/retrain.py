"""The drift step's retrain decision: the champion's signals on the new uploads, priced, judged by the policy.

At every trigger that has a champion and new uploads the step measures what ``decision.measure_signals``
needs (the champion's NDCG@10 on the newest upload, given each customer's purchases since training, as
the endpoint is given them; novelty; days and interactions since training; the data drift verdict),
prices a retrain from the last training jobs, and asks the configured policy (``RetrainPolicy``).

With ``RetrainChallenger=auto`` the step also measures what a retrain would buy, as the backtest's
``auto`` does: it fits a cheap challenger in this function, with the recommender and hyperparameters of
the training job, on the data the run has fixed (the champion's training dataset and the uploads, read by
version) up to a cut (``decision.challenger_cut``), and scores it with the champion on the purchases after
the cut (``decision.measure_challenger_gain``). A guard sizes the fit from the data's counts first
(``decision.plan_challenger_fit``): all users, a seeded user sample, or not at all, with the reason in the
evidence; the function's seconds spent on it are priced at Lambda's GB-second rate and recorded.

The policy's state between triggers rides in each run's record (``evidence.drift.retrain.policy_state``,
keyed by its run id). A trigger starts from the latest earlier run that carries one, after telling the
policy whether that run retrained (its job's billed seconds, the NDCG@10 its challenger gained over the
champion offline). A step that runs twice reads the same records and writes the same decision.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from driftloop.adapters.artifacts import fetch_model_dir
from driftloop.adapters.s3 import put_json
from driftloop.config import RetrainSettings
from driftloop.data.manifest import read_manifest
from driftloop.decision import (
    AccuracyEstimate,
    ChallengerGain,
    RetrainCostModel,
    RetrainDecision,
    TriggerSignals,
    challenger_cut,
    make_policy,
    measure_challenger_gain,
    measure_signals,
    plan_challenger_fit,
    sample_users,
)
from driftloop.errors import ConfigurationError, DriftloopError, InvalidInputError
from driftloop.layout import decision_report_key
from driftloop.model.data import (
    ITEM,
    TIME,
    USER,
    ColumnMapping,
    holdout_items,
    parse_time,
    read_interactions,
    target_rows,
)
from driftloop.model.inference import MAX_RECENT_ITEMS
from driftloop.model.jobs import PRICE_DATE, PRICE_REGION, TRAINING_PRICES_USD_PER_HOUR
from driftloop.model.recommender import Recommender, RecommenderConfig
from driftloop.model.train import TrainingParameters
from driftloop.pipeline.inputs import upload_source
from driftloop.pipeline.services import Services
from driftloop.storage import ParquetSource, s3_filesystem

RECENT_JOBS = 3  # training jobs whose billed seconds price the next retrain
_SECONDS_PER_DAY = 86_400.0
_Z95 = 1.959964
# The challenger's fit in this function (see measure_challenger).
LAMBDA_USD_PER_GB_SECOND = 0.0000133334  # arm64 (the template's), us-east-1 list price 2025-06
DEFAULT_FUNCTION_MEMORY_MB = 3008  # the template's DriftFunction MemorySize, outside Lambda
CHALLENGER_MEMORY_SHARE = 0.5  # of the function's memory: the uploads, the champion and the drift check hold the rest
CHALLENGER_SECONDS = 300.0  # of the drift step's 900 s Timeout: the rest reads the uploads and checks drift
READ_BYTES_PER_ROW = 100  # one interaction read into Arrow (two id strings, a timestamp, an event type)


@dataclass(frozen=True)
class PolicyHistory:
    """What earlier runs tell the policy: its last state, whether that run retrained, recent job lengths."""

    previous_run_id: str | None
    state: dict[str, Any] | None
    retrained: dict[str, float | None] | None  # retrained()'s arguments when that run trained
    job_seconds: tuple[float, ...]  # billed seconds of the latest completed training jobs, newest first
    scored_until: datetime | None = None  # the last event an earlier decision already weighed

    def to_dict(self) -> dict[str, Any]:
        return {"previous_run_id": self.previous_run_id, "previous_run_retrained": self.retrained,
                "recent_job_seconds": list(self.job_seconds),
                "scored_until": self.scored_until.isoformat() if self.scored_until else None}


def _job_seconds(record: Mapping[str, Any]) -> float | None:
    training = record.get("evidence", {}).get("training") or {}
    if training.get("status") != "Completed":
        return None
    seconds = training.get("billable_seconds")
    seconds = training.get("training_seconds") if seconds is None else seconds
    return float(seconds) if seconds is not None else None


def _realised_gain(record: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The NDCG@10 the run's challenger gained over the serving champion on the held-out data, and its
    standard error (from the evaluation's 95% bootstrap interval)."""
    evaluation = record.get("evidence", {}).get("evaluation") or {}
    if evaluation.get("baseline") != "champion":
        return None, None
    difference = (evaluation.get("differences") or {}).get("ndcg_at_10") or {}
    gain, low, high = (difference.get(name) for name in ("mean_difference", "ci_low", "ci_high"))
    error = (float(high) - float(low)) / (2 * _Z95) if low is not None and high is not None else None
    return (float(gain) if gain is not None else None), error


def policy_history(records: Sequence[Mapping[str, Any]], run_id: str, started_at: str | None = None,
                   holdout_days: float = 0.0) -> PolicyHistory:
    """From the model's runs that started before this one (``started_at``; all others when unknown), never
    this run's own record: a step run again later, or retried, sees what its first attempt saw. A failed run's
    decision was never carried out, so the next trigger weighs its data again."""
    earlier = sorted((r for r in records if r.get("run_id") != run_id
                      and (started_at is None or str(r.get("started_at")) < started_at)),
                     key=lambda r: str(r.get("started_at")), reverse=True)
    job_seconds = tuple(seconds for seconds in map(_job_seconds, earlier) if seconds is not None)[:RECENT_JOBS]
    for record in earlier:
        if record.get("outcome") == "failed":
            continue
        retrain = record.get("evidence", {}).get("drift", {}).get("retrain")
        if isinstance(retrain, dict) and "policy_state" in retrain:
            seconds = _job_seconds(record)
            retrained = None
            if seconds is not None:
                gain, error = _realised_gain(record)
                # The gain was measured on the hold-out (the newest days of that trigger's data), where the
                # replaced champion had missed its age at the trigger minus the hold-out.
                age = (retrain.get("signals") or {}).get("days_since_training")
                age = age - holdout_days if age is not None and age > holdout_days else None
                retrained = {"job_seconds": seconds, "realised_gain": gain, "age_days": age,
                             "gain_standard_error": error}
            scored_until = parse_time(retrain["scored_until"]) if retrain.get("scored_until") else None
            return PolicyHistory(record["run_id"], retrain["policy_state"], retrained, job_seconds, scored_until)
    return PolicyHistory(None, None, None, job_seconds)


def hourly_price(settings: RetrainSettings, instance_type: str) -> tuple[float, str]:
    if settings.training_hourly_price is not None:
        return settings.training_hourly_price, "TrainingHourlyPrice"
    price = TRAINING_PRICES_USD_PER_HOUR.get(instance_type)
    if price is None:
        raise ConfigurationError(
            f"no list price known for TrainingInstanceType={instance_type}: set TrainingHourlyPrice (USD per hour)")
    return price, f"{PRICE_REGION} list price {PRICE_DATE} of {instance_type}"


def cost_model(settings: RetrainSettings, instance_type: str) -> tuple[RetrainCostModel, str]:
    price, source = hourly_price(settings, instance_type)
    try:
        model = RetrainCostModel(value_per_point=settings.value_per_ndcg_point, hourly_price=price,
                                 startup_seconds=settings.startup_seconds, ab_exposure_cost=settings.ab_exposure_cost)
    except ConfigurationError as error:
        raise ConfigurationError(f"retrain cost parameters rejected: {error}") from None
    return model, source


@dataclass(frozen=True)
class NewData:
    """The interactions since the champion's training, cut where the last decision stopped weighing them."""

    scored: pa.Table  # the events no earlier decision weighed: the trigger's period
    scored_keys: list[str]
    histories: dict[str, list[str]]  # each customer's target events before the period, oldest first
    interactions: int  # since training, up to the end of the period
    start: datetime | None  # where the period starts (None: at the first new event)
    end: datetime | None  # its last event (None: nothing new)

    @property
    def period_days(self) -> float | None:
        if self.start is None or self.end is None or self.end <= self.start:
            return None
        return (self.end - self.start).total_seconds() / _SECONDS_PER_DAY


def recent_items(events: pa.Table) -> dict[str, list[str]]:
    """Each customer's items in ``events``, oldest first, the latest ``MAX_RECENT_ITEMS``: the request's
    ``recent_items`` as the endpoint receives them."""
    events = events.sort_by([(USER, "ascending"), (TIME, "ascending")])
    histories: dict[str, list[str]] = {}
    for user, item in zip(events[USER].to_pylist(), events[ITEM].to_pylist(), strict=True):
        histories.setdefault(user, []).append(item)
    return {user: items[-MAX_RECENT_ITEMS:] for user, items in histories.items()}


def split_uploads(tables: Mapping[str, pa.Table], after: datetime | None, target_event_types: Sequence[str],
                  weighed_until: datetime | None = None) -> NewData:
    """Events after ``after`` (the champion's last training event, or the last event an earlier decision
    weighed) are this trigger's period, scored; the target events up to ``after`` are each customer's
    history (oldest first, the latest ``MAX_RECENT_ITEMS``), as the endpoint receives it in
    ``recent_items``. The period runs from ``weighed_until`` (the end of the last weighed period; None:
    from the first new event) to the last new event, so every stretch of traffic is weighed once, a
    burst of uploads is one period, and the periods add up however many triggers the uploads came in."""
    present = {key: table for key, table in tables.items() if table.num_rows}
    if not present:
        empty = next(iter(tables.values()))
        return NewData(empty, [], {}, 0, weighed_until, None)
    events = pa.concat_tables(present.values())
    time_type = events.schema.field(TIME).type
    newer = (pc.greater(events[TIME], pa.scalar(after, time_type)) if after is not None
             else pc.is_valid(events[TIME]))
    scored = events.filter(newer)
    scored_keys = [key for key, table in present.items()
                   if after is None or pc.any(pc.greater(table[TIME], pa.scalar(after, time_type))).as_py()]
    end = pc.max(scored[TIME]).as_py() if scored.num_rows else None
    interactions = events.num_rows if end is None else int(
        pc.sum(pc.less_equal(events[TIME], pa.scalar(end, time_type))).as_py() or 0)
    earlier = target_rows(events.filter(pc.invert(newer)), target_event_types)
    histories = recent_items(earlier) if after is not None else {}
    start = weighed_until if weighed_until is not None else (pc.min(scored[TIME]).as_py() if scored.num_rows else None)
    return NewData(scored, scored_keys, histories, interactions, start, end)


def _unmeasurable(reason: str, *, days: float, interactions: int, data_drift: str | None) -> TriggerSignals:
    return TriggerSignals(
        period_days=1.0, accuracy=AccuracyEstimate(None, None, None, None, 0, reason=reason),
        item_novelty=None, user_novelty=None, days_since_training=days,
        interactions_since_training=interactions, data_drift=data_drift)


def _days(later: datetime, earlier: datetime) -> float:
    return max((later - earlier).total_seconds() / _SECONDS_PER_DAY, 0.0)


@dataclass(frozen=True)
class ChallengerBudget:
    """What the challenger's fit may use in this function, and the memory Lambda bills per second."""

    memory_bytes: int
    seconds: float
    function_memory_gb: float

    @classmethod
    def of_this_function(cls, environ: Mapping[str, str] = os.environ) -> ChallengerBudget:
        megabytes = float(environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or DEFAULT_FUNCTION_MEMORY_MB)
        return cls(int(megabytes * 2**20 * CHALLENGER_MEMORY_SHARE), CHALLENGER_SECONDS, megabytes / 1024)

    def cost(self, seconds: float) -> float:
        return seconds * self.function_memory_gb * LAMBDA_USD_PER_GB_SECOND

    def cost_basis(self, seconds: float) -> str:
        return (f"{seconds:.2f} s of this function x {self.function_memory_gb:.3f} GB x "
                f"${LAMBDA_USD_PER_GB_SECOND:.10f} per GB-second (Lambda arm64, us-east-1 list price 2025-06)")


def _not_measured(reason: str, **evidence: Any) -> tuple[None, dict[str, Any]]:
    return None, {"measured": False, "reason": reason if reason.startswith("challenger not measured") else
                  f"challenger not measured: {reason}", **evidence}


def _read_training_data(services: Services, champion: Mapping[str, Any], budget: ChallengerBudget) -> pa.Table | str:
    """The champion's training dataset (its committed version's files), or why it is not read."""
    if not champion.get("dataset_dir"):
        return "the champion's record names no training dataset"
    filesystem = s3_filesystem(services.s3)
    manifest = read_manifest(filesystem, f"{services.settings.data_bucket}/{champion['dataset_dir']}")
    if manifest.rows_out * READ_BYTES_PER_ROW > budget.memory_bytes:
        return (f"the champion's training data ({manifest.rows_out} rows, about "
                f"{manifest.rows_out * READ_BYTES_PER_ROW / 2**30:.2f} GB in memory) does not fit the "
                f"{budget.memory_bytes / 2**30:.2f} GB this function gives the challenger")
    return read_interactions(ParquetSource(filesystem, manifest.file_paths()), ColumnMapping())


def measure_challenger(services: Services, champion: Mapping[str, Any], model: Recommender,
                       tables: Mapping[str, pa.Table], new: NewData, after: datetime,
                       budget: ChallengerBudget) -> tuple[ChallengerGain | None, dict[str, Any]]:
    """:func:`_measure_challenger`, with the function's seconds it took and their price in the evidence."""
    started = time.perf_counter()
    gain, evidence = _measure_challenger(services, champion, model, tables, new, after, budget)
    seconds = round(time.perf_counter() - started, 3)
    evidence.update(seconds=seconds, cost_usd=round(budget.cost(seconds), 6),
                    cost_basis=budget.cost_basis(seconds))
    return gain, evidence


def _measure_challenger(services: Services, champion: Mapping[str, Any], model: Recommender,
                        tables: Mapping[str, pa.Table], new: NewData, after: datetime,
                        budget: ChallengerBudget) -> tuple[ChallengerGain | None, dict[str, Any]]:
    """What a retrain would buy, measured as the backtest's ``auto`` measures it, and its evidence.

    The challenger learns all the data before the cut (the champion's training dataset, the uploads up
    to ``after``, and the period's part before the cut); both models are scored on the period's purchases
    after the cut, the champion given each customer's purchases since its training as the endpoint is.
    The hyperparameters are the training job's, so the challenger is the model a retrain would fit
    (without the job's hold-out). Never raises for the data's sake: every way it cannot be measured is a
    reason in the evidence, and the rule then rests on its other signals."""
    if importlib.util.find_spec("scipy") is None:
        return _not_measured("fitting needs scipy.sparse, which this runtime lacks (the layer's "
                             "requirements.txt pins it); set RetrainChallenger=off to skip it quietly")
    try:
        config = TrainingParameters.from_hyperparameters(services.settings.training_hyperparameters).config
    except DriftloopError as error:
        return _not_measured(f"the training hyperparameters are not valid: {error}")
    try:
        trained = _read_training_data(services, champion, budget)
    except DriftloopError as error:  # no committed manifest, an unreadable file: the run goes on without it
        return _not_measured(f"the champion's training data is unreadable: {error}"[:300])
    if isinstance(trained, str):
        return _not_measured(trained)
    return fit_challenger(model, trained, list(tables.values()), new, after, config, budget)


def fit_challenger(model: Recommender, trained: pa.Table, uploads: Sequence[pa.Table], new: NewData, after: datetime,
                   config: RecommenderConfig, budget: ChallengerBudget) -> tuple[ChallengerGain | None, dict[str, Any]]:
    """The challenger's measurement from data in memory: ``trained`` (the champion's training dataset),
    ``uploads`` (the run's uploads) and their split ``new`` at ``after`` (see :func:`measure_challenger`)."""
    time_type = trained.schema.field(TIME).type
    until = pa.scalar(after, time_type)
    known = pa.concat_tables([trained, *(table.filter(pc.less_equal(table[TIME], until))
                                         for table in uploads if table.num_rows)])
    missed = known.filter(pc.greater(known[TIME], pa.scalar(model.trained_until, time_type)))
    split = challenger_cut(new.scored, new.start if missed.num_rows else None)
    if split is None:
        return _not_measured("the period's events all happened at one instant, so there is nothing to learn "
                             "before a cut")
    rows = pa.concat_tables([known, split.learned])
    plan = plan_challenger_fit(
        config, rows=rows.num_rows, users=pc.count_distinct(rows[USER]).as_py(),
        items=pc.count_distinct(rows[ITEM]).as_py(), memory_budget_bytes=budget.memory_bytes,
        seconds_budget=budget.seconds)
    evidence: dict[str, Any] = {"cut": split.cut.isoformat(), "cut_at": "period start" if missed.num_rows else
                                "the period's median event time", "plan": plan.to_dict()}
    if plan.user_share is None:
        return _not_measured(plan.reason or "", **evidence)
    scored = split.scored
    if plan.user_share < 1:
        rows, scored = sample_users(rows, plan.user_share), sample_users(scored, plan.user_share)
    fit_started = time.perf_counter()
    try:
        challenger = Recommender.fit(rows, config)
    except (DriftloopError, MemoryError) as error:
        return _not_measured(f"the fit failed: {type(error).__name__}: {error}"[:300], **evidence)
    evidence["fit_seconds"] = round(time.perf_counter() - fit_started, 3)
    histories = recent_items(target_rows(pa.concat_tables([missed, split.learned]), config.target_event_types))
    gain = measure_challenger_gain(
        model, challenger, holdout_items(scored, config.target_event_types),
        missed_days=_days(split.cut, model.trained_until), champion_histories=histories, challenger_histories={})
    evidence.update(measured=gain is not None, fitted_rows=rows.num_rows,
                    gain=None if gain is None else gain.to_dict())
    if gain is None:
        evidence["reason"] = "challenger not measured: no returning customer bought something new after the cut"
    return gain, evidence


def measure(services: Services, champion: Mapping[str, Any], uploads: Sequence[Mapping[str, Any]],
            scored_until: datetime | None, data_drift: str | None,
            challenger: ChallengerBudget | str) -> tuple[TriggerSignals | None, dict[str, Any]]:
    """The trigger's signals and where they came from; None when the uploads hold nothing newer than
    what an earlier decision weighed. Age is in data time (the champion's last training event to the
    period's last event) when known, else wall-clock time since promotion. ``challenger``: the budget
    of the challenger's fit, or why none is fitted."""
    now = datetime.fromtimestamp(services.clock(), UTC)
    wall_days = _days(now, parse_time(champion["promoted_at"])) if champion.get("promoted_at") else 0.0
    tables: dict[str, pa.Table] = {}
    unreadable: list[str] = []
    for upload in uploads:  # inputs.json entries: each read as the version the run fixed
        try:
            tables[upload["key"]] = read_interactions(upload_source(services, [upload]), ColumnMapping())
        except InvalidInputError as error:
            unreadable.append(str(error))
    rows = sum(table.num_rows for table in tables.values())
    provenance: dict[str, Any] = {"uploads_read": len(tables), "age_basis": "wall clock since promotion"}
    if not champion.get("model_data_url"):
        reason = "accuracy not measurable: the champion's record names no model artefact"
        return _unmeasurable(reason, days=wall_days, interactions=rows, data_drift=data_drift), provenance
    if not tables or rows == 0:
        reason = "accuracy not measurable: the uploads hold no interactions (user_id, item_id, event_time)"
        if unreadable:
            reason += f" ({unreadable[0][:200]})"
        return _unmeasurable(reason, days=wall_days, interactions=rows, data_drift=data_drift), provenance
    model = Recommender.load(fetch_model_dir(services.s3, champion["model_data_url"]))
    weighed_until = scored_until if scored_until is not None and scored_until > model.trained_until else None
    after = weighed_until or model.trained_until
    new = split_uploads(tables, after, model.config.target_event_types, weighed_until)
    provenance.update(scored_uploads=new.scored_keys[:50], scored_rows=new.scored.num_rows,
                      period_start=new.start.isoformat() if new.start else None,
                      period_end=new.end.isoformat() if new.end else None,
                      users_with_history=len(new.histories), champion_trained_until=model.trained_until.isoformat())
    if new.end is None:
        return None, provenance
    provenance["age_basis"] = "data time"
    gain, provenance["challenger"] = (
        _not_measured(challenger) if isinstance(challenger, str)
        else measure_challenger(services, champion, model, tables, new, after, challenger))
    signals = measure_signals(model, new.scored, histories=new.histories,
                              days_since_training=_days(new.end, model.trained_until),
                              interactions_since_training=new.interactions, data_drift=data_drift,
                              period_days=new.period_days, challenger_gain=gain)
    return signals, provenance


@dataclass(frozen=True)
class DecisionSetup:
    """The run's retrain parameters, checked before anything else happens (a bad one fails the run)."""

    settings: RetrainSettings
    costs: RetrainCostModel
    price_source: str

    @classmethod
    def from_services(cls, services: Services) -> DecisionSetup:
        settings = RetrainSettings.from_env(services.settings.retrain_environment)
        costs, price_source = cost_model(settings, services.settings.training_instance_type)
        return cls(settings, costs, price_source)


def decide(services: Services, setup: DecisionSetup, run: Mapping[str, Any], champion: Mapping[str, Any],
           uploads: Sequence[Mapping[str, Any]], data_drift: str | None
           ) -> tuple[RetrainDecision | None, dict[str, Any]]:
    """The policy's decision for this trigger (None: nothing new to weigh) and its compact evidence; the
    full evidence goes to ``reports/<run_id>/decision.json``."""
    settings = services.settings
    retrain_settings, costs = setup.settings, setup.costs
    history = policy_history(services.ledger.runs(settings.model_name), run["run_id"], run.get("started_at"),
                             settings.holdout_days)
    challenger: ChallengerBudget | str = ChallengerBudget.of_this_function()
    if retrain_settings.challenger == "off":
        challenger = "RetrainChallenger=off"
    elif not retrain_settings.fits_challenger:
        challenger = f"only the auto policy uses it (RetrainPolicy={retrain_settings.policy})"
    signals, provenance = measure(services, champion, uploads, history.scored_until, data_drift, challenger)
    policy = make_policy(retrain_settings.policy, costs, history.state, **_policy_parameters(retrain_settings))
    if history.retrained is not None:
        policy.retrained(**history.retrained)
    decision = policy.update(signals) if signals is not None else None
    scored_until = provenance.get("period_end") or (history.scored_until.isoformat() if history.scored_until else None)
    report_key = decision_report_key(run["run_id"])
    full = {"run_id": run["run_id"], "decision": decision.to_dict() if decision else None,
            "settings": retrain_settings.to_dict(), "hourly_price": costs.hourly_price,
            "price_source": setup.price_source, "history": history.to_dict(), "signals_provenance": provenance,
            "scored_until": scored_until, "policy_state_before": history.state, "policy_state": policy.state(),
            "champion": {"run_id": champion.get("run_id"), "promoted_at": champion.get("promoted_at"),
                         "offline_ndcg_at_10": _offline_ndcg(champion)}}
    put_json(services.s3, settings.data_bucket, report_key, full)
    return decision, compact_evidence(decision, full, report_key)


def _policy_parameters(settings: RetrainSettings) -> dict[str, Any]:
    return {"every_days": settings.every_days} if settings.policy == "schedule" else {}


def _offline_ndcg(champion: Mapping[str, Any]) -> float | None:
    value = (champion.get("offline_metrics") or {}).get("challenger", {}).get("ndcg_at_10")
    return float(value) if value is not None else None


def _rounded(value: Any, digits: int = 6) -> Any:
    return round(value, digits) if isinstance(value, float) else value


def compact_evidence(decision: RetrainDecision | None, full: Mapping[str, Any], report_key: str) -> dict[str, Any]:
    """What the run record keeps (the state machine's payload is small): the verdict, the money, the signals."""
    carried = {"previous_run_id": full["history"]["previous_run_id"], "scored_until": full["scored_until"],
               "report_key": report_key, "policy_state": full["policy_state"]}
    if decision is None:
        reason = (f"nothing new to weigh: the uploads hold no interaction after {full['scored_until']}, "
                  "which an earlier decision already counted")
        return {"policy": full["settings"]["policy"], "retrain": False, "reasons": [reason], **carried}
    signals = decision.signals
    accuracy = signals.accuracy
    challenger = full["signals_provenance"].get("challenger") or {}
    return {
        "policy": decision.policy,
        "retrain": decision.retrain,
        "reasons": list(decision.reasons) + ([challenger["reason"]] if challenger.get("reason") else []),
        "expected_gain": _rounded(decision.expected_gain),
        "gain_ci": [_rounded(bound) for bound in decision.gain_ci] if decision.gain_ci else None,
        "staleness_cost": _rounded(decision.staleness_cost, 4),
        "retraining_cost": _rounded(decision.retraining_cost, 4),
        "challenger_cost": challenger.get("cost_usd"),
        "challenger": {name: challenger.get(name) for name in (
            "measured", "gain", "reason", "cut", "fit_seconds", "fitted_rows", "seconds", "cost_usd", "cost_basis")}
        | {"user_share": (challenger.get("plan") or {}).get("user_share")},
        "signals": {
            "ndcg_at_10": _rounded(accuracy.ndcg_at_10),
            "ndcg_ci": [_rounded(accuracy.ci_low), _rounded(accuracy.ci_high)],
            "hit_rate_at_10": _rounded(accuracy.hit_rate_at_10), "users": accuracy.users,
            "accuracy_reason": accuracy.reason, "item_novelty": _rounded(signals.item_novelty),
            "user_novelty": _rounded(signals.user_novelty), "period_days": _rounded(signals.period_days, 3),
            "days_since_training": _rounded(signals.days_since_training, 3),
            "interactions_since_training": signals.interactions_since_training, "data_drift": signals.data_drift,
        },
        "parameters": decision.parameters,
        "champion_offline_ndcg_at_10": full["champion"]["offline_ndcg_at_10"],
        **carried,
    }
