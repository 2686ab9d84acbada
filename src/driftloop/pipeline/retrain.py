"""The drift step's retrain decision: the champion's signals on the new uploads, priced, judged by the policy.

At every trigger that has a champion and new uploads the step measures what ``decision.measure_signals``
needs (the champion's NDCG@10 on the newest upload, given each customer's purchases since training, as
the endpoint is given them; novelty; days and interactions since training; the data drift verdict),
prices a retrain from the last training jobs, and asks the configured policy (``RetrainPolicy``).

The policy's state between triggers rides in each run's record (``evidence.drift.retrain.policy_state``,
keyed by its run id). A trigger starts from the latest earlier run that carries one, after telling the
policy whether that run retrained (its job's billed seconds, the NDCG@10 its challenger gained over the
champion offline). A step that runs twice reads the same records and writes the same decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from driftloop.adapters.artifacts import fetch_model_dir
from driftloop.adapters.s3 import put_json
from driftloop.config import RetrainSettings
from driftloop.decision import (
    AccuracyEstimate,
    RetrainCostModel,
    RetrainDecision,
    TriggerSignals,
    make_policy,
    measure_signals,
)
from driftloop.errors import ConfigurationError, InvalidInputError
from driftloop.layout import decision_report_key
from driftloop.model.data import EVENT, ITEM, TIME, USER, ColumnMapping, parse_time, read_interactions
from driftloop.model.inference import MAX_RECENT_ITEMS
from driftloop.model.jobs import PRICE_DATE, PRICE_REGION, TRAINING_PRICES_USD_PER_HOUR
from driftloop.model.recommender import Recommender
from driftloop.pipeline.inputs import upload_source
from driftloop.pipeline.services import Services

RECENT_JOBS = 3  # training jobs whose billed seconds price the next retrain
_SECONDS_PER_DAY = 86_400.0
_Z95 = 1.959964


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
    histories: dict[str, list[str]] = {}
    if after is not None:
        earlier = events.filter(pc.and_(pc.invert(newer), pc.is_in(
            events[EVENT], value_set=pa.array(list(target_event_types), pa.string()))))
        earlier = earlier.sort_by([(USER, "ascending"), (TIME, "ascending")])
        for user, item in zip(earlier[USER].to_pylist(), earlier[ITEM].to_pylist(), strict=True):
            histories.setdefault(user, []).append(item)
        histories = {user: items[-MAX_RECENT_ITEMS:] for user, items in histories.items()}
    start = weighed_until if weighed_until is not None else (pc.min(scored[TIME]).as_py() if scored.num_rows else None)
    return NewData(scored, scored_keys, histories, interactions, start, end)


def _unmeasurable(reason: str, *, days: float, interactions: int, data_drift: str | None) -> TriggerSignals:
    return TriggerSignals(
        period_days=1.0, accuracy=AccuracyEstimate(None, None, None, None, 0, reason=reason),
        item_novelty=None, user_novelty=None, days_since_training=days,
        interactions_since_training=interactions, data_drift=data_drift)


def _days(later: datetime, earlier: datetime) -> float:
    return max((later - earlier).total_seconds() / _SECONDS_PER_DAY, 0.0)


def measure(services: Services, champion: Mapping[str, Any], uploads: Sequence[Mapping[str, Any]],
            scored_until: datetime | None, data_drift: str | None) -> tuple[TriggerSignals | None, dict[str, Any]]:
    """The trigger's signals and where they came from; None when the uploads hold nothing newer than
    what an earlier decision weighed. Age is in data time (the champion's last training event to the
    period's last event) when known, else wall-clock time since promotion."""
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
    signals = measure_signals(model, new.scored, histories=new.histories,
                              days_since_training=_days(new.end, model.trained_until),
                              interactions_since_training=new.interactions, data_drift=data_drift,
                              period_days=new.period_days)
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
    signals, provenance = measure(services, champion, uploads, history.scored_until, data_drift)
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
    return {
        "policy": decision.policy,
        "retrain": decision.retrain,
        "reasons": list(decision.reasons),
        "expected_gain": _rounded(decision.expected_gain),
        "gain_ci": [_rounded(bound) for bound in decision.gain_ci] if decision.gain_ci else None,
        "staleness_cost": _rounded(decision.staleness_cost, 4),
        "retraining_cost": _rounded(decision.retraining_cost, 4),
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
