"""metrics: write metrics-summary.json from metrics.json (docs/interface.md section 8).

Kept light: tabulate is imported only for ``--format table``.
"""

from __future__ import annotations

import sys

from mcp_core.argscan import Messages, scan
from mcp_core.errors import RunnerError, UsageError
from mcp_core.metrics_summary import MetricsSummary, summarize, write_summary
from mcp_core.output import run_cli
from mcp_core.paths import Locations, locate
from mcp_core.termtext import printable

USAGE = """\
Usage: node scripts/mcp-runner-metrics.js [--summarize]
Writes the metrics summary, metrics-summary.json beside metrics.json: entries, success rate,
guardrail coverage and average duration, each run counted once (by its latest line).

Options:
  --summarize      Accepted and ignored: summarizing is all this command does.
  --format FORMAT  text (default), or table: after writing the file as always, also print
                   the summary as a table, with median and p95 duration and the count of
                   each status.
  -h --help        Show this help.
"""

FORMATS = ("text", "table")
_MESSAGES = Messages(unknown=lambda arg: f"Unknown option: {arg}")


def parse_args(argv: list[str]) -> str | None:
    """The output format, or None when help was asked for. Raises UsageError."""
    parsed = scan(argv, USAGE, _MESSAGES)
    if parsed.help:
        return None
    fmt = parsed.text("--format", "text") or "text"
    if fmt not in FORMATS:
        raise UsageError(f'Unsupported format: {fmt}. Expected "text" or "table".')
    return fmt


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def summary_table(summary: MetricsSummary) -> str:
    """The summary for people: one row a figure, then one row a status."""
    from tabulate import tabulate  # only this format needs them

    from mcp_core.runs_index import format_seconds

    def duration(seconds: float | None) -> str:
        # rounded for people (2.9s, 12m 05s); metrics-summary.json keeps every digit
        return "-" if seconds is None else format_seconds(seconds)

    rows: list[tuple[str, str]] = [
        ("Entries (runs)", str(summary.entries_total)),
        ("Succeeded", str(summary.entries_succeeded)),
        ("Failed", str(summary.entries_failed)),
        ("Success rate", _percent(summary.success_rate)),
        ("Guardrail coverage", _percent(summary.guardrail_coverage)),
        ("Average duration", duration(summary.average_duration_seconds)),
        ("Median duration", duration(summary.median_duration_seconds())),
        ("p95 duration", duration(summary.p95_duration_seconds())),
        ("Parse errors", str(len(summary.parse_errors) + summary.parse_errors_omitted)),
    ]
    rows += [(f"Status {printable(status)}", str(count)) for status, count in summary.status_counts.items()]
    return tabulate(rows, headers=("Metric", "Value"), tablefmt="simple", disable_numparse=True)


def metrics(loc: Locations, fmt: str) -> int:
    try:
        summary = summarize(loc, keep_durations=fmt == "table")  # the table's median and p95 need them all
    except OSError as exc:
        raise RunnerError(f"Cannot read {loc.rel(loc.metrics_file)}: {exc.strerror or exc}") from None
    try:
        write_summary(loc, summary)
    except OSError as exc:
        raise RunnerError(f"Cannot write {loc.rel(loc.metrics_summary_file)}: {exc.strerror or exc}") from None
    lines = [f"Metrics summary written to {loc.rel(loc.metrics_summary_file)}"]
    if fmt == "table":
        lines += ["", summary_table(summary)]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv

    def body() -> int:
        fmt = parse_args(args)
        if fmt is None:
            sys.stdout.write(USAGE)
            sys.stdout.flush()
            return 0
        return metrics(locate(), fmt)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
