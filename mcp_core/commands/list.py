"""list: the runs of a task as a table (or JSON), newest first. Reads manifests only."""

from __future__ import annotations

import os
import sys
from typing import Any

from mcp_core import argscan, output
from mcp_core.errors import RunnerError, UsageError
from mcp_core.jsfmt import iso_from_ms, now_ms
from mcp_core.manifest import TERMINAL_STATUSES
from mcp_core.paths import Locations, task_locations
from mcp_core.progress import Progress
from mcp_core.runs_index import (
    RunView,
    format_seconds,
    matches,
    parse_status_filter,
    read_task_runs,
    view,
    warn_unreadable,
)
from mcp_core.termtext import printable

USAGE = """\
Usage: scripts/mcp-runner-list.sh [--status S] [--limit N] [--task ID] [--format table|json]

List the runs of a task, newest first: run id, status (with STALE when the
heartbeat of a run that has not ended is stale), commands passed/total, start,
duration, last activity (how long ago a run ended; for a run that has not
ended, the age of its heartbeat) and the first line of the summary (the run's,
else the failed command's). Reads the manifests only: it never writes and never
marks a run stale. A manifest that cannot be read is skipped with a warning on
stderr. On a terminal, reading many runs shows progress on stderr.

Options:
  --status S     Only runs with status S: queued, in_progress, succeeded, failed,
                 cancelled, or stale (not ended, heartbeat stale). A comma-separated
                 list picks several.
  --limit N      Show only the N newest runs (after --status). The table shows the
                 50 newest by default and says how many there are; JSON shows all.
  --task ID      The task whose runs to list (default: MCP_RUNNER_TASK_ID, else 0001).
  --format F     table (default) or json.
  -h --help      Show this help.
"""

FORMATS = ("table", "json")
SUMMARY_WIDTH = 60
TABLE_DEFAULT_LIMIT = 50  # a terminal full of 10,000 lines helps nobody; JSON has no default


def _messages() -> argscan.Messages:
    return argscan.Messages(unknown=lambda arg: f"Unknown option for list: {arg}")


def run_json(loc: Locations, run: RunView) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status,
        "status_detail": run.status_detail,
        "stale": run.stale,
        "commands_passed": run.commands_passed,
        "commands_failed": run.commands_failed,
        "commands_total": run.commands_total,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "duration_seconds": run.duration_seconds,
        "heartbeat_age_seconds": run.heartbeat_age_seconds,
        "summary": run.summary,
        "manifest": f"{loc.rel(loc.runs_root)}/{run.run_id}/manifest.json",
        "latest_event": run.latest_event,
    }


def status_label(run: RunView) -> str:
    label = run.status or "unknown"
    return f"{label} (STALE)" if run.stale else label


def last_activity(run: RunView) -> str:
    """``ended 2h 05m ago``, or for a run that has not ended ``heartbeat 3.2s ago``."""
    if run.ended_ago_seconds is not None:
        return f"ended {format_seconds(run.ended_ago_seconds)} ago"
    if run.status in TERMINAL_STATUSES:
        return "ended"  # no completed_at recorded
    if run.heartbeat_age_seconds is not None:
        return f"heartbeat {format_seconds(run.heartbeat_age_seconds)} ago"
    return ""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(loc: Locations, shown: list[RunView], total: int, runs: int) -> None:
    """``total`` runs pass the filter, of ``runs`` readable runs in the task."""
    if not shown:
        where = loc.rel(loc.runs_root)
        print(f"No runs match --status ({runs} runs in {where})." if runs else f"No runs to list in {where}.")
        return
    from tabulate import tabulate  # only when a table is printed

    rows = [
        [
            printable(run.run_id),
            status_label(run),
            f"{run.commands_passed}/{run.commands_total}",
            printable(run.started_at or ""),
            format_seconds(run.duration_seconds),
            last_activity(run),
            _cut(printable(run.summary or (f"now: {run.latest_event}" if run.latest_event else "")), SUMMARY_WIDTH),
        ]
        for run in shown
    ]
    headers = ["RUN ID", "STATUS", "PASSED", "STARTED", "DURATION", "LAST ACTIVITY", "SUMMARY"]
    sys.stdout.write(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True) + "\n")
    if len(shown) < total:
        sys.stdout.write(f"Showing the {len(shown)} newest of {total} runs (--limit N to change).\n")


def list_runs(
    loc: Locations, *, statuses: frozenset[str] | None, limit: int | None, fmt: str, now: float
) -> int:
    with Progress("Reading runs") as progress:
        index = read_task_runs(loc, progress.update)
    warn_unreadable(loc, index.unreadable)
    records = index.runs
    if statuses is not None:
        records = [record for record in records if matches(record, statuses, now)]
    if limit is None and fmt == "table":
        limit = TABLE_DEFAULT_LIMIT
    # Only the runs shown are looked at closely: with 10,000 runs this is most of the work saved.
    shown = [view(record, now) for record in (records if limit is None else records[:limit])]
    total = len(records)
    if fmt == "json":
        output.print_json(
            {
                "task_id": loc.task_id,
                "runs_root": loc.rel(loc.runs_root),
                "listed_at": iso_from_ms(int(now)),
                "runs_total": total,
                "runs": [run_json(loc, run) for run in shown],
                "skipped": [
                    {"manifest": loc.rel(item.manifest_path), "reason": item.reason} for item in index.unreadable
                ],
            }
        )
    else:
        print_table(loc, shown, total, len(index.runs))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        parsed = argscan.scan(args, USAGE, _messages(), numeric=["--limit"])
        if parsed.help:
            sys.stdout.write(USAGE)
            return 0
        limit_text = parsed.text("--limit")
        limit = argscan.whole_number("--limit", limit_text) if limit_text is not None else None
        fmt = parsed.text("--format") or "table"
        if fmt not in FORMATS:
            raise UsageError(f'Unsupported format: {fmt}. Expected "table" or "json".')
        status_text = parsed.text("--status")
        statuses = parse_status_filter(status_text) if status_text is not None else None
        loc = task_locations(parsed.text("--task"))
        return list_runs(loc, statuses=statuses, limit=limit, fmt=fmt, now=now_ms())
    except RunnerError as exc:
        return output.report(exc)
    except BrokenPipeError:
        # `list | head`: the reader has gone; say nothing more (the Python docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
