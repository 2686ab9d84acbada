"""The retrain decision: one small object per model, updated at every trigger, persisted between them.

Every policy estimates the same things from the same signals, so every decision carries its money
whichever rule made it. Staleness is measured in *missed days*: the days of data between the end of the
champion's training data and a given moment (a fresh model has missed none).

- **Shortfall** (NDCG@10 a fresh model would add) is the largest of three measurable lower bounds:

  1. *measured gains of retraining*: the NDCG@10 a newer model gained over an older one on the same
     purchases, per day of data the older one had missed there, with its standard error. Two kinds:
     the challenger measured at this trigger (``signals.challenger_gain``: a model fitted on all the
     data up to a cut against the champion on the purchases after it, see
     :func:`driftloop.decision.signals.measure_challenger_gain`), and gains past retrains delivered
     (:meth:`RetrainPolicy.observe_gain`: on the upload after the retrain, or
     ``retrained(realised_gain=...)`` from the retrain's offline evaluation). Staleness is taken to grow
     linearly with missed days, so the bound is the gain per missed day x missed days. The gain per day
     is a normal-normal posterior mean: ``prior_gain_per_day`` (one point per month, give or take
     ``prior_gain_sd_per_day``, one point) combined with the last ``memory`` measured gains, each weighed
     by its precision (1 / standard error squared). So the prior decides until something has been
     measured, and a gain measured on 20 users moves the estimate far less than one on 700;
  2. *novelty* (for the next period only): the share of the upload's purchases whose item the champion
     never saw. It cannot recommend them at all, while a model retrained on this upload knows them, so
     a fresh model that scores them like the rest gains that share of the champion's accuracy;
  3. *measured decline*: the champion's accuracy on its first upload (when it had missed no data)
     minus the upper end of today's 95% interval (zero unless the decline is clear of sampling noise).

- **Staleness cost** ``cost.staleness_cost(shortfall, days)``: each trigger adds the upload's (its
  shortfall at the missed days when the upload began) to the amount accumulated since training; the
  decision also counts the *next* period's if the champion is kept (its shortfall at the missed days
  by the end of this upload; the next period is assumed to last as long as this upload), since that is
  the cost a keep decision commits to;
- **retraining cost** is ``cost.retraining_cost`` of the recent jobs' measured durations.

Rules: ``auto`` (:class:`CostAwareRetrainPolicy`) retrains when the staleness cost accumulated since
training, with the next period's, reaches the retraining cost (CARA's cumulative threshold); ``drift``
(:class:`DriftRetrainPolicy`) when the data-drift check says ``retrain``; ``schedule``
(:class:`ScheduleRetrainPolicy`) when the champion is ``every_days`` old.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from driftloop.decision.cost import RetrainCostModel
from driftloop.decision.signals import TriggerSignals
from driftloop.errors import ConfigurationError, InvalidInputError

DEFAULT_PRIOR_GAIN_PER_DAY = 0.01 / 30  # one NDCG@10 point per month of age
DEFAULT_MEMORY = 5
_Z95 = 1.96
_GAIN_ERROR_FLOOR = 0.001


@dataclass(frozen=True)
class RetrainDecision:
    """One trigger's decision with everything needed to recompute it (see :meth:`to_dict`)."""

    retrain: bool
    policy: str
    reasons: list[str]
    expected_gain: float | None
    gain_ci: tuple[float, float] | None
    staleness_cost: float
    retraining_cost: float
    signals: TriggerSignals
    parameters: dict[str, Any]
    gain_sources: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrain": self.retrain,
            "policy": self.policy,
            "reasons": list(self.reasons),
            "expected_gain": self.expected_gain,
            "gain_ci": list(self.gain_ci) if self.gain_ci is not None else None,
            "gain_sources": dict(self.gain_sources),
            "staleness_cost": self.staleness_cost,
            "retraining_cost": self.retraining_cost,
            "signals": self.signals.to_dict(),
            "parameters": dict(self.parameters),
        }


@dataclass(frozen=True)
class _GainEstimate:
    expected: float
    interval: tuple[float, float]
    sources: dict[str, float | None]
    source: str


