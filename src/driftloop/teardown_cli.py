"""``driftloop teardown --stack NAME [--region R] [--yes] [--keep-model-registry] [--json OUT]``.

Lists what the stack's Lambdas created outside CloudFormation (endpoint, endpoint configs, models, model
package group, running training jobs, cool-down schedules); with ``--yes`` deletes it. Run it before (or,
for a stack deleted already, after) ``sam delete``; see docs/deploy.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from driftloop.adapters.teardown import STOP, Outcome, TeardownPlan, describe_stack, execute, plan_teardown
from driftloop.console import ExitCode, add_json_option, json_on_stdout, write_json
from driftloop.errors import ConfigurationError, DriftloopError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    help_text = ("list (and with --yes delete) the SageMaker endpoint, configs, models, model package group, "
                 "running training jobs and cool-down schedules a driftloop stack created outside CloudFormation")
    parser = subparsers.add_parser("teardown", help=help_text, description=help_text)
    parser.add_argument("--stack", required=True, help="the CloudFormation stack name (sam deploy --stack-name)")
    parser.add_argument("--region", help="the stack's region (default: your AWS configuration's)")
    parser.add_argument("--yes", action="store_true", help="delete; without it nothing is deleted (dry run)")
    parser.add_argument("--keep-model-registry", action="store_true",
                        help="keep the model package group and its packages (the registry's history)")
    add_json_option(parser, "the plan (and the outcomes)")
    parser.set_defaults(run=run)
    return parser


def _clients(region: str | None) -> tuple[Any, Any, Any]:
    import boto3

    session = boto3.session.Session(region_name=region)
    return session.client("cloudformation"), session.client("sagemaker"), session.client("scheduler")


def _print_plan(plan: TeardownPlan, out: TextIO) -> None:
    stack = plan.stack
    state = "deleted already" if stack.deleted else stack.status
    print(f"stack {stack.name} in {stack.region} ({state}): model {stack.model_name}, "
          f"endpoint {stack.endpoint_name}", file=out)
    for item in plan.leftovers:
        notes = ", ".join(note for note in (item.detail, "" if item.tagged else "untagged") if note)
        print(f"  {'stop' if item.action == STOP else 'delete'} {item.kind} {item.name}"
              + (f" ({notes})" if notes else ""), file=out)
    for item in plan.kept:
        print(f"  keep {item.kind} {item.name} ({item.detail}; --keep-model-registry)", file=out)


def run(args: argparse.Namespace) -> int:
    out = sys.stderr if json_on_stdout(args) else sys.stdout
    try:
        cloudformation, sagemaker, scheduler = _clients(args.region)
        stack = describe_stack(cloudformation, args.stack)
        plan = plan_teardown(stack, sagemaker, scheduler, keep_model_registry=args.keep_model_registry)
        _print_plan(plan, out)
        outcomes: list[Outcome] = []
        if not plan.leftovers:
            print(f"nothing left by stack {stack.name} in {stack.region}", file=out)
        elif not args.yes:
            print(f"dry run: nothing deleted. To delete these {len(plan.leftovers)} resources: driftloop teardown "
                  f"--stack {stack.name} --region {stack.region} --yes", file=out)
        else:
            outcomes = execute(plan, sagemaker, scheduler,
                               report=lambda outcome: print(f"  {outcome.result} {outcome.kind} {outcome.name}"
                                                            + (f": {outcome.detail}" if outcome.failed else ""),
                                                            file=out))
    except NoRegionError as error:
        raise ConfigurationError(f"stack {args.stack}: no region: pass --region or set AWS_REGION") from error
    except (BotoCoreError, ClientError) as error:
        raise DriftloopError(f"stack {args.stack}: {error}") from error
    if args.json_out:
        write_json(args.json_out, {**plan.to_dict(), "deleted": bool(args.yes),
                                    "outcomes": [asdict(outcome) for outcome in outcomes]})
    failed = [outcome for outcome in outcomes if outcome.failed]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} could not be deleted (see above); run the command again once "
              "fixed", file=out)
        return ExitCode.FAILED
    if args.yes and not stack.deleted:
        print(f"now delete the stack: sam delete --stack-name {stack.name} --region {stack.region}", file=out)
    return ExitCode.OK
