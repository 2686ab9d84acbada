"""The A/B verdict from concurrent counts: ``promote``, ``continue`` or ``rollback``, with its evidence.

One judgement serves the pipeline's AnalyseAB step and ``driftloop ab --counts``. It compares the
variants only within strata where both served at once (``StratifiedComparison``), judges the combined
z against a boundary that stays valid however often the rollout looks (``OBrienFlemingBoundary``), and
says how much power the test has: the smallest lift it can detect now and by its end, and how many
more requests it needs to detect ``minimum_lift`` with the target power.

Life of a rollout, with stages 10, 50, 100 (test stages 10 and 50):

* too few samples: wait at the stage (``continue`` to the same stage), roll back after ``max_waits``;
* significantly worse at any look: ``rollback``;
* significantly better: at the last test stage ``promote`` (the move to 100 % is the promotion), at an
  earlier stage move on;
* an earlier test stage moves on once both variants have ``min_samples_per_variant`` samples in it;
* the last test stage waits until a boundary is crossed, and rolls back at the horizon: after
  ``max_waits`` waits, or once the test has the information to detect ``minimum_lift`` with the
  target power (what "no significant win" means then is "no lift of ``minimum_lift`` or more").

A test that cannot reach the target power at ``minimum_lift`` by its end still runs (it can detect
larger lifts), and every verdict's reason says so from the first stage on, with what it would need.
Bad input never promotes: it rolls back with the problem as the reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from driftloop.errors import ConfigurationError, InvalidInputError
from driftloop.traffic.sequential import OBrienFlemingBoundary
from driftloop.traffic.stages import TrafficPlan
from driftloop.traffic.stratified import StratifiedComparison, StratifiedEstimate, Stratum

Action = Literal["continue", "promote", "rollback"]
ACTIONS: tuple[Action, ...] = ("continue", "promote", "rollback")
METHOD = "stratified difference z, O'Brien-Fleming alpha spending (Lan-DeMets)"


@dataclass(frozen=True)
class ABTestConfig:
    """How an A/B rollout is judged.

    Parameters
    ----------
    alpha
        Chance of promoting an equal challenger over the whole rollout (and, separately, of rolling
        one back for converting worse), in (0, 0.5).
    minimum_lift
        The smallest relative conversion lift worth detecting (0.05 = 5 % better); the test's power
        and length are planned for it.
    power
        Chance the test should have of detecting ``minimum_lift``, in (0, 1).
    min_samples_per_variant
        Samples each variant needs before anything is judged, and in an earlier test stage before the
        rollout moves on.
    max_waits
        Bake waits per stage.
    max_error_rate
        Largest share of the challenger's requests that may fail (guardrail).
    max_latency_p95_ms
        Largest 95th percentile of the challenger's latency, in milliseconds (guardrail).
    min_guardrail_requests
        Requests the challenger must have served before the guardrails are judged.

    Example
    -------
    >>> from driftloop.traffic.judgement import ABTestConfig
    >>> ABTestConfig(minimum_lift=0.10).power
    0.8
    >>> ABTestConfig(alpha=0.5)
    Traceback (most recent call last):
    ...
    driftloop.errors.ConfigurationError: alpha must be in (0, 0.5), got 0.5
    """

    alpha: float = 0.05
    minimum_lift: float = 0.05
    power: float = 0.8
    min_samples_per_variant: int = 500
    max_waits: int = 24
    max_error_rate: float = 0.02
    max_latency_p95_ms: float = 500.0
    min_guardrail_requests: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ConfigurationError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if not math.isfinite(self.minimum_lift) or not self.minimum_lift > 0:
            raise ConfigurationError(f"minimum_lift must be a positive number, got {self.minimum_lift}")
        if not 0 < self.power < 1:
            raise ConfigurationError(f"power must be in (0, 1), got {self.power}")
        if self.min_samples_per_variant < 1:
            raise ConfigurationError("min_samples_per_variant must be at least 1")
        if self.max_waits < 0:
            raise ConfigurationError("max_waits must not be negative")
        if not 0 <= self.max_error_rate <= 1:
            raise ConfigurationError(f"max_error_rate must be in [0, 1], got {self.max_error_rate}")
        if not self.max_latency_p95_ms > 0:
            raise ConfigurationError(f"max_latency_p95_ms must be positive, got {self.max_latency_p95_ms}")
        if self.min_guardrail_requests < 1:
            raise ConfigurationError("min_guardrail_requests must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ABVerdict:
    """What to do next, and why. ``next_stage_index`` is the stage to run next (the same one to wait
    there); None after ``promote`` and ``rollback``. ``waits`` is the wait count that stage starts with."""

    action: Action
    reason: str
    stage_index: int | None
    next_stage_index: int | None
    waits: int
    test: dict[str, Any] | None = None
    interval: dict[str, Any] | None = None
    power: dict[str, Any] | None = None
    strata: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ABJudge:
    """Judge an A/B rollout from concurrent strata.

    Parameters
    ----------
    plan
        The stages (and holdback); test stages are those where both variants serve.
    config
        Levels, minimum lift, sample and wait limits.

    Example
    -------
    >>> from driftloop.traffic.judgement import ABJudge, ABTestConfig
    >>> from driftloop.traffic.stages import TrafficPlan
    >>> judge = ABJudge(TrafficPlan((10, 50, 100)), ABTestConfig(minimum_lift=0.10))
    >>> counts = [{"stage": 0, "champion": {"served": 3600, "conversions": 1080},
    ...            "challenger": {"served": 400, "conversions": 132}},
    ...           {"stage": 1, "champion": {"served": 2000, "conversions": 600},
    ...            "challenger": {"served": 2000, "conversions": 680}}]
    >>> verdict = judge.judge_counts(counts)
    >>> verdict.action, round(verdict.test["relative_lift"], 3)
    ('promote', 0.124)
    >>> judge.judge_counts([{"stage": 0, "champion": {"served": 10, "conversions": 11},
    ...                      "challenger": {"served": 10, "conversions": 1}}]).reason
    'bad input: stratum 0: champion 11 conversions out of 10 served'

    References
    ----------
    See ``driftloop.traffic.stratified`` (Mantel and Haenszel 1959; Agresti 2013) and ``driftloop.traffic.sequential``
    (Lan and DeMets 1983; Jennison and Turnbull 2000).
    """

    def __init__(self, plan: TrafficPlan, config: ABTestConfig | None = None) -> None:
        if not isinstance(plan, TrafficPlan):
            raise ConfigurationError(f"plan must be a TrafficPlan, got {type(plan).__name__}")
        self.plan = plan
        self.config = config or ABTestConfig()
        self.boundary = OBrienFlemingBoundary(self.config.alpha)

    def judge_counts(self, counts: Any, stage_index: int | None = None, waits: int = 0,
                     requests_per_wait: float | None = None) -> ABVerdict:
        """Like ``judge`` from the documented JSON shape (a list of strata); bad input rolls back."""
        try:
            if not isinstance(counts, list):
                raise InvalidInputError(f"counts must be a JSON list of strata, got {type(counts).__name__}")
            strata = [Stratum.from_dict(item, position) for position, item in enumerate(counts)]
        except InvalidInputError as error:
            return self._rejected(str(error), stage_index, waits)
        return self.judge(strata, stage_index, waits, requests_per_wait)

    def judge(self, strata: Sequence[Stratum], stage_index: int | None = None, waits: int = 0,
              requests_per_wait: float | None = None) -> ABVerdict:
        """``stage_index``: the stage now running (default: the latest stratum's); ``waits``: how often it
        already waited; ``requests_per_wait``: requests served per bake now, to project the test's end."""
        config, plan = self.config, self.plan
        if stage_index is None:
            stage_index = max((s.stage_index for s in strata), default=plan.test_stage_indices[0])
        problem = self._problem(strata, stage_index, waits, requests_per_wait)
        if problem:
            return self._rejected(problem, stage_index if stage_index in plan.test_stage_indices else None, waits)
        listed = [s.to_dict() for s in strata]

        def verdict(action: Action, reason: str, next_stage: int | None = None, next_waits: int = 0,
                    **evidence: Any) -> ABVerdict:
            return ABVerdict(action, reason, stage_index, next_stage, next_waits, strata=listed, **evidence)

        def wait_or_give_up(shortfall: str, **evidence: Any) -> ABVerdict:
            if waits >= config.max_waits:
                return verdict("rollback", f"{shortfall} after {waits} waits at stage {stage_index}", **evidence)
            return verdict("continue", f"waiting at stage {stage_index}: {shortfall}", stage_index, waits + 1,
                           **evidence)

        if not strata:
            return wait_or_give_up("no window yet in which both variants served")
        estimate = StratifiedComparison(strata).estimate()
        short = [f"{name} has {n}/{config.min_samples_per_variant} samples" for name, n in (
            ("champion", estimate.champion_samples), ("challenger", estimate.challenger_samples))
            if n < config.min_samples_per_variant]
        if short or estimate.information == 0:
            return wait_or_give_up("; ".join(short) or "no conversions yet, so nothing to compare")

        power = self._power(estimate, stage_index, waits, requests_per_wait)
        horizon = power["horizon_information"]
        look = self.boundary.look(estimate.z, estimate.information, horizon)
        low, high = self.boundary.interval(estimate.difference, estimate.information, horizon)
        test = {"method": METHOD, **estimate.to_dict(), **look.to_dict(), "alpha": config.alpha}
        interval = {"difference_low": low, "difference_high": high, "level": 1 - 2 * config.alpha,
                    "kind": "repeated confidence interval"}
        evidence = {"test": test, "interval": interval, "power": power}
        summary = _describe(estimate, look.critical_z, low, high)
        last = stage_index == plan.last_test_stage_index
        if look.crossed_lower:
            return verdict("rollback", f"challenger converts significantly worse: {summary}", **evidence)
        if look.crossed_upper and last:
            return verdict("promote", f"challenger converts significantly better at the last test stage "
                           f"({plan.challenger_percent(stage_index)}%): {summary}", **evidence)
        if look.crossed_upper:
            return verdict("continue", f"challenger significantly better at stage {stage_index}, moving on: "
                           f"{summary}", self._next_test_stage(stage_index), **evidence)
        if look.final or (last and waits >= config.max_waits):
            return verdict("rollback", f"no significant win by the end of the test ({power['ended_by']}): "
                           f"{summary}", **evidence)
        note = f"; {power['warning']}" if power.get("warning") else ""
        if last:
            return verdict("continue", f"waiting at stage {stage_index}, no boundary crossed yet: {summary}{note}",
                           stage_index, waits + 1, **evidence)
        in_stage = StratifiedComparison(s for s in strata if s.stage_index == stage_index).estimate()
        if min(in_stage.champion_samples, in_stage.challenger_samples) >= config.min_samples_per_variant:
            return verdict("continue", f"stage {stage_index} has its samples, moving on: {summary}{note}",
                           self._next_test_stage(stage_index), **evidence)
        return wait_or_give_up(
            f"stage {stage_index} has {in_stage.champion_samples} champion and {in_stage.challenger_samples} "
            f"challenger samples of {config.min_samples_per_variant} each: {summary}{note}", **evidence)

    # -- parts ------------------------------------------------------------------------------------------
    def _problem(self, strata: Sequence[Stratum], stage_index: int, waits: int,
                 requests_per_wait: float | None) -> str | None:
        tests = self.plan.test_stage_indices
        described = ", ".join(f"{i} ({self.plan.challenger_percent(i)}%)" for i in tests)
        if isinstance(waits, bool) or not isinstance(waits, int) or waits < 0:
            return f"waits must be a whole number >= 0, got {waits!r}"
        if requests_per_wait is not None and not (math.isfinite(requests_per_wait) and requests_per_wait >= 0):
            return f"requests per wait must be a number >= 0, got {requests_per_wait!r}"
        if stage_index not in tests:
            return f"unknown stage {stage_index}: the test stages of {list(self.plan.stages)} are {described}"
        for position, stratum in enumerate(strata):
            if not isinstance(stratum, Stratum):
                return f"stratum {position} is not a Stratum"
            if stratum.stage_index not in tests or stratum.stage_index > stage_index:
                return (f"stratum {position}: unknown stage {stratum.stage_index}: the test stages are {described}"
                        + (f" and the test is at stage {stage_index}" if stratum.stage_index in tests else ""))
            if not stratum.concurrent:
                idle = "champion" if stratum.champion.served == 0 else "challenger"
                return f"stratum {position}: the {idle} served nothing, so it compares nothing"
        return None

    def _rejected(self, problem: str, stage_index: int | None, waits: int) -> ABVerdict:
        return ABVerdict("rollback", f"bad input: {problem}", stage_index, None, waits if isinstance(waits, int)
                         and not isinstance(waits, bool) else 0)

    def _next_test_stage(self, stage_index: int) -> int:
        tests = self.plan.test_stage_indices
        return tests[tests.index(stage_index) + 1]

    def _information_per_request(self, stage_index: int, base_variance: float) -> float:
        share = self.plan.challenger_percent(stage_index) / 100
        return share * (1 - share) / base_variance

    def _power(self, estimate: StratifiedEstimate, stage_index: int, waits: int,
               requests_per_wait: float | None) -> dict[str, Any]:
        """The test's horizon and what it can detect. Without ``requests_per_wait`` the horizon is the
        information needed to detect ``minimum_lift``; with it, also at most the end of the rollout."""
        config, boundary, plan = self.config, self.boundary, self.plan
        information, base_rate = estimate.information, estimate.champion_rate
        # A champion that never converted gives no rate to be 5 % better than; plan on both variants' rate.
        samples = estimate.champion_samples + estimate.challenger_samples
        planning_rate = base_rate if base_rate > 0 else (
            estimate.champion_rate * estimate.champion_samples + estimate.challenger_rate * estimate.challenger_samples
        ) / samples
        effect = config.minimum_lift * planning_rate
        needed = boundary.information_needed(effect, config.power) if effect > 0 else math.inf
        last = plan.last_test_stage_index
        per_request = self._information_per_request(last, estimate.base_variance)
        at_end = None
        if requests_per_wait:  # no traffic in the latest bakes says nothing about the end: plan by MinimumLift
            bakes = max(0, config.max_waits - waits) if stage_index == last else config.max_waits + 1
            at_end = information + bakes * requests_per_wait * per_request
        horizon = max(information, min(needed, at_end if at_end is not None else needed))
        ended_by = ("max waits reached" if at_end is not None and at_end <= needed
                    else f"information to detect a {config.minimum_lift:.1%} lift reached")

        def relative(difference: float) -> float | None:
            return difference / base_rate if base_rate > 0 else None

        requests_needed = max(0.0, needed - information) / per_request if math.isfinite(needed) else None
        waits_ratio = requests_needed / requests_per_wait if requests_per_wait and requests_needed is not None else None
        # a vanishing (but positive) traffic per bake needs more waits than any number: say none
        waits_needed = math.ceil(waits_ratio) if waits_ratio is not None and math.isfinite(waits_ratio) else None
        power_at_end = boundary.power(effect, at_end) if at_end is not None and effect > 0 else None
        report: dict[str, Any] = {
            "target_power": config.power,
            "minimum_lift": config.minimum_lift,
            "minimum_detectable_lift_now": relative(boundary.minimum_detectable_effect(information, config.power)),
            "minimum_detectable_lift_at_end": (relative(boundary.minimum_detectable_effect(at_end, config.power))
                                               if at_end is not None else None),
            "power_at_minimum_lift_at_end": power_at_end,
            "information": information,
            "information_needed": needed,
            "information_at_end": at_end,
            "horizon_information": horizon,
            "requests_needed": None if requests_needed is None else math.ceil(requests_needed),
            "requests_needed_at_percent": plan.challenger_percent(last),
            "requests_per_wait": requests_per_wait,
            "waits_needed": waits_needed,
            "ended_by": ended_by,
            "underpowered": None if power_at_end is None else power_at_end < config.power,
        }
        if report["underpowered"]:
            waits_text = "countless" if waits_needed is None else waits_needed
            report["warning"] = (
                f"underpowered: by the end of the test it detects a lift of "
                f"{_percent(report['minimum_detectable_lift_at_end'])} with {config.power:.0%} power, not MinimumLift "
                f"{config.minimum_lift:.1%} ({power_at_end:.0%} power); that needs {report['requests_needed']} more "
                f"requests at {report['requests_needed_at_percent']}% ({waits_text} waits at "
                f"{requests_per_wait:.0f} requests each; MaxBakeWaits is {config.max_waits})")
        return report


def _percent(lift: float | None) -> str:
    return "n/a (the champion never converted)" if lift is None else f"{lift:.1%}"


def _describe(estimate: StratifiedEstimate, critical_z: float, low: float, high: float) -> str:
    lift = "n/a" if estimate.relative_lift is None else f"{estimate.relative_lift:+.2%}"
    return (f"conversion {estimate.champion_rate:.4f} -> {estimate.challenger_rate:.4f} over {estimate.strata} "
            f"strata (relative lift {lift}, z={estimate.z:.2f} vs boundary ±{critical_z:.2f}, "
            f"difference in [{low:+.4f}, {high:+.4f}])")


def load_counts(text: str) -> Any:
    """The ``--counts`` file's JSON; a file that is not JSON raises InvalidInputError."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"not JSON: {error}") from None