class RetrainPolicy:
    """Base of the retrain policies: the life cycle ``update`` (one trigger) -> decision, then
    ``retrained`` when the retrain happened; ``state``/``from_state`` persist it between triggers.

    Parameters
    ----------
    cost
        Prices both sides of the decision.
    prior_gain_per_day
        NDCG@10 a fresh model is assumed to gain per missed day before retrains have measured it (>= 0;
        default one point per 30 days).
    prior_gain_sd_per_day
        The prior's standard deviation (> 0; default ``None``: as large as the prior, or one point per
        month when the prior is 0): how much measured gains it takes to outweigh it.
    memory
        How many recent realised gains and job durations are averaged (>= 1).
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        cost: RetrainCostModel,
        *,
        prior_gain_per_day: float = DEFAULT_PRIOR_GAIN_PER_DAY,
        prior_gain_sd_per_day: float | None = None,
        memory: int = DEFAULT_MEMORY,
    ) -> None:
        if not isinstance(cost, RetrainCostModel):
            raise ConfigurationError(f"cost must be a RetrainCostModel, not {type(cost).__name__}")
        if prior_gain_sd_per_day is None:
            prior_gain_sd_per_day = prior_gain_per_day or DEFAULT_PRIOR_GAIN_PER_DAY
        for name, value, positive in (
            ("prior_gain_per_day", prior_gain_per_day, False),
            ("prior_gain_sd_per_day", prior_gain_sd_per_day, True),
        ):
            number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not number or value < 0 or (positive and value == 0):
                bound = "> 0" if positive else ">= 0"
                raise ConfigurationError(f"{name} must be a number {bound} (NDCG@10 per day), not {value!r}")
        if not isinstance(memory, int) or memory < 1:
            raise ConfigurationError(f"memory must be an integer >= 1, not {memory!r}")
        self.cost = cost
        self.prior_gain_per_day = float(prior_gain_per_day)
        self.prior_gain_sd_per_day = float(prior_gain_sd_per_day)
        self.memory = memory
        self.accumulated_staleness = 0.0
        self.gain_rates: list[float] = []
        self.gain_rate_errors: list[float] = []
        self.job_seconds: list[float] = []
        self.reference_ndcg: float | None = None
        self.last_age_days: float | None = None
        self.triggers_since_training = 0

    # -- the rule each subclass defines ----------------------------------------------------------
    def _rule(self, signals: TriggerSignals, staleness_cost: float, retraining_cost: float) -> tuple[bool, str]:
        raise NotImplementedError

    def parameters(self) -> dict[str, Any]:
        return {
            "cost": self.cost.to_dict(),
            "prior_gain_per_day": self.prior_gain_per_day,
            "prior_gain_sd_per_day": self.prior_gain_sd_per_day,
            "memory": self.memory,
        }

    # -- life cycle --------------------------------------------------------------------------------
    def update(self, signals: TriggerSignals) -> RetrainDecision:
        """Take one trigger's signals; return the decision with its reasons and numbers."""
        if not isinstance(signals, TriggerSignals):
            raise InvalidInputError(f"update takes TriggerSignals, not {type(signals).__name__}")
        accuracy = signals.accuracy
        if self.reference_ndcg is None and accuracy.measurable:
            self.reference_ndcg = accuracy.ndcg_at_10
        challenger = signals.challenger_gain
        if challenger is not None:
            self.observe_gain(
                challenger.gain, age_days=challenger.missed_days, standard_error=challenger.standard_error
            )
        missed_before = max(signals.days_since_training - signals.period_days, 0.0)
        observed = self._estimate_gain(signals, missed_before, next_period=False)
        self.accumulated_staleness += self.cost.staleness_cost(observed.expected, signals.period_days)
        self.last_age_days = missed_before if missed_before > 0 else signals.days_since_training
        self.triggers_since_training += 1
        estimate = self._estimate_gain(signals, signals.days_since_training, next_period=True)
        upcoming = self.cost.staleness_cost(estimate.expected, signals.period_days)
        staleness = self.accumulated_staleness + upcoming
        retraining_cost = self.cost.retraining_cost(self.job_seconds)
        retrain, headline = self._rule(signals, staleness, retraining_cost)
        reasons = [
            headline,
            f"expected gain of a fresh model {estimate.expected:.4f} NDCG@10 (interval "
            f"{estimate.interval[0]:.4f}..{estimate.interval[1]:.4f}), from {estimate.source}",
            f"staleness cost ${staleness:.4f}: ${self.accumulated_staleness:.4f} accumulated since training "
            f"(this upload ${self.cost.staleness_cost(observed.expected, signals.period_days):.4f}) plus "
            f"${upcoming:.4f} for the next {signals.period_days:g} days if kept; "
            f"retraining cost ${retraining_cost:.4f}",
        ]
        if challenger is not None:
            reasons.append(
                f"a challenger fitted on {challenger.missed_days:g} more days of data gained {challenger.gain:+.4f} "
                f"NDCG@10 over the champion ({challenger.ci_low:+.4f}..{challenger.ci_high:+.4f}, "
                f"{challenger.users} returning users)"
            )
        if accuracy.measurable:
            reasons.append(
                f"champion NDCG@10 on the upload {accuracy.ndcg_at_10:.4f} "
                f"({accuracy.ci_low:.4f}..{accuracy.ci_high:.4f}, {accuracy.users} returning users)"
            )
        else:
            reasons.append(f"{accuracy.reason}; the decision rests on the other signals")
        return RetrainDecision(
            retrain=retrain,
            policy=self.name,
            reasons=reasons,
            expected_gain=estimate.expected,
            gain_ci=estimate.interval,
            staleness_cost=staleness,
            retraining_cost=retraining_cost,
            signals=signals,
            parameters={**self.parameters(), "state_before_retrain": self.state()},
            gain_sources={**estimate.sources, "observed_shortfall": observed.expected},
        )

    def retrained(
        self,
        *,
        job_seconds: float | None = None,
        realised_gain: float | None = None,
        age_days: float | None = None,
        gain_standard_error: float | None = None,
    ) -> None:
        """The champion was replaced: reset the accumulated cost and remember what the retrain showed.

        ``job_seconds``: the training job's measured duration. ``realised_gain``, ``age_days`` and
        ``gain_standard_error``: a gain the retrain's evaluation measured (see :meth:`observe_gain`);
        ``age_days`` defaults to the days of data the replaced champion had missed when the last
        trigger's upload began, or to its age at that trigger when the upload began right after training
        (pass it: e.g. the champion's age minus the evaluation's hold-out days)."""
        if job_seconds is not None and math.isfinite(job_seconds) and job_seconds >= 0:
            self.job_seconds = [*self.job_seconds, float(job_seconds)][-self.memory :]
        if realised_gain is not None:
            age = age_days if age_days is not None else self.last_age_days
            self.observe_gain(realised_gain, age_days=age, standard_error=gain_standard_error)
        self.accumulated_staleness = 0.0
        self.reference_ndcg = None
        self.last_age_days = None
        self.triggers_since_training = 0

    def observe_gain(
        self, realised_gain: float, *, age_days: float | None, standard_error: float | None = None
    ) -> None:
        """A gain a retrain delivered: NDCG@10 of the new model minus the model it replaced, on the same
        purchases (the upload after the retrain, or the retrain's held-out data), where the replaced
        model had missed ``age_days`` days of data. ``standard_error`` of the gain (paired over users;
        ``None``: as uncertain as the prior); it is floored at a tenth of a point. Ignored without a
        positive age or a finite gain."""
        if not math.isfinite(realised_gain) or age_days is None or not math.isfinite(age_days) or age_days <= 0:
            return
        if standard_error is None or not math.isfinite(standard_error):
            rate_error = self.prior_gain_sd_per_day
        else:
            rate_error = max(standard_error, _GAIN_ERROR_FLOOR) / age_days
        self.gain_rates = [*self.gain_rates, float(realised_gain) / age_days][-self.memory :]
        self.gain_rate_errors = [*self.gain_rate_errors, rate_error][-self.memory :]

    def state(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "accumulated_staleness": self.accumulated_staleness,
            "gain_rates": list(self.gain_rates),
            "gain_rate_errors": list(self.gain_rate_errors),
            "job_seconds": list(self.job_seconds),
            "reference_ndcg": self.reference_ndcg,
            "last_age_days": self.last_age_days,
            "triggers_since_training": self.triggers_since_training,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, **params: Any) -> RetrainPolicy:
        policy = cls(**params)
        if not state:
            return policy
        if not isinstance(state, dict):
            raise InvalidInputError(f"retrain policy state must be a JSON object, not {type(state).__name__}")
        if state.get("policy") not in (None, cls.name):
            raise ConfigurationError(f"state of policy {state.get('policy')!r} cannot restore a {cls.name!r} policy")
        try:
            policy.accumulated_staleness = float(state.get("accumulated_staleness", 0.0))
            policy.gain_rates = [float(rate) for rate in state.get("gain_rates", [])][-policy.memory :]
            errors = [float(error) for error in state.get("gain_rate_errors", [])][-policy.memory :]
            policy.gain_rate_errors = errors + [policy.prior_gain_sd_per_day] * (len(policy.gain_rates) - len(errors))
            policy.job_seconds = [float(seconds) for seconds in state.get("job_seconds", [])][-policy.memory :]
            reference = state.get("reference_ndcg")
            policy.reference_ndcg = None if reference is None else float(reference)
            age = state.get("last_age_days")
            policy.last_age_days = None if age is None else float(age)
            policy.triggers_since_training = int(state.get("triggers_since_training", 0))
        except (TypeError, ValueError) as error:
            raise InvalidInputError(f"retrain policy state is malformed: {error}") from None
        return policy

    # -- the shared estimate -----------------------------------------------------------------------
    def gain_per_day(self) -> tuple[float, float, float]:
        """NDCG@10 a fresh model gains per missed day: the precision-weighted mean of the prior and the
        recent measured gains, and its 95% interval."""
        rates = [self.prior_gain_per_day, *self.gain_rates]
        weights = [1.0 / error**2 for error in (self.prior_gain_sd_per_day, *self.gain_rate_errors)]
        total = sum(weights)
        mean = sum(rate * weight for rate, weight in zip(rates, weights, strict=True)) / total
        half_width = _Z95 / math.sqrt(total)
        return mean, mean - half_width, mean + half_width

    def _estimate_gain(self, signals: TriggerSignals, missed_days: float, *, next_period: bool) -> _GainEstimate:
        """The shortfall of the champion after ``missed_days`` of data; novelty counts for the next period."""
        rate, lowest, highest = self.gain_per_day()
        history = max(rate, 0.0) * missed_days
        candidates: dict[str, tuple[float, tuple[float, float]]] = {
            "measured gains of retraining": (
                history,
                (max(lowest, 0.0) * missed_days, max(highest, 0.0) * missed_days),
            )
        }
        accuracy = signals.accuracy
        base = accuracy.ndcg_at_10 if accuracy.measurable else self.reference_ndcg
        novelty = None
        if next_period and signals.item_novelty is not None and base is not None:
            novelty = signals.item_novelty * base
            candidates["novelty"] = (novelty, (novelty, novelty))
        decline = None
        if accuracy.measurable and self.reference_ndcg is not None:
            decline = max(self.reference_ndcg - accuracy.ci_high, 0.0)
            candidates["measured decline"] = (decline, (decline, max(self.reference_ndcg - accuracy.ci_low, 0.0)))
        source = max(candidates, key=lambda name: candidates[name][0])
        expected, interval = candidates[source]
        return _GainEstimate(
            expected=expected,
            interval=interval,
            sources={
                "gain_per_day": rate,
                "missed_days": missed_days,
                "measured_gains_of_retraining": history,
                "challenger_gain": None if signals.challenger_gain is None else signals.challenger_gain.gain,
                "novelty": novelty,
                "measured_decline": decline,
                "reference_ndcg": self.reference_ndcg,
            },
            source=source,
        )


