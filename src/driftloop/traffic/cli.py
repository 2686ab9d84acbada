"""``driftloop ab --counts FILE [--stages 10,50,100] [--json -]``: the pipeline's A/B verdict from your counts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from driftloop.console import ExitCode, add_json_option, fail, json_on_stdout, write_json
from driftloop.errors import DriftloopError, InvalidInputError
from driftloop.traffic.judgement import ABJudge, ABTestConfig, ABVerdict, load_counts
from driftloop.traffic.stages import TrafficPlan

COUNTS_SHAPE = ('[{"stage": 0, "champion": {"served": n, "conversions": c}, '
                '"challenger": {"served": n, "conversions": c}}, ...]')


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    defaults = ABTestConfig()
    parser = subparsers.add_parser(
        "ab",
        help="judge an A/B test from conversion counts: promote, continue or rollback",
        description="FILE is a JSON list of strata, one per window in which the traffic split did not change: "
        f"{COUNTS_SHAPE}; stage is the index in --stages. Prints the verdict with the test, the interval and the "
        "power. Exit 0 with a verdict, 2 on bad usage, 4 on bad input (the verdict is then rollback).",
    )
    parser.add_argument("--counts", required=True, metavar="FILE", help="the strata as JSON ('-' for stdin)")
    parser.add_argument("--stages", default="10,50,100", help="challenger percentages per stage (default 10,50,100)")
    parser.add_argument("--holdback", type=int, default=0, help="percent the champion keeps at every stage")
    parser.add_argument("--stage", type=int, help="the stage now running (default: the latest stratum's)")
    parser.add_argument("--waits", type=int, default=0, help="bake waits already spent at that stage")
    parser.add_argument("--requests-per-wait", type=float,
                        help="requests served per bake now; with it the test ends at --max-waits and the power "
                        "is projected to that end")
    parser.add_argument("--significance-level", type=float, default=defaults.alpha,
                        help="false-positive rate of the sequential test (default %(default)s)")
    parser.add_argument("--minimum-lift", type=float, default=defaults.minimum_lift,
                        help=f"relative lift worth detecting (default {defaults.minimum_lift})")
    parser.add_argument("--min-samples", type=int, default=defaults.min_samples_per_variant,
                        help="fewest samples per variant before the test decides")
    parser.add_argument("--max-waits", type=int, default=defaults.max_waits, help="bake waits per stage")
    add_json_option(parser, "the verdict")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        judge = ABJudge(TrafficPlan.parse(args.stages, args.holdback), ABTestConfig(
            alpha=args.significance_level, minimum_lift=args.minimum_lift,
            min_samples_per_variant=args.min_samples, max_waits=args.max_waits))
    except DriftloopError as error:
        return fail("ab", error, ExitCode.USAGE)
    try:
        text = sys.stdin.read() if args.counts == "-" else Path(args.counts).read_text()
        verdict = judge.judge_counts(load_counts(text), args.stage, args.waits, args.requests_per_wait)
    except (OSError, UnicodeDecodeError, InvalidInputError) as error:
        verdict = ABVerdict("rollback", f"bad input: cannot read {args.counts}: {error}", args.stage, None, 0)
    bad_input = verdict.reason.startswith("bad input")
    if args.json_out:
        write_json(args.json_out, verdict.to_dict())
    if bad_input:
        return fail("ab", f"rollback: {verdict.reason.removeprefix('bad input: ')}", ExitCode.BAD_INPUT)
    if not json_on_stdout(args):
        print(describe(verdict))
    return ExitCode.OK


def describe(verdict: ABVerdict) -> str:
    lines = [f"verdict: {verdict.action}", f"reason: {verdict.reason}"]
    test, interval, power = verdict.test, verdict.interval, verdict.power
    if test:
        lines.append(f"test: {test['method']}: z={test['z']:.2f}, boundary ±{test['critical_z']:.2f} at "
                     f"information {test['information']:.0f} of {test['horizon']:.0f} "
                     f"({test['strata']} strata, {test['champion_samples']} champion and "
                     f"{test['challenger_samples']} challenger samples)")
    if interval:
        lines.append(f"interval: challenger minus champion conversion in [{interval['difference_low']:+.4f}, "
                     f"{interval['difference_high']:+.4f}] ({interval['level']:.0%} {interval['kind']})")
    if power:
        needed = (f"needs {power['requests_needed']:,} more requests at {power['requests_needed_at_percent']}%"
                  + (f" ({power['waits_needed']} waits)" if power.get("waits_needed") is not None else "")
                  if power["requests_needed"] else "has the information it needs")
        at_end = (f", {_lift(power['minimum_detectable_lift_at_end'])} by the end"
                  if power.get("minimum_detectable_lift_at_end") is not None else "")
        lines.append(f"power: detects a {_lift(power['minimum_detectable_lift_now'])} lift now with "
                     f"{power['target_power']:.0%} power{at_end}; for MinimumLift {power['minimum_lift']:.1%} it "
                     f"{needed}")
    return "\n".join(lines)


def _lift(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"
