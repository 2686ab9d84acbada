"""``driftloop demo``: a fresh workspace, the first champion, drifted months, the decisions."""

from __future__ import annotations

import argparse
from pathlib import Path

from driftloop.local.runner import Runner
from driftloop.local.runtime import FaultPlan, LocalAWS, Profile, find_project_dir
from driftloop.local.world import Shop, latest_run, reset_workspace, seed, upload_month
from driftloop.simulate import Scenario, SimulatorConfig

# scenario -> (simulated shop, first month uploaded after month 0, fault plan, expected outcome)
SCENARIOS = {
    "seasonal": (Scenario.SEASONAL, 6, {}, "promoted"),
    "no-drift": (Scenario.NO_DRIFT, 1, {}, "no_drift"),
    "failure": (Scenario.SEASONAL, 6, {"UpdateWeightsFunction": [["InjectedFault", -1]]}, "failed"),
}


def run_demo(args: argparse.Namespace) -> int:
    if args.scenario not in SCENARIOS:
        print(f"scenario {args.scenario} is not available yet; choose one of {sorted(SCENARIOS)}")
        return 2
    scenario, first_month, faults, expected = SCENARIOS[args.scenario]
    workspace = Path(args.workspace)
    reset_workspace(workspace)
    project = Path(args.project).resolve() if args.project else find_project_dir()
    overrides = dict(item.split("=", 1) for item in (args.parameter or []))
    profile = Profile.load(project, overrides)
    printer = None if args.quiet else print
    print(f"driftloop demo — scenario {args.scenario}, workspace {workspace}")
    with LocalAWS(project, workspace, profile) as world:
        runner = Runner(world, printer)
        shop = Shop(SimulatorConfig(seed=7), scenario, 0)
        print("1. launching the original model: month 0 through the first-deployment branch")
        first = seed(world, runner, shop, print)
        print(f"   first deployment: {first.get('outcome')}")
    last = {}
    for offset in range(args.months):
        month = first_month + offset
        with LocalAWS(project, workspace, profile,
                      FaultPlan({k: [list(v) for v in q] for k, q in faults.items()})) as world:
            runner = Runner(world, printer)
            shop = Shop.load(world.workspace.root)
            key = upload_month(world, shop, month)
            print(f"{offset + 2}. uploaded month {month} as {key}; the upload's event starts a run")
            runner.wait()
            last = latest_run(world)
        print(f"   decision: {_summary(last)}")
        print(f"   run record: {last.get('record_uri')} (files under {workspace / 's3'}; "
              f"`driftloop runs --workspace {workspace}` lists them)")
    outcome = last.get("outcome")
    print(f"outcome: {outcome} (expected for this scenario: {expected})")
    return 0 if outcome == expected else 1


def _summary(run: dict) -> str:
    evidence = run.get("evidence", {})
    parts = [f"outcome={run.get('outcome')}"]
    drift = evidence.get("drift", {})
    if drift:
        parts.append(f"drift={drift.get('decision')} (drifted: {', '.join(drift.get('drifted_features', [])) or '-'})")
    evaluation = evidence.get("evaluation", {})
    if evaluation:
        parts.append(f"offline gate {'passed' if evaluation.get('passed') else 'failed'}: {evaluation.get('reason')}")
    ab = evidence.get("ab", {})
    if ab:
        parts.append(f"A/B: {ab.get('action')} — {ab.get('reason')}")
    if run.get("error"):
        parts.append(f"error: {run['error']['error']}: {run['error']['cause'][:200]}")
    return "; ".join(parts)
