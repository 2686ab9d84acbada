"""How often does the A/B judgement promote an equal model, roll one back, or find a real lift?

Simulates whole rollouts through the real ``ABJudge`` (the judgement the AnalyseAB step makes): each
bake serves ``requests_per_wait`` customers at the current stage's split, each bake is one stratum, the
judge looks after every bake and its verdict moves the rollout on, promotes or rolls back. The
champion converts at the scenario's rate at that time (``time`` counts bakes as hours), the challenger
at that rate times ``1 + lift``. Prints a Markdown table per profile and the requests a test needs for
80 % power. Usage::

    PYTHONPATH=src python benchmarks/ab_benchmark.py [--runs 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from driftloop.traffic.judgement import ABJudge, ABTestConfig
from driftloop.traffic.sequential import OBrienFlemingBoundary
from driftloop.traffic.stages import TrafficPlan
from driftloop.traffic.stratified import ArmCounts, Stratum

BASE = 0.30
ROOT = Path(__file__).resolve().parents[1]


def _template_defaults() -> dict[str, str]:
    """Default values of template.yaml's parameters (read as text: the template has CloudFormation tags)."""
    defaults, name = {}, None
    for line in (ROOT / "template.yaml").read_text().splitlines():
        if line.startswith("  ") and not line.startswith("   ") and line.rstrip().endswith(":"):
            name = line.strip()[:-1]
        elif name and line.strip().startswith("Default:"):
            defaults[name] = line.split(":", 1)[1].strip().strip('"')
        if line.startswith("Resources:") or line.startswith("Conditions:"):
            break
    return defaults


@dataclass(frozen=True)
class Profile:
    name: str
    stages: str
    config: ABTestConfig
    holdback: int
    requests_per_wait: int
    bake_hours: float

    @classmethod
    def from_parameters(cls, name: str, parameters: dict[str, str], requests_per_wait: int,
                        bake_hours: float | None = None) -> Profile:
        config = ABTestConfig(
            alpha=float(parameters["SignificanceLevel"]), minimum_lift=float(parameters["MinimumLift"]),
            min_samples_per_variant=int(parameters["MinSamplesPerVariant"]),
            max_waits=int(parameters["MaxBakeWaits"]))
        hours = float(parameters["BakeSeconds"]) / 3600 if bake_hours is None else bake_hours
        return cls(name, parameters["TrafficStages"], config, int(parameters.get("ABHoldbackPercent", 0)),
                   requests_per_wait, hours)


Scenario = Callable[[float, float, bool], float]  # (hours, fraction of the longest rollout, last stage) -> rate

