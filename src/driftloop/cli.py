"""``driftloop``: the core tools, and every command a plugin registers (the local runtime's among them).

Commands of other packages register through the ``driftloop.commands`` entry point group: a callable that adds
its subcommands to the parser's subparsers. The local runtime (``driftloop.local.cli``) registers ``replay``,
``runs``, ``seed``, ``upload``, ``endpoint`` and ``demo`` this way, so this module never imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module
from importlib.metadata import entry_points

import pyarrow as pa

from driftloop import __version__
from driftloop.console import EXIT_CODES_EPILOG, ExitCode, HelpFormatter, fail
from driftloop.errors import ConfigurationError, DriftloopError

COMMAND_PLUGINS = "driftloop.commands"
# The core commands, in help order, and the module whose ``add_parser`` adds each. A run imports only its
# own command's module: the others' imports (the report's matplotlib, the backtest's datasets) take
# longer than ``driftloop drift`` on a million rows.
CORE_COMMANDS = {
    "drift": "driftloop.drift.cli",
    "merge": "driftloop.data.cli",
    "train": "driftloop.model.cli",
    "simulate": "driftloop.simulate.cli",
    "report": "driftloop.report.cli",
    "backtest": "driftloop.backtest.cli",
    "ab": "driftloop.traffic.cli",
    "init": "driftloop.init_cli",
    "teardown": "driftloop.teardown_cli",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser, or only ``command``'s when it is a core command."""
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
    if command not in CORE_COMMANDS:
        for plugin in sorted(entry_points(group=COMMAND_PLUGINS), key=lambda entry: entry.name):
            plugin.load()(subparsers)
    for module in [CORE_COMMANDS[command]] if command in CORE_COMMANDS else CORE_COMMANDS.values():
        import_module(module).add_parser(subparsers)
    for subparser in subparsers.choices.values():
        subparser.epilog, subparser.formatter_class = EXIT_CODES_EPILOG, HelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
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