class CostAwareRetrainPolicy(RetrainPolicy):
    """``auto``: retrain when the staleness cost accumulated since the champion was trained, with the
    next period's if it is kept, reaches the cost of retraining (CARA's cumulative threshold).

    With staleness growing linearly at ``g`` NDCG@10 points per missed day, valued ``v`` per point-day, the rule
    retrains about every ``sqrt(2 C / (g v))`` days for a retraining cost ``C``, close to the interval
    that minimises the average cost per day of the two (as the economic order quantity does): faster-
    ageing or more valuable models are retrained more often, slower-ageing ones less. Parameters as
    :class:`RetrainPolicy`.

    Example
    -------
    >>> from driftloop.decision.signals import AccuracyEstimate, TriggerSignals
    >>> policy = CostAwareRetrainPolicy(RetrainCostModel())  # $0.5 per point-day; a retrain costs $19.34
    >>> def month(age, ndcg=0.10):
    ...     accuracy = AccuracyEstimate(ndcg, ndcg - 0.01, ndcg + 0.01, 0.3, 500)
    ...     return TriggerSignals(30.0, accuracy, 0.0, 0.0, age, 10_000, "warn")
    >>> [policy.update(month(age)).retrain for age in (30, 60)]   # one point per month (the prior)
    [False, True]
    >>> policy.retrained(job_seconds=100)
    >>> policy.observe_gain(-0.01, age_days=30, standard_error=0.002)   # that retrain did not pay, clearly
    >>> [policy.update(month(age)).retrain for age in (30, 60)]
    [False, False]
    >>> policy.update(month(90, ndcg=0.05)).reasons[1]   # a decline clear of the noise
    'expected gain of a fresh model 0.0400 NDCG@10 (interval 0.0400..0.0600), from measured decline'

    References
    ----------
    Mahadevan, A. & Mathioudakis, M. (2024). Cost-aware retraining for machine learning. Knowledge-Based
    Systems 293, 111610 (the cumulative-threshold rule, "CARA").
    """

    name = "auto"

    def _rule(self, signals: TriggerSignals, staleness_cost: float, retraining_cost: float) -> tuple[bool, str]:
        if staleness_cost >= retraining_cost:
            return True, (
                f"retrain: the staleness cost since training with the next period's (${staleness_cost:.2f}) "
                f"reaches the retraining cost (${retraining_cost:.2f})"
            )
        return False, (
            f"keep: the staleness cost since training with the next period's (${staleness_cost:.2f}) is below "
            f"the retraining cost (${retraining_cost:.2f})"
        )


