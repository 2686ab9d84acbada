"""What every ``driftloop`` command shares: its exit codes, ``--json [OUT]``, and progress on stderr.

Standard output carries a command's result (its text, or its JSON with ``--json``/``--json -``); progress
and errors go to standard error, so ``driftloop runs --json | jq`` reads clean JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from enum import IntEnum
from pathlib import Path
from typing import Any, TextIO

from driftloop.errors import NotFoundError
from driftloop.layout import WorkspaceLayout

STDOUT = "-"


class ExitCode(IntEnum):
    """The exit status of every ``driftloop`` command; :data:`MEANINGS` says when each is returned."""

    OK = 0
    FAILED = 1
    USAGE = 2  # argparse's own code for bad usage
    NO_RULE = 3
    BAD_INPUT = 4


MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.FAILED: "the work ended badly: a run it started failed (or outlived --timeout), seed's first deployment "
    "was not promoted, drift reached --fail-on, the demo ended otherwise than its scenario",
    ExitCode.USAGE: "bad usage: unknown option, missing or malformed argument, a value the command or the template's "
    "parameter definitions refuse",
    ExitCode.NO_RULE: "replay: an event matched no rule of the template (nothing started)",
    ExitCode.BAD_INPUT: "bad input: a file, folder or workspace it reads is missing, unreadable or malformed",
}
EXIT_CODES_EPILOG = "exit codes:\n" + "\n".join(f"  {code.value}  {text}" for code, text in MEANINGS.items())


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with the exit code table laid out as a table (one wrapped line per code)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if not text.startswith("exit codes:"):
            return super()._fill_text(text, width, indent)
        lines = [text.splitlines()[0]]
        for line in text.splitlines()[1:]:
            lines += textwrap.wrap(line, width, initial_indent=indent, subsequent_indent=indent + " " * 5)
        return "\n".join(lines)


def fail(command: str, error: object, code: ExitCode) -> ExitCode:
    """Print ``driftloop COMMAND: error`` as one line on stderr and return ``code``."""
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"driftloop {command}: {message}", file=sys.stderr)
    return code


# -- --json [OUT] ---------------------------------------------------------------------------------------
def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json OUT`` writes ``what`` as JSON to the file OUT; ``--json`` alone or ``--json -`` prints it on
    stdout instead of the text (the destination is ``args.json_out``)."""
    parser.add_argument(
        "--json", dest="json_out", nargs="?", const=STDOUT, metavar="OUT",
        help=f"write {what} as JSON to the file OUT; without OUT (or with '-') print it on stdout instead of the text")


def json_on_stdout(args: argparse.Namespace) -> bool:
    return getattr(args, "json_out", None) == STDOUT


def write_json(target: str, document: Any) -> None:
    """``document`` as indented JSON on stdout (``target`` '-') or into the file ``target`` (folders made)."""
    text = json.dumps(document, indent=2, default=str)
    if target == STDOUT:
        print(text)
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


# -- arguments ------------------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number > 0")
    return value


def scenario_name(text: str) -> str:
    """Scenario names are written with hyphens (``no-drift``); ``no_drift`` is read the same."""
    return text.strip().lower().replace("_", "-")


def add_scenario_option(parser: Any, names: tuple[str, ...], help_text: str,
                        default: str = "seasonal") -> None:
    """``--scenario`` of ``names`` (hyphenated; an underscore spelling is accepted too)."""
    parser.add_argument("--scenario", type=scenario_name, choices=names, default=default,
                        help=f"{help_text} (default {default}; an underscore spelling, e.g. no_drift, works too)")


def require_workspace(path: Path) -> None:
    """Commands that read a workspace never create one: a mistyped ``--workspace`` is an error."""
    if not WorkspaceLayout(path).index_file.exists():
        what = "is not a driftloop workspace" if path.exists() else "does not exist"
        raise NotFoundError(f"workspace {path} {what}: `driftloop seed --workspace {path}` creates one "
                            "(or pass the --workspace you seeded)")


# -- progress -------------------------------------------------------------------------------------------
def add_quiet_option(parser: argparse.ArgumentParser, what: str = "progress") -> None:
    parser.add_argument("--quiet", action="store_true", help=f"print no {what} (results and errors still print)")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class Progress:
    """Progress of one long piece of work, on stderr.

    On a terminal: a bar (or, without ``total``, a spinner) with the elapsed time and, with ``total``, the
    estimated time left, redrawn in the background while the work runs. Elsewhere (a pipe, a CI log): one
    plain line per step with the same numbers, and a last line with the time taken unless every step was
    counted. With ``quiet``: nothing. Use as a context manager.

    Parameters
    ----------
    description : what is being done, e.g. ``"backtest"``.
    total : steps the work has (``None``: unknown, only the elapsed time is shown).
    quiet : print nothing.
    stream : where progress goes (default ``sys.stderr``).

    Example
    -------
    >>> import io
    >>> stream = io.StringIO()
    >>> with Progress("simulate", total=2, stream=stream) as progress:
    ...     progress.advance("2025-01")
    ...     progress.advance("2025-02")
    >>> print(stream.getvalue().splitlines()[1].split(",")[0])
    simulate: 2/2 2025-02
    """

    def __init__(self, description: str, total: int | None = None, *, quiet: bool = False,
                 stream: TextIO | None = None) -> None:
        self.description = description
        self.total = total
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.done = 0
        self._started = 0.0
        self._bar: Any = None
        self._task: Any = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self.quiet:
            return self
        if self.stream.isatty():
            self._start_bar()
        return self

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
        if self.total is not None:
            columns.append(MofNCompleteColumn())
        columns += [TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("{task.fields[left]}"),
                    TextColumn("{task.fields[note]}")]
        # Lines printed on a terminal stdout while the bar runs go above the bar; a redirected stdout is
        # left alone.
        self._bar = Bar(*columns, console=Console(file=self.stream), redirect_stdout=sys.stdout.isatty(),
                        redirect_stderr=False)
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total, note="", left=self._time_left())

    def _time_left(self) -> str:
        """The time the remaining steps take at the pace of the steps so far."""
        if not self.total or self.done >= self.total:
            return ""
        if not self.done:
            return "left -:--"
        return f"about {_duration(self.elapsed / self.done * (self.total - self.done))} left"

    def advance(self, note: str = "") -> None:
        """One step done; ``note`` says which."""
        self.done += 1
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=1, note=note, left=self._time_left())
            return
        counted = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        left = self._time_left()
        self._line(f"{counted} {note}".rstrip() + f", {_duration(self.elapsed)} elapsed" + (left and f", {left}"))

    def note(self, text: str) -> None:
        """Say what is happening now without counting a step."""
        if self._bar is not None:
            self._bar.update(self._task, note=text)
        elif not self.quiet:
            self._line(text)

    def _line(self, text: str) -> None:
        print(f"{self.description}: {text}", file=self.stream, flush=True)

    def __exit__(self, error_type: Any, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif not self.quiet and error_type is None and (self.total is None or self.done != self.total):
            self._line(f"done in {_duration(self.elapsed)}")
