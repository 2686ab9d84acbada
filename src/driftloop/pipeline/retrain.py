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
from driftloop.model.data import EVENT, ITEM, TIME, USER, ColumnMapping, parse_time, read_interactions
from driftloop.model.inference import MAX_RECENT_ITEMS
from driftloop.model.jobs import PRICE_DATE, PRICE_REGION, TRAINING_PRICES_USD_PER_HOUR
from driftloop.model.recommender import Recommender
from driftloop.pipeline.services import Services
from driftloop.storage import s3_source

RECENT_JOBS = 3  # training jobs whose billed seconds price the next retrain
_SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class PolicyHistory:
    """What earlier runs tell the policy: its last state, whether that run retrained, recent job lengths."""

    previous_run_id: str | None
    state: dict[str, Any] | None
    retrained: dict[str, float | None] | None  # {"job_seconds", "realised_gain"} when that run trained
    job_seconds: tuple[float, ...]  # billed seconds of the latest completed training jobs, newest first

    def to_dict(self) -> dict[str, Any]:
        return {"previous_run_id": self.previous_run_id, "previous_run_retrained": self.retrained,
                "recent_job_seconds": list(self.job_seconds)}


def _job_seconds(record: Mapping[str, Any]) -> float | None:
    training = record.get("evidence", {}).get("training") or {}
    if training.get("status") != "Completed":
        return None
    seconds = training.get("billable_seconds")
    seconds = training.get("training_seconds") if seconds is None else seconds
    return float(seconds) if seconds is not None else None


def _realised_gain(record: Mapping[str, Any]) -> float | None:
    """The NDCG@10 the run's challenger gained over the serving champion on the held-out data."""
    evaluation = record.get("evidence", {}).get("evaluation") or {}
    if evaluation.get("baseline") != "champion":
        return None
    gain = (evaluation.get("differences") or {}).get("ndcg_at_10", {}).get("mean_difference")
    return float(gain) if gain is not None else None


def policy_history(records: Sequence[Mapping[str, Any]], run_id: str, started_at: str | None = None) -> PolicyHistory:
    """From the model's runs that started before this one (``started_at``; all others when unknown), never
    this run's own record: a step run again later, or retried, sees what its first attempt saw."""
    earlier = sorted((r for r in records if r.get("run_id") != run_id
                      and (started_at is None or str(r.get("started_at")) < started_at)),
                     key=lambda r: str(r.get("started_at")), reverse=True)
    job_seconds = tuple(seconds for seconds in map(_job_seconds, earlier) if seconds is not None)[:RECENT_JOBS]
    for record in earlier:
        retrain = record.get("evidence", {}).get("drift", {}).get("retrain")
        if isinstance(retrain, dict) and "policy_state" in retrain:
            seconds = _job_seconds(record)
            retrained = None if seconds is None else {"job_seconds": seconds, "realised_gain": _realised_gain(record)}
            return PolicyHistory(record["run_id"], retrain["policy_state"], retrained, job_seconds)
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
    """The uploads since the champion's training: the newest one scored, the earlier ones as customers' history."""

    evaluated: pa.Table
    evaluated_key: str
    histories: dict[str, list[str]]
    interactions: int  # since training, up to the end of the scored upload
    end: datetime | None  # the scored upload's last event


def split_uploads(tables: Mapping[str, pa.Table], evaluated_key: str | None,
                  target_event_types: Sequence[str]) -> NewData:
    """``evaluated_key`` (else the upload reaching furthest in time) is scored; the target events of the
    others that happened before it are each customer's history (oldest first, the latest
    ``MAX_RECENT_ITEMS``), as the endpoint receives it in ``recent_items``. Events after the scored
    upload's end (an older upload replayed by hand) are left out of the history and of the count."""
    spans = {key: (pc.min(table[TIME]).as_py(), pc.max(table[TIME]).as_py())
             for key, table in tables.items() if table.num_rows}
    if evaluated_key not in spans:
        evaluated_key = max(spans, key=lambda key: (spans[key][1], key)) if spans else next(iter(tables))
    evaluated = tables[evaluated_key]
    start, end = spans.get(evaluated_key, (None, None))
    interactions = evaluated.num_rows
    histories: dict[str, list[str]] = {}
    earlier = [table for key, table in tables.items() if key != evaluated_key and table.num_rows]
    if earlier and start is not None:
        history = pa.concat_tables(earlier)
        time_type = history.schema.field(TIME).type
        interactions += pc.sum(pc.less_equal(history[TIME], pa.scalar(end, time_type))).as_py() or 0
        keep = pc.and_(pc.less(history[TIME], pa.scalar(start, time_type)),
                       pc.is_in(history[EVENT], value_set=pa.array(list(target_event_types), pa.string())))
        history = history.filter(pc.fill_null(keep, False)).sort_by([(USER, "ascending"), (TIME, "ascending")])
        for user, item in zip(history[USER].to_pylist(), history[ITEM].to_pylist(), strict=True):
            histories.setdefault(user, []).append(item)
        histories = {user: items[-MAX_RECENT_ITEMS:] for user, items in histories.items()}
    return NewData(evaluated, evaluated_key, histories, interactions, end)


