"""``driftloop``: the core tools, and every command a plugin registers (the local runtime's among them).

Commands of other packages register through the ``driftloop.commands`` entry point group: a callable that adds
its subcommands to the parser's subparsers. The local runtime (``driftloop.local.cli``) registers ``replay``,
``runs``, ``seed``, ``upload``, ``endpoint`` and ``demo`` this way, so this module never imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import entry_points

import pyarrow as pa

from driftloop import __version__, init_cli, teardown_cli
from driftloop.backtest import cli as backtest_cli
from driftloop.console import EXIT_CODES_EPILOG, ExitCode, HelpFormatter, fail
from driftloop.data import cli as merge_cli
from driftloop.drift import cli as drift_cli
from driftloop.errors import ConfigurationError, DriftloopError
from driftloop.model import cli as train_cli
from driftloop.report import cli as report_cli
from driftloop.simulate import cli as simulate_cli
from driftloop.traffic import cli as ab_cli

COMMAND_PLUGINS = "driftloop.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftloop",
        description="Keep a SageMaker recommender fresh. Local commands run template.yaml and the state "
        "machine against an embedded AWS (moto) kept in --workspace. Results go to stdout (JSON with --json "
        "or --json -), progress and errors to stderr.",
        epilog=EXIT_CODES_EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"driftloop {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for plugin in sorted(entry_points(group=COMMAND_PLUGINS), key=lambda entry: entry.name):
        plugin.load()(subparsers)
    drift_cli.add_parser(subparsers)
    merge_cli.add_parser(subparsers)
    train_cli.add_parser(subparsers)
    simulate_cli.add_parser(subparsers)
    report_cli.add_parser(subparsers)
    backtest_cli.add_parser(subparsers)
    ab_cli.add_parser(subparsers)
    init_cli.add_parser(subparsers)
    teardown_cli.add_parser(subparsers)
    for command in subparsers.choices.values():
        command.epilog, command.formatter_class = EXIT_CODES_EPILOG, HelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except BrokenPipeError:  # the reader went away (`| head`): nothing to say, and nothing left to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILED
    except KeyboardInterrupt:
        print(f"driftloop {args.command}: interrupted", file=sys.stderr)
        return 130
    except TimeoutError as error:
        return fail(args.command, error, ExitCode.FAILED)
    except ConfigurationError as error:
        return fail(args.command, error, ExitCode.USAGE)
    except (DriftloopError, OSError, pa.ArrowException) as error:
        return fail(args.command, error, ExitCode.BAD_INPUT)


if __name__ == "__main__":
    sys.exit(main())
