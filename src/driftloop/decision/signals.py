"""What the retrain rule sees at one trigger: the champion's accuracy measured on the upload, novelty, age.

An upload carries its own labels: the purchases. The champion's top-10 for the upload's returning users
(users seen before the upload) is scored against the items they bought in it and had not bought before,
as the offline evaluation and the backtest score a model; the interval is a percentile bootstrap over
users, so it says how much the number would move with other customers of the same kind.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftloop.errors import InvalidInputError
from driftloop.evaluation.offline import paired_bootstrap
from driftloop.model.data import ITEM, TIME, USER, ColumnMapping, holdout_items, normalise_interactions, target_rows
from driftloop.model.metrics import metric_key, per_user_metrics
from driftloop.model.recommender import Recommender

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
_BOOTSTRAP_CELLS = 4_000_000
_BOOTSTRAP_MAX_USERS = 20_000
_Z95 = 1.959964
_SECONDS_PER_DAY = 86_400.0
_DRIFT_DECISIONS = ("none", "warn", "retrain")


@dataclass(frozen=True)
class AccuracyEstimate:
    """The champion's NDCG@10 and HitRate@10 on one upload's purchases by returning users.

    Parameters
    ----------
    ndcg_at_10, hit_rate_at_10
        Means over the scored users; ``None`` when not measurable.
    ci_low, ci_high
        95% percentile-bootstrap interval of ``ndcg_at_10`` over users.
    users
        Returning users scored.
    reason
        Why the accuracy is not measurable (``"accuracy not measurable: ..."``), else ``None``.
    """

    ndcg_at_10: float | None
    ci_low: float | None
    ci_high: float | None
    hit_rate_at_10: float | None
    users: int
    reason: str | None = None

    def __post_init__(self) -> None:
        values = (self.ndcg_at_10, self.ci_low, self.ci_high, self.hit_rate_at_10)
        if self.ndcg_at_10 is not None and any(value is None for value in values):
            raise InvalidInputError("a measured accuracy needs ndcg_at_10, ci_low, ci_high and hit_rate_at_10")
        for value in values:
            if value is not None and (not isinstance(value, int | float) or not 0.0 <= value <= 1.0):
                raise InvalidInputError(f"accuracy values must be numbers in [0, 1], not {value!r}")
        if not isinstance(self.users, int) or self.users < 0:
            raise InvalidInputError(f"users must be a count >= 0, not {self.users!r}")

    @property
    def measurable(self) -> bool:
        return self.ndcg_at_10 is not None

    @classmethod
    def not_measurable(cls, why: str) -> AccuracyEstimate:
        return cls(None, None, None, None, 0, f"accuracy not measurable: {why}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccuracyEstimate:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ChallengerGain:
    """What retraining would have bought, measured at a trigger (see :func:`measure_challenger_gain`).

    Parameters
    ----------
    gain
        Mean NDCG@10 of the challenger minus the champion's, paired over the same users and purchases.
    ci_low, ci_high
        Its 95% paired percentile-bootstrap interval over users.
    standard_error
        Its standard error (the paired differences' standard deviation / sqrt(users)); ``None`` with one user.
    users
        Returning users scored (>= 1).
    missed_days
        Days of data the challenger was trained on and the champion was not (>= 0).
    """

    gain: float
    ci_low: float
    ci_high: float
    standard_error: float | None
    users: int
    missed_days: float

    def __post_init__(self) -> None:
        for name in ("gain", "ci_low", "ci_high", "missed_days"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
                raise InvalidInputError(f"challenger gain: {name} must be a finite number, not {value!r}")
        if not -1.0 <= self.gain <= 1.0 or self.missed_days < 0:
            raise InvalidInputError(
                f"challenger gain: gain must lie in [-1, 1], missed_days >= 0; not {self.gain}, {self.missed_days}"
            )
        error = self.standard_error
        if error is not None and (not isinstance(error, int | float) or not np.isfinite(error) or error < 0):
            raise InvalidInputError(f"challenger gain: standard_error must be a number >= 0 or None, not {error!r}")
        if not isinstance(self.users, int) or isinstance(self.users, bool) or self.users < 1:
            raise InvalidInputError(f"challenger gain: users must be a count >= 1, not {self.users!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChallengerGain:
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"challenger gain must be a JSON object, not {type(data).__name__}")
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class TriggerSignals:
    """Everything the retrain rule sees at one trigger (see :func:`measure_signals`).

    Parameters
    ----------
    period_days
        Days of customer activity the upload covers (> 0): the traffic a stale model serves until the
        next trigger is assumed to last as long.
    accuracy
        The champion's accuracy on the upload.
    item_novelty, user_novelty
        Share of the upload's purchases whose item (user) the champion never saw; ``None`` without purchases.
    days_since_training
        Days from the end of the champion's training data to the end of the upload (>= 0).
    interactions_since_training
        New interactions since the champion's training data ended (>= 0).
    data_drift
        ``"none"``, ``"warn"`` or ``"retrain"`` from :class:`driftloop.drift.DriftPolicy`, ``None`` if not computed.
    challenger_gain
        What a challenger fitted on the data up to a cut gained over the champion on the purchases after
        it (:func:`measure_challenger_gain`); ``None`` when not measured.
    """

    period_days: float
    accuracy: AccuracyEstimate
    item_novelty: float | None
    user_novelty: float | None
    days_since_training: float
    interactions_since_training: int
    data_drift: str | None
    challenger_gain: ChallengerGain | None = None

    def __post_init__(self) -> None:
        if not np.isfinite(self.period_days) or self.period_days <= 0:
            raise InvalidInputError(f"period_days must be > 0, not {self.period_days}")
        if not np.isfinite(self.days_since_training) or self.days_since_training < 0:
            raise InvalidInputError(f"days_since_training must be >= 0, not {self.days_since_training}")
        if self.interactions_since_training < 0:
            raise InvalidInputError(f"interactions_since_training must be >= 0, not {self.interactions_since_training}")
        if self.data_drift is not None and self.data_drift not in _DRIFT_DECISIONS:
            raise InvalidInputError(f"data_drift must be one of {_DRIFT_DECISIONS} or None, not {self.data_drift!r}")
        for name in ("item_novelty", "user_novelty"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name} must be a share in [0, 1], not {value}")
        if self.challenger_gain is not None and not isinstance(self.challenger_gain, ChallengerGain):
            raise InvalidInputError(
                f"challenger_gain must be a ChallengerGain, not {type(self.challenger_gain).__name__}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["accuracy"] = self.accuracy.to_dict()
        data["challenger_gain"] = None if self.challenger_gain is None else self.challenger_gain.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TriggerSignals:
        try:
            return cls(
                period_days=float(data["period_days"]),
                accuracy=AccuracyEstimate.from_dict(data["accuracy"]),
                item_novelty=data.get("item_novelty"),
                user_novelty=data.get("user_novelty"),
                days_since_training=float(data["days_since_training"]),
                interactions_since_training=int(data["interactions_since_training"]),
                data_drift=data.get("data_drift"),
                challenger_gain=(
                    None if data.get("challenger_gain") is None else ChallengerGain.from_dict(data["challenger_gain"])
                ),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise InvalidInputError(f"trigger signals are incomplete or malformed: {error!r}") from None


def bootstrap_interval(values: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of ``values`` (one value per user), drawn in chunks
    of at most ``_BOOTSTRAP_CELLS`` indices so memory stays flat. Above ``_BOOTSTRAP_MAX_USERS`` users the
    mean is normal to well within the interval's precision, so the normal interval is used instead
    (the bootstrap would take minutes there)."""
    if values.size == 0:
        raise InvalidInputError("no values to bootstrap")
    if values.size > _BOOTSTRAP_MAX_USERS:
        half_width = _Z95 * float(values.std(ddof=1)) / np.sqrt(values.size)
        return float(values.mean()) - half_width, float(values.mean()) + half_width
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _BOOTSTRAP_CELLS // values.size)
    means = np.concatenate(
        [
            values[rng.integers(0, values.size, size=(min(per_chunk, resamples - start), values.size))].mean(axis=1)
            for start in range(0, resamples, per_chunk)
        ]
    )
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _returning_holdout(
    model: Recommender,
    purchases: Mapping[str, Collection[str]],
    histories: Mapping[str, Sequence[str]],
    seen: Mapping[str, Collection[str]] | None,
) -> dict[str, set[str]] | str:
    """Per returning buyer, the items bought that were not seen before; or why there is none."""
    if not purchases:
        return "the upload has no purchases"
    holdout: dict[str, set[str]] = {}
    returning = 0
    for user, items in purchases.items():
        if not (model.knows(user) or user in histories or (seen is not None and user in seen)):
            continue
        returning += 1
        excluded = (
            set(seen.get(user, ())) if seen is not None else set(model.seen_items(user)) | set(histories.get(user, ()))
        )
        fresh = set(items) - excluded
        if fresh:
            holdout[user] = fresh
    if not holdout:
        return "no returning users among the buyers" if not returning else "returning users bought nothing new"
    return holdout


def _per_user_metrics(
    model: Recommender,
    holdout: Mapping[str, set[str]],
    histories: Mapping[str, Sequence[str]],
    seen: Mapping[str, Collection[str]] | None,
    k: int,
) -> dict[str, np.ndarray]:
    """The model's NDCG@k and HitRate@k per user of ``holdout`` (sorted by user), scored with the users'
    ``histories`` as the request's recent items, never recommending nor scoring ``seen`` items."""
    users = sorted(holdout)
    longest = max(len(seen.get(user, ())) for user in users) if seen is not None else 0
    ranked = model.recommend(users, k=min(k + longest, max(model.n_items, 1)), recent=histories)
    excluded_of = seen if seen is not None else {}
    lists = {
        user: [item for item in items if item not in excluded_of.get(user, ())][:k]
        for user, items in zip(users, ranked, strict=True)
    }
    return per_user_metrics(lists, holdout, k)


def measure_accuracy(
    model: Recommender,
    purchases: Mapping[str, Collection[str]],
    *,
    histories: Mapping[str, Sequence[str]] | None = None,
    seen: Mapping[str, Collection[str]] | None = None,
    k: int = 10,
    seed: int = 0,
) -> AccuracyEstimate:
    """The champion's top-``k`` for returning users against what they bought (``purchases[user]``).

    A user returns when the model knows them or ``histories`` / ``seen`` hold them. Items in ``seen[user]``
    (default: the user's purchases known to the model plus ``histories[user]``) are never recommended nor
    scored; users left without a fresh purchase are not scored.
    """
    histories = histories or {}
    holdout = _returning_holdout(model, purchases, histories, seen)
    if isinstance(holdout, str):
        return AccuracyEstimate.not_measurable(holdout)
    metrics = _per_user_metrics(model, holdout, histories, seen, k)
    ndcg = metrics[metric_key("ndcg", k)]
    low, high = bootstrap_interval(ndcg, seed)
    return AccuracyEstimate(
        ndcg_at_10=float(ndcg.mean()),
        ci_low=low,
        ci_high=high,
        hit_rate_at_10=float(metrics[metric_key("hit_rate", k)].mean()),
        users=len(holdout),
    )


def measure_challenger_gain(
    champion: Recommender,
    challenger: Recommender,
    purchases: Mapping[str, Collection[str]],
    *,
    missed_days: float,
    champion_histories: Mapping[str, Sequence[str]] | None = None,
    challenger_histories: Mapping[str, Sequence[str]] | None = None,
    seen: Mapping[str, Collection[str]] | None = None,
    k: int = 10,
    seed: int = 0,
) -> ChallengerGain | None:
    """What retraining would have bought, measured directly: a challenger fitted on all the data up to
    a cut and the champion, both scored on the purchases after the cut by the same returning users
    (paired; the users and targets are the champion's, as in :func:`measure_accuracy`).

    Parameters
    ----------
    champion, challenger
        The model in force, and a model trained the same way on all the data before the cut.
    purchases
        ``purchases[user]``: items bought after the cut (the upload's, or its later part).
    missed_days
        Days of data the challenger saw and the champion did not: from the end of the champion's
        training data to the cut (>= 0).
    champion_histories, challenger_histories
        Each model's recent items per user (interactions since *its* training data ended, before the
        purchases), as the endpoint passes them.
    seen
        Per user, items never recommended nor scored (default: the champion's rule, see :func:`measure_accuracy`).
    k, seed
        List length scored and the paired bootstrap's seed.

    Returns ``None`` when no returning user bought something new (nothing to compare on).

    Example
    -------
    >>> from datetime import datetime, timezone
    >>> day = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> old = pa.table({"user_id": ["a", "a", "b", "b", "c"], "item_id": ["x", "y", "x", "y", "x"],
    ...                 "event_time": [day] * 5})
    >>> new = pa.table({"user_id": ["b", "d", "d"], "item_id": ["z", "y", "z"], "event_time": [day] * 3})
    >>> champion, challenger = Recommender.fit(old), Recommender.fit(pa.concat_tables([old, new]))
    >>> measured = measure_challenger_gain(champion, challenger, {"a": {"z"}, "c": {"y"}}, missed_days=7)
    >>> measured.users, measured.gain > 0, measured.missed_days   # the challenger knows item z
    (2, True, 7.0)
    >>> measure_challenger_gain(champion, challenger, {"e": {"z"}}, missed_days=7) is None
    True
    """
    if not isinstance(missed_days, int | float) or not np.isfinite(missed_days) or missed_days < 0:
        raise InvalidInputError(f"challenger gain: missed_days must be a number of days >= 0, not {missed_days!r}")
    champion_histories = champion_histories or {}
    holdout = _returning_holdout(champion, purchases, champion_histories, seen)
    if isinstance(holdout, str):
        return None
    if seen is None:
        users = sorted(holdout)
        seen = {user: set(champion.seen_items(user)) | set(champion_histories.get(user, ())) for user in users}
    key = metric_key("ndcg", k)
    before = _per_user_metrics(champion, holdout, champion_histories, seen, k)[key]
    after = _per_user_metrics(challenger, holdout, challenger_histories or {}, seen, k)[key]
    paired = paired_bootstrap(before, after, n_bootstrap=BOOTSTRAP_RESAMPLES, confidence=CONFIDENCE, seed=seed)
    differences = after - before
    error = float(differences.std(ddof=1) / np.sqrt(differences.size)) if differences.size > 1 else None
    return ChallengerGain(
        gain=paired.mean_difference,
        ci_low=paired.ci_low,
        ci_high=paired.ci_high,
        standard_error=error,
        users=paired.n_users,
        missed_days=float(missed_days),
    )


def _novelty(purchases: pa.Table, column: str, known: Callable[[str], bool]) -> float | None:
    if purchases.num_rows == 0:
        return None
    values = purchases.column(column).to_pylist()
    return sum(1 for value in values if not known(value)) / len(values)


def measure_signals(
    model: Recommender,
    upload: pa.Table,
    *,
    histories: Mapping[str, Sequence[str]] | None,
    days_since_training: float,
    interactions_since_training: int,
    data_drift: str | None,
    period_days: float | None = None,
    user_col: str = USER,
    item_col: str = ITEM,
    event_col: str = "event_type",
    time_col: str = TIME,
    k: int = 10,
    seed: int = 0,
    seen: Mapping[str, Collection[str]] | None = None,
    challenger_gain: ChallengerGain | None = None,
) -> TriggerSignals:
    """Measure one trigger's signals for the champion ``model`` on ``upload``.

    Parameters
    ----------
    model
        The champion.
    upload
        The new interactions (any columns; the four named ones are read). Purchases are rows whose event
        type is one of the model's target event types (every row when the upload has no event types).
    histories
        ``histories[user]``: items the user interacted with since the champion's training and before
        the upload; the champion scores with them (see :meth:`Recommender.recommend`).
    days_since_training, interactions_since_training, data_drift
        Recorded as given (see :class:`TriggerSignals`).
    period_days
        Days the upload covers; ``None``: its time span, at least 1 day.
    k, seed
        List length scored and the bootstrap's seed.
    seen
        Per user, items never recommended nor scored (default: the model's known purchases plus ``histories``).
    challenger_gain
        Recorded as given: a :func:`measure_challenger_gain` result, or ``None`` when no challenger was fitted.

    Example
    -------
    >>> from datetime import datetime, timezone
    >>> day = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> train = pa.table({"user_id": ["a", "a", "b", "b"], "item_id": ["x", "y", "x", "y"],
    ...                   "event_time": [day] * 4})
    >>> champion = Recommender.fit(train)
    >>> upload = pa.table({"user_id": ["a", "c"], "item_id": ["z", "x"], "event_time": [day] * 2,
    ...                    "event_type": ["purchase", "purchase"]})
    >>> signals = measure_signals(champion, upload, histories=None, days_since_training=7,
    ...                           interactions_since_training=2, data_drift=None)
    >>> signals.accuracy.users, signals.accuracy.ndcg_at_10, signals.item_novelty, signals.user_novelty
    (1, 0.0, 0.5, 0.5)
    >>> measure_signals(champion, upload.slice(1), histories=None, days_since_training=7,
    ...                 interactions_since_training=1, data_drift=None).accuracy.reason
    'accuracy not measurable: no returning users among the buyers'
    """
    columns = ColumnMapping(user_col=user_col, item_col=item_col, time_col=time_col, event_type_col=event_col or None)
    table = normalise_interactions(upload, columns)
    if period_days is None:
        period_days = _span_days(table)
    purchases = target_rows(table, model.config.target_event_types)
    accuracy = measure_accuracy(
        model, holdout_items(table, model.config.target_event_types), histories=histories, seen=seen, k=k, seed=seed
    )
    return TriggerSignals(
        period_days=float(period_days),
        accuracy=accuracy,
        item_novelty=_novelty(purchases, ITEM, set(model.item_ids.tolist()).__contains__),
        user_novelty=_novelty(purchases, USER, model.knows),
        days_since_training=float(days_since_training),
        interactions_since_training=int(interactions_since_training),
        data_drift=data_drift,
        challenger_gain=challenger_gain,
    )


def _span_days(table: pa.Table) -> float:
    if table.num_rows == 0:
        return 1.0
    micros = table.column(TIME).cast(pa.int64())
    span = (pc.max(micros).as_py() - pc.min(micros).as_py()) / 1_000_000 / _SECONDS_PER_DAY
    return max(1.0, span)