def _unmeasurable(reason: str, *, days: float, interactions: int, data_drift: str | None) -> TriggerSignals:
    return TriggerSignals(
        period_days=1.0, accuracy=AccuracyEstimate(None, None, None, None, 0, reason=reason),
        item_novelty=None, user_novelty=None, days_since_training=days,
        interactions_since_training=interactions, data_drift=data_drift)


def _days(later: datetime, earlier: datetime) -> float:
    return max((later - earlier).total_seconds() / _SECONDS_PER_DAY, 0.0)


def measure(services: Services, champion: Mapping[str, Any], keys: Sequence[str], evaluated_key: str | None,
            data_drift: str | None) -> tuple[TriggerSignals, dict[str, Any]]:
    """The trigger's signals and where they came from. Age is in data time (the champion's last training
    event to the scored upload's last event) when both are known, else wall-clock time since promotion."""
    bucket = services.settings.data_bucket
    now = datetime.fromtimestamp(services.clock(), UTC)
    wall_days = _days(now, parse_time(champion["promoted_at"])) if champion.get("promoted_at") else 0.0
    tables: dict[str, pa.Table] = {}
    unreadable: list[str] = []
    for key in keys:
        try:
            tables[key] = read_interactions(s3_source(services.s3, bucket, [key]), ColumnMapping())
        except InvalidInputError as error:
            unreadable.append(str(error))
    rows = sum(table.num_rows for table in tables.values())
    provenance: dict[str, Any] = {"uploads_scored": len(tables), "age_basis": "wall clock since promotion"}
    if not champion.get("model_data_url"):
        reason = "accuracy not measurable: the champion's record names no model artefact"
        return _unmeasurable(reason, days=wall_days, interactions=rows, data_drift=data_drift), provenance
    if not tables or rows == 0:
        reason = "accuracy not measurable: the uploads hold no interactions (user_id, item_id, event_time)"
        if unreadable:
            reason += f" ({unreadable[0][:200]})"
        return _unmeasurable(reason, days=wall_days, interactions=rows, data_drift=data_drift), provenance
    model = Recommender.load(fetch_model_dir(services.s3, champion["model_data_url"]))
    new = split_uploads(tables, evaluated_key, model.config.target_event_types)
    days = _days(new.end, model.trained_until) if new.end else wall_days
    provenance.update(evaluated_upload=new.evaluated_key, evaluated_rows=new.evaluated.num_rows,
                      users_with_history=len(new.histories), champion_trained_until=model.trained_until.isoformat(),
                      scored_upload_end=new.end.isoformat() if new.end else None,
                      age_basis="data time" if new.end else provenance["age_basis"])
    signals = measure_signals(model, new.evaluated, histories=new.histories, days_since_training=days,
                              interactions_since_training=new.interactions, data_drift=data_drift)
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
           keys: Sequence[str], data_drift: str | None) -> tuple[RetrainDecision, dict[str, Any]]:
    """The policy's decision for this trigger and its compact evidence; the full evidence goes to
    ``reports/<run_id>/decision.json``."""
    settings = services.settings
    retrain_settings, costs, price_source = setup.settings, setup.costs, setup.price_source
    history = policy_history(services.ledger.runs(settings.model_name), run["run_id"], run.get("started_at"))
    trigger = run.get("trigger", {})
    evaluated_key = trigger.get("key") if trigger.get("type") == "upload" else None
    signals, provenance = measure(services, champion, keys, evaluated_key, data_drift)
    policy = make_policy(retrain_settings.policy, costs, history.state, **_policy_parameters(retrain_settings))
    if history.retrained is not None:
        policy.retrained(**history.retrained)
    decision = policy.update(signals)
    report_key = f"reports/{run['run_id']}/decision.json"
    full = {"run_id": run["run_id"], "decision": decision.to_dict(), "settings": retrain_settings.to_dict(),
            "hourly_price": costs.hourly_price, "price_source": price_source, "history": history.to_dict(),
            "signals_provenance": provenance, "policy_state_before": history.state, "policy_state": policy.state(),
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


def compact_evidence(decision: RetrainDecision, full: Mapping[str, Any], report_key: str) -> dict[str, Any]:
    """What the run record keeps (the state machine's payload is small): the verdict, the money, the signals."""
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
        "previous_run_id": full["history"]["previous_run_id"],
        "report_key": report_key,
        "policy_state": full["policy_state"],
    }