class DriftRetrainPolicy(RetrainPolicy):
    """``drift``: retrain when driftloop's data-drift check (:class:`driftloop.drift.DriftPolicy`) says
    ``retrain`` (the backtest's strategy D). The money is estimated and recorded, not used.

    Example
    -------
    >>> from driftloop.decision.signals import AccuracyEstimate, TriggerSignals
    >>> policy = DriftRetrainPolicy(RetrainCostModel())
    >>> unmeasured = AccuracyEstimate.not_measurable("the upload has no purchases")
    >>> policy.update(TriggerSignals(7.0, unmeasured, None, None, 7.0, 10, "retrain")).retrain
    True
    """

    name = "drift"

    def _rule(self, signals: TriggerSignals, staleness_cost: float, retraining_cost: float) -> tuple[bool, str]:
        if signals.data_drift == "retrain":
            return True, "retrain: the data-drift check says retrain"
        if signals.data_drift is None:
            return False, "keep: the data-drift check did not run"
        return False, f"keep: the data-drift check says {signals.data_drift}"


class ScheduleRetrainPolicy(RetrainPolicy):
    """``schedule``: retrain when the champion is at least ``every_days`` old (as Amazon Personalize
    retrains weekly). Parameters as :class:`RetrainPolicy`, plus ``every_days`` (> 0, default 7).

    Example
    -------
    >>> from driftloop.decision.signals import AccuracyEstimate, TriggerSignals
    >>> policy = ScheduleRetrainPolicy(RetrainCostModel(), every_days=14)
    >>> unmeasured = AccuracyEstimate.not_measurable("the upload has no purchases")
    >>> [policy.update(TriggerSignals(7.0, unmeasured, None, None, age, 10, None)).retrain for age in (7, 14)]
    [False, True]
    """

    name = "schedule"

    def __init__(self, cost: RetrainCostModel, *, every_days: float = 7.0, **params: Any) -> None:
        super().__init__(cost, **params)
        if not isinstance(every_days, int | float) or not math.isfinite(every_days) or every_days <= 0:
            raise ConfigurationError(f"every_days must be a number of days > 0, not {every_days!r}")
        self.every_days = float(every_days)

    def parameters(self) -> dict[str, Any]:
        return {**super().parameters(), "every_days": self.every_days}

    def _rule(self, signals: TriggerSignals, staleness_cost: float, retraining_cost: float) -> tuple[bool, str]:
        age = f"the champion is {signals.days_since_training:g} days old (schedule: every {self.every_days:g})"
        if signals.days_since_training >= self.every_days:
            return True, f"retrain: {age}"
        return False, f"keep: {age}"


POLICIES: dict[str, type[RetrainPolicy]] = {
    CostAwareRetrainPolicy.name: CostAwareRetrainPolicy,
    DriftRetrainPolicy.name: DriftRetrainPolicy,
    ScheduleRetrainPolicy.name: ScheduleRetrainPolicy,
}


def make_policy(name: str, cost: RetrainCostModel, state: dict[str, Any] | None = None, **params: Any) -> RetrainPolicy:
    """The policy called ``name`` (``auto``, ``drift`` or ``schedule``), restored from ``state`` if given.

    >>> make_policy("auto", RetrainCostModel()).name
    'auto'
    >>> make_policy("sometimes", RetrainCostModel())
    Traceback (most recent call last):
    ...
    driftloop.errors.ConfigurationError: retrain policy must be one of ['auto', 'drift', 'schedule'], not 'sometimes'
    """
    if name not in POLICIES:
        raise ConfigurationError(f"retrain policy must be one of {list(POLICIES)}, not {name!r}")
    try:
        return POLICIES[name].from_state(state, cost=cost, **params)
    except TypeError as error:
        raise ConfigurationError(f"retrain policy {name!r}: {error}") from None
