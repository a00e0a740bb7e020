"""prune: remove old runs that have ended, and write an audit log of what was done."""

from __future__ import annotations

import math
import os
import re
import sys

from mcp_core import argscan, output
from mcp_core.errors import RunnerError, UsageError
from mcp_core.jsfmt import now_ms
from mcp_core.paths import task_locations
from mcp_core.prune import ERROR, Policy, prune, write_log
from mcp_core.termtext import printable

USAGE = """\
Usage: scripts/mcp-runner-prune.sh [--keep N] [--older-than DAYS] [--dry-run] [--task ID]

Remove old runs of a task: their directory under the runs root and their
compatibility pointer (only when it points at that run). Nothing is removed
without --keep or --older-than; with both, a run goes only when both select it.
A run that has not ended, or whose worker is still alive, is never removed;
metrics.json is left as it is. Prints one line per run and writes an audit log,
.runs/<task>/prunes/<stamp>-prune.log (or -dry-run.log).

Options:
  --keep N            Keep the N newest runs (any status); older ones may go.
  --older-than DAYS   Remove only runs that ended more than DAYS days ago
                      (fractions allowed; without completed_at, from the start).
  --dry-run           Only say what would be removed (the log is still written).
  --task ID           The task to prune (default: MCP_RUNNER_TASK_ID, else 0001).
  -h --help           Show this help.
"""

_NUMERIC_FLAGS = ("--keep", "--older-than")
_WHOLE = re.compile(r"^[0-9]+$")


def _messages() -> argscan.Messages:
    return argscan.Messages(
        unknown=lambda arg: f"Unknown option for prune: {arg}",
        missing=lambda flag: f"{flag} requires a {'numeric ' if flag in _NUMERIC_FLAGS else ''}value",
    )


def parse_keep(value: str) -> int:
    if not _WHOLE.match(value.strip()):
        raise UsageError("--keep requires a numeric value")
    return int(value.strip())


def parse_days(value: str) -> float:
    try:
        days = float(value.strip())
    except ValueError:
        raise UsageError("--older-than requires a numeric value") from None
    if not math.isfinite(days) or days < 0:
        raise UsageError("--older-than requires a numeric value")
    return days


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        parsed = argscan.scan(args, USAGE, _messages())
        if parsed.help:
            sys.stdout.write(USAGE)
            return 0
        keep_text = parsed.text("--keep")
        days_text = parsed.text("--older-than")
        policy = Policy(
            keep=parse_keep(keep_text) if keep_text is not None else None,
            older_than_days=parse_days(days_text) if days_text is not None else None,
        )
        loc = task_locations(parsed.text("--task"))
        dry_run = parsed.flag("--dry-run")
        now = now_ms()
        outcomes = prune(loc, policy, dry_run=dry_run, now_ms=now)
        if not outcomes:
            print(f"No runs found to prune in {loc.rel(loc.runs_root)}.")
            return 0
        # The audit log first: it must exist even if nobody reads what is printed (`prune | head`).
        path = write_log(loc, policy, outcomes, dry_run=dry_run, now_ms=now)
        for outcome in outcomes:
            print(f"{printable(outcome.run_id)}: {outcome.action} — {printable(outcome.reason)}")
        print(f"Prune log written to {loc.rel(path)}")
        return 1 if any(outcome.action == ERROR for outcome in outcomes) else 0
    except RunnerError as exc:
        return output.report(exc)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        return output.report(RunnerError(f"Prune failed: {exc.strerror or exc}"))


if __name__ == "__main__":
    sys.exit(main())
