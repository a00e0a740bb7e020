"""migrate: move legacy runs into the task-scoped layout (docs/interface.md section 9)."""

from __future__ import annotations

import sys

from mcp_core.argscan import Messages, scan
from mcp_core.errors import RunnerError
from mcp_core.migrate import NO_CANDIDATES, Outcome, migrate
from mcp_core.output import run_cli
from mcp_core.paths import Locations, locate, validate_run_id
from mcp_core.progress import Progress

USAGE = """\
Usage: scripts/mcp-runner-migrate.js [--dry-run] [--run-id <id>]
Moves legacy .runs/local-mcp/<run-id> directories into .runs/<task>/mcp/ and leaves a
compatibility pointer in the old place. A manifest that is not a JSON object is an
error and its run is not moved. Writes a log under .runs/<task>/migrations/.

Options:
  --dry-run      Say what would be done and change nothing (a dry-run log is still written).
  --run-id ID    Only this run.
  -h --help      Show this help.
"""

_MESSAGES = Messages(
    unknown=lambda arg: f"Unknown option: {arg}",
    missing=lambda flag: f"{flag} requires a value.",
)


def parse_args(argv: list[str]) -> tuple[bool, str | None] | None:
    """``(dry_run, run_id)``, or None when help was asked for. Raises RunnerError.

    Left to right, the first bad argument wins, and a run id that is not a plain
    path segment is a bad argument where it stands (``--run-id a/b --bogus``
    reports the run id).
    """
    position = 0
    while position + 1 < len(argv) and argv[position] in ("--dry-run", "--run-id"):
        if argv[position] == "--run-id":
            if argv[position + 1]:
                validate_run_id(argv[position + 1])
            position += 1
        position += 1
    parsed = scan(argv, USAGE, _MESSAGES)
    if parsed.help:
        return None
    run_id = parsed.text("--run-id")
    if run_id is not None:
        validate_run_id(run_id)
    return parsed.flag("--dry-run"), run_id


def _line(outcome: Outcome) -> str:
    text = f"{outcome.run_id}: {outcome.status} — {outcome.printed_message}"
    # One line a run, whatever a directory name holds.
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")  # flushed at the end: 10,000 lines, 10,000 writes otherwise


def run_migration(loc: Locations, dry_run: bool, run_id: str | None) -> int:
    # Progress on stderr, only when it is a terminal; erased before each line
    # that shows on the same terminal (stdout is flushed at the end otherwise).
    lines_show = sys.stdout.isatty()
    with Progress("Checking runs" if dry_run else "Migrating runs") as progress:

        def print_outcome(outcome: Outcome) -> None:
            if lines_show:
                progress.clear()
            _print(_line(outcome))

        try:
            _outcomes, log = migrate(
                loc, dry_run=dry_run, only=run_id, on_outcome=print_outcome, on_progress=progress.update
            )
        except OSError as exc:
            raise RunnerError(f"Migration failed: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
    if log is None:
        _print(NO_CANDIDATES)
    else:
        _print(f"Migration log written to {loc.rel(log)}")
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv

    def body() -> int:
        options = parse_args(args)
        if options is None:
            sys.stdout.write(USAGE)
            sys.stdout.flush()
            return 0
        return run_migration(locate(), *options)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