SCENARIOS: dict[str, Scenario] = {
    "flat 30%": lambda hours, fraction, last: BASE,
    "rising 30 -> 33%": lambda hours, fraction, last: BASE + 0.03 * fraction,
    "falling 33 -> 30%": lambda hours, fraction, last: BASE + 0.03 - 0.03 * fraction,
    "last-stage bump 30 -> 34%": lambda hours, fraction, last: 0.34 if last else BASE,
    "day-of-week cycle (weekend +15%)": lambda hours, fraction, last: BASE * (
        1.15 if (hours // 24) % 7 >= 5 else 1.0),
}


WORSE = "rollback: worse"


def simulate(profile: Profile, scenario: Scenario, lift: float, rng: np.random.Generator) -> str:
    """One rollout's end: ``promote``, ``rollback: worse`` (the challenger converted significantly
    worse), ``rollback`` for any other reason (no win by the end, too few samples)."""
    plan = TrafficPlan.parse(profile.stages, profile.holdback)
    judge = ABJudge(plan, profile.config)
    longest = (profile.config.max_waits + 1) * len(plan.test_stage_indices)
    start_hour = rng.uniform(0, 24 * 7)
    strata: list[Stratum] = []
    stage, waits = plan.test_stage_indices[0], 0
    for look in range(longest + 1):
        hours = start_hour + look * profile.bake_hours
        rate = scenario(hours, look / longest, stage == plan.last_test_stage_index)
        share = plan.challenger_percent(stage) / 100
        challenger = int(rng.binomial(profile.requests_per_wait, share))
        champion = profile.requests_per_wait - challenger
        strata.append(Stratum(stage, ArmCounts(champion, int(rng.binomial(champion, rate))),
                              ArmCounts(challenger, int(rng.binomial(challenger, min(1.0, rate * (1 + lift)))))))
        verdict = judge.judge(strata, stage, waits, float(profile.requests_per_wait))
        if verdict.action == "rollback" and verdict.reason.startswith("challenger converts significantly worse"):
            return WORSE
        if verdict.action != "continue":
            return verdict.action
        stage, waits = verdict.next_stage_index, verdict.waits
    return "continue"


def requests_for_power(profile: Profile, lift: float) -> int:
    """Requests at the last test stage's split for 80 % power at ``lift`` (the earlier stages' samples
    not counted), at 30 % conversion."""
    plan = TrafficPlan.parse(profile.stages, profile.holdback)
    share = plan.challenger_percent(plan.last_test_stage_index) / 100
    needed = OBrienFlemingBoundary(profile.config.alpha).information_needed(BASE * lift, 0.8)
    return math.ceil(needed * BASE * (1 - BASE) / (share * (1 - share)))


def table(profile: Profile, runs: int, seed: int) -> str:
    lines = [f"### {profile.name}", "",
             f"Stages {profile.stages} (holdback {profile.holdback}%), {profile.requests_per_wait:,} requests per "
             f"bake, MinSamplesPerVariant {profile.config.min_samples_per_variant}, MaxBakeWaits "
             f"{profile.config.max_waits}, MinimumLift {profile.config.minimum_lift:.0%}, SignificanceLevel "
             f"{profile.config.alpha}; {runs} rollouts per cell.", "",
             "| conversion over time | equal: false promotion | equal: rolled back as worse | +5%: promoted "
             "| +10%: promoted |", "|---|---|---|---|---|"]
    for number, (name, scenario) in enumerate(SCENARIOS.items()):
        cells = []
        for lift in (0.0, 0.05, 0.10):
            rng = np.random.default_rng([seed, number, int(lift * 100)])
            outcomes = [simulate(profile, scenario, lift, rng) for _ in range(runs)]
            promoted = outcomes.count("promote") / runs
            if lift == 0:
                cells += [_rate(promoted, runs), _rate(outcomes.count(WORSE) / runs, runs)]
            else:
                cells.append(_rate(promoted, runs))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    needed = {lift: requests_for_power(profile, lift) for lift in (0.05, 0.10)}
    lines += ["", "Requests at the last test stage for 80 % power at 30 % conversion: " + ", ".join(
        f"+{lift:.0%}: {n:,} ({math.ceil(n / profile.requests_per_wait)} bakes at this traffic)"
        for lift, n in needed.items()) + ".", ""]
    return "\n".join(lines)


def _rate(value: float, runs: int) -> str:
    return f"{value:.3f} ± {1.96 * math.sqrt(max(value * (1 - value), 1 / runs) / runs):.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    defaults = _template_defaults()
    local = {**defaults, **{k: str(v) for k, v in tomllib.loads((ROOT / "local.toml").read_text())
                            ["parameters"].items()}}
    world = tomllib.loads((ROOT / "local.toml").read_text())["world"]
    # The 10 % stage moves on at its 4th bake (about 400 challenger samples), the 50 % stage ends at its 4th.
    reference = {**defaults, "MinSamplesPerVariant": "360", "MaxBakeWaits": "3"}
    profiles = [
        Profile.from_parameters("Issue reference: 4,000 requests at 10 %, then 4,000 at 50 %", reference, 1000, 1.0),
        Profile.from_parameters("Default parameters at 1,000 requests per hourly bake", defaults, 1000),
        Profile.from_parameters("Local profile (local.toml)", local,
                                int(float(world["requests_per_hour"]) * float(local["BakeSeconds"]) / 3600)),
    ]
    started = time.time()
    for profile in profiles:
        print(table(profile, args.runs, args.seed), flush=True)
    print(f"({time.time() - started:.0f} s; ± is the 95 % simulation error)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
