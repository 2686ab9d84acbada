"""``driftloop init DIR``: write the SAM application for a user to customise and deploy, as ``sam init`` does."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from driftloop.application import write_application

NEXT_STEPS = """
next:
  cd {target}
  driftloop demo                 # run this folder's template locally (moto; no AWS account needed)
  sam validate --lint            # then deploy it to your account (docs/deploy.md in the driftloop repository):
  sam build
  sam deploy --guided
  driftloop teardown --stack <stack name> --yes && sam delete   # when you are done: nothing left billed"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "init", help="write the SAM application (template, state machine, handlers, layer, events) into DIR",
        description="Write driftloop's SAM application into a new or empty folder, to customise and deploy: "
        "template.yaml, samconfig.toml, statemachines/, functions/, layers/ (the layer recipe), events/ (sample "
        "events), local.toml (local parameter values) and src/driftloop (the core the layer bundles).")
    parser.add_argument("directory", metavar="DIR", help="new or empty folder to write the application into")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    target = Path(args.directory)
    written = write_application(target)
    print(f"wrote the driftloop SAM application to {target}: {', '.join(written)}")
    print(NEXT_STEPS.format(target=target).lstrip("\n"))
    return 0
