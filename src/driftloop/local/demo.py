"""``driftloop demo``: a fresh workspace, the first champion, a year of uploads, the decisions, the report."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftloop.application import find_project_dir
from driftloop.console import ExitCode, Progress
from driftloop.layout import WorkspaceLayout
from driftloop.local.parameters import parameter_overrides
from driftloop.local.runner import Runner
from driftloop.local.runtime import FaultPlan, LocalAWS, Profile
from driftloop.local.shop import Shop, latest_run, ledger, model_name, reset_workspace, seed, upload_month
from driftloop.report.build import build_report
from driftloop.report.reading import WorkspaceStore
from driftloop.simulate import Scenario, SimulatorConfig


@dataclass(frozen=True)
class DemoScenario:
    """What the shop does, which months are uploaded, and the outcome the last upload must end in."""

    shop: Scenario
    months: tuple[int, ...]
    expected: str
    story: str
    parameters: dict[str, str] = field(default_factory=dict)
    faults: dict[str, list[list[Any]]] = field(default_factory=dict)
    advance_clock: bool = True


SCENARIOS = {
    "seasonal": DemoScenario(
        Scenario.SEASONAL, tuple(range(1, 13)), "promoted",
        "a year of uploads: tastes turn to summer and drift, customers get younger and more mobile"),
    "no-drift": DemoScenario(
        Scenario.NO_DRIFT, (1,), "promoted",
        "next month's customers behave like last month's: no data drift, yet their new purchases are worth a "
        "retrain (RetrainPolicy=drift would keep the champion)"),
    "worse-challenger": DemoScenario(
        Scenario.SEASONAL, (6,), "challenger_rejected",
        "a misconfigured training (popularity only) produces a worse challenger: rejected offline, never served",
        parameters={"TrainingHyperparameters": '{"algorithm": "popularity"}'}),
    "online-loser": DemoScenario(
        Scenario.SEASONAL, (6,), "rolled_back",
        "an uploaded month that does not reflect the customers who come next: wins offline, loses the A/B test",
        advance_clock=False),
    "failure": DemoScenario(
        Scenario.SEASONAL, (6,), "failed",
        "the weight update fails for good after the first A/B stage: champion restored, run failed, notified",
        faults={"UpdateWeightsFunction": [["ok", 1], ["InjectedFault", -1]]}),
}


def run_demo(args: argparse.Namespace) -> int:
    """Run the scenario ``args.scenario`` in a fresh ``args.workspace``; 0 when it ends as it should.

    With ``args.months`` shorter than the scenario, the story may end otherwise: that is reported, and only
    a run that failed (where the scenario expects none) makes the exit code non-zero."""
    scenario = SCENARIOS[args.scenario]
    months = scenario.months[: args.months] if args.months else scenario.months
    workspace = Path(args.workspace)
    project = Path(args.project).resolve() if args.project else find_project_dir()
    overrides = parameter_overrides(project / "template.yaml", args.parameter)
    profile = Profile.load(project, {**scenario.parameters, **overrides})
    reset_workspace(workspace)
    printer = None if args.quiet else print
    print(f"driftloop demo — scenario {args.scenario}: {scenario.story}")
    print(f"workspace {workspace}")
    if args.months and args.months > len(scenario.months):
        print(f"the scenario has {len(scenario.months)} month(s) of uploads; --months {args.months} uploads them all")
    with Progress("demo months", total=len(months) + 1, quiet=args.quiet) as progress, \
            LocalAWS(project, workspace, profile) as world:
        runner = Runner(world, printer)
        print("\n== month 0: launching the original model through the first-deployment branch")
        first = seed(world, runner, Shop(SimulatorConfig(seed=7), scenario.shop, 0), print)
        print(f"   first deployment: {first.get('outcome')}")
        progress.advance(f"month 0: {first.get('outcome')}")
        shop = Shop.load(world.workspace.root)
        for month in months:
            world.faults = FaultPlan({k: [list(step) for step in v] for k, v in scenario.faults.items()})
            assert world.dispatcher is not None
            world.dispatcher.faults = world.faults
            print(f"\n== month {month}: {shop.simulator().month_label(month)} uploaded")
            upload_month(world, shop, month, advance_clock=scenario.advance_clock)
            runner.wait()
            last = latest_run(world)
            print(f"   {_summary(last)}")
            progress.advance(f"month {month}: {last.get('outcome')}")
        runs = sorted(ledger(world).runs(model_name(world)), key=lambda run: run["started_at"])
    report = build_report(WorkspaceStore(workspace), WorkspaceLayout(workspace).report)
    print("\n== runs")
    for run in runs:
        print(f"   {run['started_at'][:19]} {run['trigger'].get('key') or run['trigger']['type']:<28} {run['outcome']}")
    last = runs[-1] if runs else {}
    print(f"\nlast run record: {last.get('record_uri')}")
    print(f"report: {report.resolve()}")
    message, code = verdict(scenario, len(months), last.get("outcome"))
    print(message)
    return code


def verdict(scenario: DemoScenario, months_run: int, outcome: str | None) -> tuple[str, ExitCode]:
    """What the demo says of its last run's ``outcome``, and its exit code.

    The whole scenario must end as it should. Its first ``months_run`` months alone may end otherwise:
    that is reported, and fails only when the run failed where the scenario expects no failure.

    Example
    -------
    >>> verdict(SCENARIOS["seasonal"], 6, "challenger_rejected")[1]
    <ExitCode.OK: 0>
    >>> verdict(SCENARIOS["seasonal"], 12, "challenger_rejected")[1]
    <ExitCode.FAILED: 1>
    """
    if outcome == scenario.expected:
        return f"outcome: {outcome}, as this scenario should end", ExitCode.OK
    if months_run < len(scenario.months):
        message = (f"outcome: {outcome} after the first {months_run} of the scenario's {len(scenario.months)} "
                   f"months (the whole scenario ends {scenario.expected})")
        return message, ExitCode.FAILED if outcome == "failed" else ExitCode.OK
    return f"outcome: {outcome}, but this scenario should end {scenario.expected}", ExitCode.FAILED


def _summary(run: dict[str, Any]) -> str:
    evidence = run.get("evidence", {})
    parts = [f"outcome={run.get('outcome')}"]
    drift = evidence.get("drift", {})
    if drift:
        drifted = ", ".join(drift.get("drifted_features", [])) or "-"
        parts.append(f"decision={drift.get('decision')}: {(drift.get('reasons') or ['-'])[0]}")
        parts.append(f"data drift={drift.get('data_drift', '-')} (drifted: {drifted})")
    evaluation = evidence.get("evaluation", {})
    if evaluation:
        parts.append(f"offline gate {'passed' if evaluation.get('passed') else 'failed'}: {evaluation.get('reason')}")
    ab = evidence.get("ab", {})
    if ab:
        parts.append(f"A/B: {ab.get('action')} — {ab.get('reason')}")
    if run.get("error"):
        parts.append(f"error: {run['error']['error']}: {run['error']['cause'][:200]}")
    return "\n   ".join(parts)
