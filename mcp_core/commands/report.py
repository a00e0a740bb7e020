"""report: write the static HTML report of a task's runs (.runs/<task>/report.html)."""

from __future__ import annotations

import sys

from mcp_core import argscan, output
from mcp_core.argscan import whole_number
from mcp_core.errors import RunnerError
from mcp_core.jsfmt import now_ms
from mcp_core.paths import task_locations
from mcp_core.progress import Progress
from mcp_core.report import DEFAULT_TABLE_LIMIT, build_report, write_report
from mcp_core.runs_index import read_task_runs, warn_unreadable

USAGE = f"""\
Usage: scripts/mcp-runner-report.sh [--task ID] [--limit N]

Write .runs/<task>/report.html: one static HTML page about the runs of a task,
for reviewers. It shows the counts; runs, success rate and median duration per
hour, day or week (inline charts); the runs table with each run's commands
(unfold them for status, exit code, duration and their response and error
files) and links to its manifest and runner.log; and the error summary of each
failed run. The page has no script and fetches nothing; open it straight from
disk; it reads well from a phone's width up. Manifests that cannot be read are
skipped with a warning on stderr and listed on the page. On a terminal, long
reports show progress on stderr.

Options:
  --task ID     The task to report on (default: MCP_RUNNER_TASK_ID, else 0001).
  --limit N     Rows in the runs table, newest first (default {DEFAULT_TABLE_LIMIT}).
                The counts and charts always cover every run.
  -h --help     Show this help.
"""


def _messages() -> argscan.Messages:
    return argscan.Messages(unknown=lambda arg: f"Unknown option for report: {arg}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        parsed = argscan.scan(args, USAGE, _messages(), numeric=["--limit"])
        if parsed.help:
            sys.stdout.write(USAGE)
            return 0
        limit_text = parsed.text("--limit")
        limit = whole_number("--limit", limit_text) if limit_text is not None else DEFAULT_TABLE_LIMIT
        loc = task_locations(parsed.text("--task"))
        with Progress("Reading runs") as progress:
            index = read_task_runs(loc, progress.update)
        warn_unreadable(loc, index.unreadable)
        with Progress("Writing the report") as progress:
            page = build_report(loc, index, now_ms(), limit, progress.update)
        path = write_report(loc, page)
        print(f"Report written to {loc.rel(path)}")
        return 0
    except RunnerError as exc:
        return output.report(exc)
    except OSError as exc:
        return output.report(RunnerError(f"Cannot write the report: {exc.strerror or exc}"))


if __name__ == "__main__":
    sys.exit(main())
