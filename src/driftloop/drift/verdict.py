"""One decision from everything the drift step found: data drift, concept drift, the trigger and the
retrain policy's opinion.

The pure part of ``pipeline.drift``: the step reads the inputs, the drift report, the conversion check and
the policy, and this module says ``retrain``, ``warn`` or ``none`` with its reasons, deciding first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DATA_DRIFT_DECISIONS = ("none", "warn", "retrain")
DECISIONS = ("retrain", "warn", "none")


def trigger_reasons(trigger_type: str, detail: Mapping[str, Any], drift_violations: int = 0) -> tuple[str, ...]:
    """The reasons a trigger itself forces a retrain: a Model Monitor report with drift or model-quality
    violations, an alarm in ALARM, a person's forced request. Uploads and schedules force nothing.

    >>> trigger_reasons("manual", {"reason": "new catalogue"})
    ('retraining requested: new catalogue',)
    >>> trigger_reasons("monitor_report", {}, drift_violations=0)
    ()
    """
    if drift_violations < 0:
        raise ValueError(f"drift_violations must be >= 0, not {drift_violations}")
    if trigger_type == "monitor_report" and drift_violations:
        return (f"Model Monitor reported {drift_violations} drift or model-quality violations",)
    if trigger_type == "alarm":
        return (f"alarm {detail.get('alarm_name')} is in ALARM: {str(detail.get('state_reason', ''))[:200]}",)
    if trigger_type == "manual" and detail.get("force", True):
        return (f"retraining requested: {detail.get('reason', 'manual request')}",)
    return ()


@dataclass(frozen=True)
class PolicyOpinion:
    """The retrain policy's answer at this trigger (``$.drift.retrain``): its name, whether it retrains,
    and its deciding reason."""

    policy: str
    retrain: bool
    reason: str


@dataclass(frozen=True)
class Verdict:
    """``decision`` is ``retrain``, ``warn`` (the inputs drifted, a retrain does not pay yet) or ``none``;
    ``reasons`` put the deciding ones first; ``overridden_by`` names what retrains although the policy
    alone would keep the champion (empty otherwise)."""

    decision: str
    reasons: list[str]
    overridden_by: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DriftFindings:
    """What the drift step found for one trigger; ``verdict()`` combines it into one decision.

    A forcing reason (the trigger's, a first deployment, a detected conversion drop) retrains whatever
    the policy says, but only with new data to retrain on. Otherwise the policy decides, and data drift
    the policy does not retrain for is a ``warn``.

    Parameters
    ----------
    new_uploads
        Readable uploads the run would merge (>= 0).
    has_champion
        Whether a champion serves; without one, the first deployment is forced.
    forced
        The trigger's forcing reasons (``trigger_reasons``).
    data_drift
        The data drift report's decision (``none``, ``warn``, ``retrain``), ``None`` when nothing was
        compared (no champion or no new uploads).
    data_reasons
        The data drift report's reasons.
    policy
        The retrain policy's opinion; required with a champion and new uploads.
    concept_reason
        The conversion check's first reason, ``None`` when it did not run (no champion).
    concept_detected
        Whether it detected a conversion drop.

    Example
    -------
    >>> from driftloop.drift.verdict import DriftFindings, PolicyOpinion
    >>> keep = PolicyOpinion("auto", retrain=False, reason="expected gain 0.40 < cost 1.20")
    >>> findings = DriftFindings(new_uploads=2, has_champion=True, data_drift="warn", policy=keep,
    ...                          concept_reason="conversion steady")
    >>> verdict = findings.verdict()
    >>> verdict.decision, verdict.reasons[0]
    ('warn', 'auto policy: expected gain 0.40 < cost 1.20')
    >>> alarm = DriftFindings(new_uploads=2, has_champion=True, data_drift="none", policy=keep,
    ...                       forced=("alarm conversion-drop is in ALARM: ",))
    >>> alarm.verdict().decision, alarm.verdict().overridden_by
    ('retrain', ['alarm conversion-drop is in ALARM: '])
    >>> DriftFindings(new_uploads=2, has_champion=True, data_drift="none")
    Traceback (most recent call last):
    ...
    ValueError: a champion with new uploads needs the retrain policy's opinion
    """

    new_uploads: int
    has_champion: bool
    forced: Sequence[str] = ()
    data_drift: str | None = None
    data_reasons: Sequence[str] = ()
    policy: PolicyOpinion | None = None
    concept_reason: str | None = None
    concept_detected: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.new_uploads, int) or self.new_uploads < 0:
            raise ValueError(f"new_uploads must be an integer >= 0, not {self.new_uploads!r}")
        if self.data_drift not in (None, *DATA_DRIFT_DECISIONS):
            raise ValueError(f"data_drift must be one of {DATA_DRIFT_DECISIONS} or None, not {self.data_drift!r}")
        compared = self.has_champion and self.new_uploads > 0
        if compared and self.policy is None:
            raise ValueError("a champion with new uploads needs the retrain policy's opinion")
        if compared and self.data_drift is None:
            raise ValueError("a champion with new uploads needs the data drift report's decision")
        if self.concept_detected and not self.concept_reason:
            raise ValueError("a detected conversion drop needs its reason")
        if self.concept_reason is not None and not self.has_champion:
            raise ValueError("the conversion check needs a champion")

    def verdict(self) -> Verdict:
        forced = list(self.forced)
        concept = [self.concept_reason] if self.concept_detected else []
        overridden_by: list[str] = []
        policy_line: list[str] = []
        notes: list[str] = []
        if not self.has_champion:
            forced.append("no champion yet: first deployment")
            decision = "retrain" if self.new_uploads else "none"
        elif self.new_uploads:
            assert self.policy is not None  # checked at construction
            notes.extend(self.data_reasons)
            decision = "retrain" if self.policy.retrain else ("none" if self.data_drift == "none" else "warn")
            headline = f"{self.policy.policy} policy: {self.policy.reason}"
            if (forced or concept) and not self.policy.retrain:
                headline = f"retraining although the {headline} (alone it would keep the champion)"
                overridden_by = forced + concept
            policy_line.append(headline)
        else:
            decision = "none"
            notes.append("no new uploads to compare")
        if forced and self.new_uploads:
            decision = "retrain"
        elif forced:
            notes.append("a retrain was asked for, but there is no new data to retrain on")
        reasons = forced + policy_line + notes
        if concept:
            if self.new_uploads:
                decision = "retrain"
            else:
                reasons.append("the conversion drop asks for a retrain, but there is no new data to retrain on")
            reasons = concept + reasons
        elif self.concept_reason is not None:
            reasons.append(self.concept_reason)
        return Verdict(decision, reasons, overridden_by)
