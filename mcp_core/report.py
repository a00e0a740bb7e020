"""The report page: one static HTML file describing every run of a task.

Self-contained on purpose: inline CSS and inline SVG, no script at all, no URL
to fetch, and a Content-Security-Policy that forbids both should anything slip
through. Everything taken from a run (ids, commands, summaries, error details)
is untrusted and goes through ``html.escape``. Links are relative to the
report's own folder and point only at files found in the run directories
(never at paths read from a manifest), so every link leads to a file that exists.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mcp_core import store, termtext
from mcp_core.jsfmt import dumps_compact, duration_seconds, iso_from_ms, parse_timestamp_ms
from mcp_core.manifest import TERMINAL_STATUSES
from mcp_core.paths import Locations
from mcp_core.runs_index import ProgressCallback, RunRecord, RunsIndex, RunView, first_line, format_seconds, view
from mcp_core.termtext import printable

REPORT_NAME = "report.html"
DEFAULT_TABLE_LIMIT = 200
DETAIL_LIMIT = 400  # characters of one error detail shown on the page
_RESPONSE_PREFIX_DIGITS = frozenset("0123456789")


def report_path(loc: Locations) -> Path:
    # Task-scoped under the repo root, like the migration logs, whatever the other roots say.
    return loc.repo_root / ".runs" / loc.task_id / REPORT_NAME


@dataclass(frozen=True)
class Artifact:
    label: str
    relative: str  # from the run directory, '/'-separated
    command: int | None = None  # the index NN of an NN-<slug>.json response or error file


@dataclass(frozen=True)
class ErrorSummary:
    file: str  # from the run directory
    reason: str
    command: str
    created_at: str
    details: list[tuple[str, str]]


def esc(value: object) -> str:
    """HTML-escaped text; control characters (other than newline and tab) shown as ``\\xNN``."""
    text = "" if value is None else str(value)
    return html.escape(printable(text, multiline=True), quote=True)


def cut(text: str, limit: int = DETAIL_LIMIT) -> str:
    return termtext.cut(text, limit)


def _plain_files(directory: Path) -> list[str]:
    """Names of the regular files (not symlinks) directly in ``directory``."""
    try:
        with os.scandir(directory) as entries:
            return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
    except OSError:
        return []


def run_artifacts(run_dir: Path) -> list[Artifact]:
    """The files of a run a reviewer opens, in reading order; only those that exist."""
    names = _plain_files(run_dir)
    found: list[Artifact] = []
    for name in ("manifest.json", "runner.log", "poll.json"):
        if name in names:
            found.append(Artifact(name, name))
    for name in names:
        if name[:1] in _RESPONSE_PREFIX_DIGITS and name.endswith(".json"):
            prefix = name.split("-", 1)[0]
            found.append(Artifact(prefix, name, _command_index(prefix)))
    for name in _plain_files(run_dir / "errors"):
        if name.endswith(".json"):
            prefix = name.split("-", 1)[0]
            found.append(Artifact(f"errors/{prefix}", f"errors/{name}", _command_index(prefix)))
    return found


def _command_index(prefix: str) -> int | None:
    return int(prefix) if prefix.isascii() and prefix.isdigit() and len(prefix) < 6 else None


def _read_json_file(path: Path) -> Any:
    return store.parse_json(store.read_run_file(path, follow=False))


def _detail_text(value: object) -> str:
    return value if isinstance(value, str) else dumps_compact(value)


def error_summaries(run_dir: Path) -> list[ErrorSummary]:
    """The error artifacts of a run, each cut to what a reviewer needs first."""
    summaries: list[ErrorSummary] = []
    for name in _plain_files(run_dir / "errors"):
        if not name.endswith(".json"):
            continue
        relative = f"errors/{name}"
        try:
            data = _read_json_file(run_dir / "errors" / name)
        except (OSError, ValueError) as exc:
            summaries.append(ErrorSummary(relative, "unreadable error artifact", "", "", [("error", str(exc))]))
            continue
        if not isinstance(data, dict):
            problem = [("error", "not a JSON object")]
            summaries.append(ErrorSummary(relative, "unreadable error artifact", "", "", problem))
            continue
        details = data.get("details")
        shown: list[tuple[str, str]] = []
        if isinstance(details, dict):
            for key in ("exit_code", "message", "summary", "note", "raw_summary"):
                if key in details and details[key] is not None:
                    shown.append((key, cut(_detail_text(details[key]))))
            if "stack" in details and isinstance(details["stack"], str):
                shown.append(("stack", cut(details["stack"], 600)))
            if not shown and details:
                shown.append(("details", cut(dumps_compact(details))))
        elif details is not None:
            shown.append(("details", cut(_detail_text(details))))
        summaries.append(
            ErrorSummary(
                relative,
                cut(_detail_text(data.get("reason") or "")),
                cut(_detail_text(data.get("command") or "")),
                _detail_text(data.get("created_at") or ""),
                shown,
            )
        )
    return summaries


# ---------------------------------------------------------------- charts

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
HOURLY_SPAN_MS = 2 * DAY_MS  # runs spread over at most this long are counted per hour
DAILY_SPAN_MS = 180 * DAY_MS  # at most this long per day; longer, per week
_MONDAY_MS = 4 * DAY_MS  # 1970-01-05, the first Monday after the epoch


@dataclass(frozen=True)
class Bucket:
    """The finished runs that started in one hour, day or week (UTC)."""

    start_ms: int
    unit: str  # "hour", "day" or "week"
    succeeded: int
    failed: int
    cancelled: int
    median_seconds: float | None

    @property
    def runs(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def label(self) -> str:
        moment = iso_from_ms(self.start_ms)
        if self.unit == "hour":
            return f"{moment[:10]} {moment[11:16]}"
        return moment[:10] if self.unit == "day" else f"week of {moment[:10]}"


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def bucket_unit(span_ms: float) -> tuple[str, int]:
    """Per hour for short spans, per day, per week for long ones: a readable number of bars."""
    if span_ms < HOURLY_SPAN_MS:
        return "hour", HOUR_MS
    return ("day", DAY_MS) if span_ms < DAILY_SPAN_MS else ("week", WEEK_MS)


def _bucket_start(ms: int, size: int) -> int:
    offset = _MONDAY_MS if size == WEEK_MS else 0  # weeks start on Monday, like ISO weeks
    return (ms - offset) // size * size + offset


def chart_buckets(finished: list[tuple[float, RunView]]) -> list[Bucket]:
    """Finished runs (start time, view) counted per hour, day or week of their start, UTC.

    Every bucket from the first run's to the last run's is there, the empty ones too,
    so the bars stand on a time axis and a quiet day shows as a gap.
    """
    if not finished:
        return []
    starts = [int(ms) for ms, _ in finished]
    unit, size = bucket_unit(max(starts) - min(starts))
    origin = _bucket_start(min(starts), size)
    count = (_bucket_start(max(starts), size) - origin) // size + 1
    outcomes = [{"succeeded": 0, "failed": 0, "cancelled": 0} for _ in range(count)]
    durations: list[list[float]] = [[] for _ in range(count)]
    for start, (_, run) in zip(starts, finished, strict=True):
        slot = (start - origin) // size
        if run.status in outcomes[slot]:
            outcomes[slot][str(run.status)] += 1
        if run.duration_seconds is not None:
            durations[slot].append(run.duration_seconds)
    return [
        Bucket(origin + n * size, unit, tally["succeeded"], tally["failed"], tally["cancelled"], _median(durations[n]))
        for n, tally in enumerate(outcomes)
    ]


def _nice_count(value: int) -> int:
    """The smallest of 2, 4, 10, 20, 40, 100, ... holding ``value``: an even top for the axis."""
    scale = 1
    while True:
        for step in (2, 4, 10):
            if value <= step * scale:
                return step * scale
        scale *= 10


def _nice_seconds(value: float) -> float:
    for step in (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400):
        if value <= step:
            return float(step)
    return float(int(value / 86400 + 1) * 86400)


Segment = tuple[str, float]  # css class, height as a fraction of the plot


def bar_chart(caption: str, buckets: list[Bucket], bars: list[list[Segment]], tips: list[str],
              axis: tuple[str, str, str], legend: str = "") -> str:
    """One figure: stacked bars (one per bucket) drawn by SVG stretched to the plot's box, and the
    axis labels as HTML around it, so text stays readable at any width (SVG text would shrink)."""
    slot = 10
    width = slot * len(buckets)
    parts = [
        f'<svg class="plot" viewBox="0 0 {width} 100" preserveAspectRatio="none" role="img" '
        f'aria-label="{esc(caption)}">'
    ]
    for y in (0, 50, 100):
        parts.append(f'<line class="grid" x1="0" y1="{y}" x2="{width}" y2="{y}"/>')
    for n, (segments, tip) in enumerate(zip(bars, tips, strict=True)):
        x = n * slot
        parts.append(f'<g><title>{esc(tip)}</title><rect class="hit" x="{x}" y="0" width="{slot}" height="100"/>')
        bottom = 100.0
        for css, fraction in segments:
            height = 100 * fraction
            bottom -= height
            parts.append(
                f'<rect class="bar {css}" x="{x + 1.5}" y="{bottom:.2f}" width="{slot - 3}" height="{height:.2f}"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    top, middle, zero = axis
    first, last = buckets[0].label, buckets[-1].label
    x_labels = f"<span>{esc(first)}</span>" + (f"<span>{esc(last)}</span>" if last != first else "")
    return (
        f"<figure><figcaption>{esc(caption)}</figcaption>"
        f'<div class="plotbox"><div class="yaxis"><span class="y-top">{esc(top)}</span>'
        f'<span class="y-mid">{esc(middle)}</span><span class="y-zero">{esc(zero)}</span></div>'
        f'{"".join(parts)}</div><div class="xaxis">{x_labels}</div>{legend}</figure>'
    )


def runs_chart(buckets: list[Bucket]) -> str:
    top = _nice_count(max(b.runs for b in buckets))
    bars = [
        [(status, getattr(b, status) / top) for status in ("succeeded", "failed", "cancelled") if getattr(b, status)]
        for b in buckets
    ]
    tips = [
        f"{b.label}: {b.runs} runs — {b.succeeded} succeeded, {b.failed} failed, {b.cancelled} cancelled"
        if b.runs else f"{b.label}: no finished runs"
        for b in buckets
    ]
    legend = (
        '<p class="legend"><i class="key succeeded"></i>succeeded <i class="key failed"></i>failed '
        '<i class="key cancelled"></i>cancelled</p>'
    )
    return bar_chart(f"Runs per {buckets[0].unit}", buckets, bars, tips, (str(top), str(top // 2), "0"), legend)


def success_chart(buckets: list[Bucket]) -> str:
    bars: list[list[Segment]] = []
    tips = []
    for b in buckets:
        if not b.runs:
            bars.append([])
            tips.append(f"{b.label}: no finished runs")
            continue
        rate = b.succeeded / b.runs
        css = "good" if rate >= 0.8 else "fair" if rate >= 0.5 else "poor"
        bars.append([(css, max(rate, 0.02))])  # a 0% bar stays visible: there were runs
        tips.append(f"{b.label}: {b.succeeded} of {b.runs} succeeded ({rate:.0%})")
    return bar_chart(f"Success rate per {buckets[0].unit}", buckets, bars, tips, ("100%", "50%", "0%"))


def duration_chart(buckets: list[Bucket]) -> str:
    medians = [b.median_seconds for b in buckets if b.median_seconds is not None]
    top = _nice_seconds(max(medians) if medians else 1)
    bars: list[list[Segment]] = []
    tips = []
    for b in buckets:
        if b.median_seconds is None:
            bars.append([])
            tips.append(f"{b.label}: no duration recorded")
            continue
        bars.append([("info", max(b.median_seconds / top, 0.01))])
        tips.append(f"{b.label}: median {format_seconds(b.median_seconds)} over {b.runs} runs")
    axis = (format_seconds(top), format_seconds(top / 2), "0")
    return bar_chart(f"Median duration per {buckets[0].unit}", buckets, bars, tips, axis)


# ---------------------------------------------------------------- the page

STYLE = """
:root { color-scheme: light; --ink:#1d232b; --muted:#5d6875; --line:#d9dee4; --bg:#f6f7f9;
  --good:#1f8a4c; --poor:#c0392b; --fair:#d4a017; --info:#2463b5; --stale:#b35c00; --cancelled:#7a8591; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 28px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #fff; }
h1, h2, h3, p, li, dd, td, summary { overflow-wrap: anywhere; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 0 0 6px; }
.muted { color: var(--muted); }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 12.5px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 4px; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px;
  min-width: 96px; }
.card b { display: block; font-size: 20px; }
.card span { color: var(--muted); font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(300px, 100%), 1fr)); gap: 16px; }
.charts figure { margin: 0; min-width: 0; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px 6px; }
figcaption { font-weight: 600; margin-bottom: 6px; }
.plotbox { position: relative; height: 140px; margin-left: 46px; }
.plot { display: block; width: 100%; height: 100%; overflow: visible; }
.yaxis span { position: absolute; right: calc(100% + 6px); color: var(--muted); font-size: 11px;
  line-height: 1; white-space: nowrap; }
.y-top { top: -5px; } .y-mid { top: calc(50% - 5px); } .y-zero { bottom: -5px; }
.xaxis { display: flex; justify-content: space-between; gap: 8px; margin: 4px 0 0 46px; color: var(--muted);
  font-size: 11px; }
.grid { stroke: var(--line); stroke-width: 1; vector-effect: non-scaling-stroke; }
.hit { fill: transparent; } g:hover .hit { fill: rgba(36, 99, 181, .08); }
.bar.succeeded, .bar.good { fill: var(--good); } .bar.failed, .bar.poor { fill: var(--poor); }
.bar.fair { fill: var(--fair); } .bar.cancelled { fill: var(--cancelled); } .bar.info { fill: var(--info); }
.legend { margin: 6px 0 0; color: var(--muted); font-size: 12px; }
.key { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px 0 8px; }
.key:first-child { margin-left: 0; }
.key.succeeded { background: var(--good); } .key.failed { background: var(--poor); }
.key.cancelled { background: var(--cancelled); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { position: sticky; top: 0; background: var(--bg); font-size: 12px; text-transform: uppercase;
  letter-spacing: .03em; color: var(--muted); }
tbody tr:hover { background: #fafbfc; }
td.id { min-width: 18em; } /* a runner-made run id on one line */
td.when { min-width: 10em; }
.took { white-space: nowrap; }
td.commands { min-width: 120px; }
summary { cursor: pointer; white-space: nowrap; }
ol.commands { margin: 6px 0 2px; padding-left: 22px; }
ol.commands li { margin: 0 0 6px; }
ol.commands .summary { display: block; color: var(--muted); }
.links a { margin-right: 8px; white-space: nowrap; }
td.id .links { font-size: 12.5px; }
a { color: var(--info); text-decoration: none; } a:hover { text-decoration: underline; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; font-weight: 600;
  color: #fff; background: var(--muted); white-space: nowrap; }
.badge.succeeded { background: var(--good); } .badge.failed { background: var(--poor); }
.badge.in_progress, .badge.queued, .badge.running { background: var(--info); }
.badge.cancelled { background: var(--cancelled); }
.badge.stale { background: var(--stale); margin-left: 4px; }
.badge.small { font-size: 11px; padding: 0 6px; }
.failure { border: 1px solid var(--line); border-left: 4px solid var(--poor); border-radius: 6px;
  padding: 10px 14px; margin: 10px 0; }
.failure dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0 0; }
.failure dt { color: var(--muted); }
.failure dd { margin: 0; white-space: pre-wrap; min-width: 0; }
.note { background: #fff8e6; border: 1px solid #f0d58c; border-radius: 6px; padding: 8px 12px; }
/* Narrower than this, a runs table would be squeezed or scroll sideways: one card per run. */
@media (max-width: 1100px) {
  body { padding: 16px 14px 40px; }
  table, tbody, tr, td { display: block; width: 100%; }
  thead { display: none; }
  tr { border: 1px solid var(--line); border-radius: 6px; margin: 0 0 10px; padding: 6px 10px; }
  td, td.id, td.when { border: 0; padding: 2px 0; text-align: left; white-space: normal; min-width: 0;
    max-width: none; }
  td:empty { display: none; }
  td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); font: 12px system-ui, sans-serif; }
  td.commands details { display: inline-block; vertical-align: top; }
  td.id::before { content: none; }
  td.id { font-weight: 600; }
  .failure dl { grid-template-columns: 1fr; }
}
"""

TABLE_COLUMNS = ("Run", "Status", "Commands", "When (UTC)", "Summary")
COMMAND_TEXT_LIMIT = 300  # characters of a command or its summary in the commands list


@dataclass(frozen=True)
class Command:
    """One command of a run as the page lists it (from the manifest: untrusted, cut)."""

    index: int
    command: str
    status: str | None
    exit_code: str  # as text; "" when none was recorded
    seconds: float | None
    summary: str


def manifest_commands(manifest: dict[str, Any]) -> list[Command]:
    raw = manifest.get("commands")
    found: list[Command] = []
    for position, entry in enumerate(raw if isinstance(raw, list) else [], start=1):
        if not isinstance(entry, dict):
            continue
        index = entry.get("index")
        status = entry.get("status")
        exit_code = entry.get("exit_code")
        summary = entry.get("summary")
        found.append(
            Command(
                index=index if isinstance(index, int) and not isinstance(index, bool) else position,
                command=cut(_detail_text(entry.get("command") or ""), COMMAND_TEXT_LIMIT),
                status=status if isinstance(status, str) else None,
                exit_code="" if exit_code is None else _detail_text(exit_code),
                seconds=duration_seconds(entry.get("started_at"), entry.get("completed_at")),
                summary=cut(first_line(summary), COMMAND_TEXT_LIMIT) if isinstance(summary, str) else "",
            )
        )
    return found


def when(timestamp: str | None) -> str:
    """A manifest time for people: ``2026-12-06 01:20:49``; an unparsable one as it is."""
    moment = parse_timestamp_ms(timestamp)
    if moment is None:
        return timestamp or ""
    return iso_from_ms(int(moment))[:19].replace("T", " ")


CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'; base-uri 'none'"


class Page:
    """Builds the report's HTML for one task."""

    def __init__(
        self, loc: Locations, index: RunsIndex, now_ms: float, table_limit: int, progress: ProgressCallback | None
    ) -> None:
        self.loc = loc
        self.progress = progress
        self.index = index
        self.now_ms = now_ms
        self.table_limit = table_limit
        self.report_dir = report_path(loc).parent
        self.views: list[tuple[RunRecord, RunView]] = [(r, view(r, now_ms)) for r in index.runs]

    def href(self, path: Path | str) -> str:
        relative = os.path.relpath(path, self.report_dir).replace(os.sep, "/")
        # quote: '#', '?', '%' and ':' in a run id must not change what the link means.
        return esc(quote(relative, safe="/"))

    def link(self, path: Path | str, label: str, css: str = "") -> str:
        klass = f' class="{css}"' if css else ""
        return f'<a{klass} href="{self.href(path)}">{esc(label)}</a>'

    def render(self) -> str:
        task = esc(self.loc.task_id)
        body = [
            f"<h1>Runs of task {task}</h1>",
            f'<p class="muted">Generated {esc(iso_from_ms(int(self.now_ms)))} from '
            f"<code>{esc(self.loc.rel(self.loc.runs_root))}</code>. A static page: nothing on it runs or "
            "fetches anything; every link opens a file of the run.</p>",
            self.cards(),
            self.task_files(),
            self.charts(),
            self.skipped(),
            self.table(),
            self.failures(),
        ]
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>Runs of task {task}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(part for part in body if part)
            + "\n</body>\n</html>\n"
        )

    def cards(self) -> str:
        views = [v for _, v in self.views]
        finished = [v for v in views if v.status in ("succeeded", "failed", "cancelled")]
        succeeded = sum(1 for v in finished if v.status == "succeeded")
        durations = [v.duration_seconds for v in finished if v.duration_seconds is not None]
        median = _median(durations)
        cards = [
            ("runs", str(len(views))),
            ("succeeded", str(succeeded)),
            ("failed", str(sum(1 for v in views if v.status == "failed"))),
            ("cancelled", str(sum(1 for v in views if v.status == "cancelled"))),
            ("not ended", str(len(views) - len(finished))),
            ("stale", str(sum(1 for v in views if v.stale))),
            ("success rate", f"{succeeded / len(finished):.0%}" if finished else "–"),
            ("median duration", format_seconds(median) if median is not None else "–"),
        ]
        items = "".join(
            f'<div class="card"><b>{esc(value)}</b><span>{esc(label)}</span></div>' for label, value in cards
        )
        return f'<div class="cards">{items}</div>'

    def task_files(self) -> str:
        links = [
            self.link(path, self.loc.rel(path))
            for path in (self.loc.metrics_file, self.loc.metrics_summary_file)
            if path.is_file() and not path.is_symlink()
        ]
        return f'<p class="muted">Task files: {" · ".join(links)}</p>' if links else ""

    def charts(self) -> str:
        finished = [(ms, v) for r, v in self.views if r.terminal and (ms := r.started_ms) is not None]
        if not finished:
            return '<h2>Over time</h2><p class="muted">No finished runs yet.</p>'
        buckets = chart_buckets(finished)
        unit = buckets[0].unit
        span = buckets[0].label if len(buckets) == 1 else f"{buckets[0].label} to {buckets[-1].label}"
        return (
            "<h2>Over time</h2>"
            f'<p class="muted">{len(finished)} finished runs by the {unit} they started (UTC), {esc(span)}; '
            "runs that have not ended are not counted. Hover a bar for its figures.</p>"
            f'<div class="charts">{runs_chart(buckets)}{success_chart(buckets)}{duration_chart(buckets)}</div>'
        )

    def skipped(self) -> str:
        if not self.index.unreadable:
            return ""
        items = "".join(
            f"<li><code>{esc(self.loc.rel(item.manifest_path))}</code>: {esc(item.reason)}</li>"
            for item in self.index.unreadable
        )
        return (
            f'<div class="note"><b>{len(self.index.unreadable)} run(s) skipped</b>: their manifest could not be '
            f"read.<ul>{items}</ul></div>"
        )

    def status_cell(self, run: RunView) -> str:
        status = run.status or "unknown"
        badge = f'<span class="badge {esc(status)}">{esc(status)}</span>'
        if run.stale:
            badge += ' <span class="badge stale">STALE</span>'
        if run.status_detail:
            badge += f'<div class="muted mono">{esc(run.status_detail)}</div>'
        return badge

    def table(self) -> str:
        shown = self.views[: self.table_limit]
        if not shown:
            return f'<h2>Runs</h2><p class="muted">No runs in <code>{esc(self.loc.rel(self.loc.runs_root))}</code>.</p>'
        note = ""
        if len(shown) < len(self.views):
            note = (
                f'<p class="muted">The {len(shown)} newest of {len(self.views)} runs '
                "(<code>--limit N</code> to change); the figures above count them all.</p>"
            )
        rows = []
        for number, (record, run) in enumerate(shown, start=1):
            if self.progress is not None:
                self.progress(number, len(shown))
            rows.append(self.row(number, record, run))
        head = "".join(f"<th>{name}</th>" for name in TABLE_COLUMNS)
        return (
            f"<h2>Runs</h2>{note}<table><thead><tr>{head}</tr></thead>"
            f'<tbody>\n{chr(10).join(rows)}\n</tbody></table>'
        )

    def row(self, number: int, record: RunRecord, run: RunView) -> str:
        run_dir = record.run_dir
        artifacts = run_artifacts(run_dir)
        manifest_link = (
            self.link(run_dir / "manifest.json", run.run_id, "mono")
            if any(a.relative == "manifest.json" for a in artifacts)
            else f'<span class="mono">{esc(run.run_id)}</span>'
        )
        commands = manifest_commands(record.manifest)
        listed = {c.index for c in commands}
        files = " ".join(
            self.link(run_dir / a.relative, a.label)
            for a in artifacts
            if a.relative != "manifest.json" and (a.command is None or a.command not in listed)
        )
        summary = esc(run.summary)
        if run.latest_event:
            summary += f'<div class="muted mono">now: {esc(run.latest_event)}</div>'
        if run.status == "failed":
            summary += f' <a href="#failure-{number}">error details</a>'
        cells = (
            ("id", manifest_link + (f'<div class="links">{files}</div>' if files else "")),
            ("status", self.status_cell(run)),
            ("commands", self.commands_cell(run, commands, artifacts, run_dir)),
            ("when", self.when_cell(run)),
            ("summary", summary),
        )
        tds = "".join(
            f'<td class="{css}" data-label="{name}">{content}</td>'
            for (css, content), name in zip(cells, TABLE_COLUMNS, strict=True)
        )
        return f'<tr id="run-{number}">{tds}</tr>'

    @staticmethod
    def when_cell(run: RunView) -> str:
        """Start; then the end and the duration, or for a run that has not ended how old its
        heartbeat was when the page was made (a finished run's heartbeat says nothing more)."""
        started = when(run.started_at)
        lines = [f'<span class="mono">{esc(started)}</span>'] if started else []
        if run.status in TERMINAL_STATUSES:
            ended = when(run.completed_at)
            if ended[:10] == started[:10]:
                ended = ended[11:]  # the same day: the time is enough
            took = f' <span class="took">({esc(format_seconds(run.duration_seconds))})</span>'
            if run.duration_seconds is None:
                took = ""
            lines.append(f'ended <span class="mono">{esc(ended)}</span>{took}' if ended else "ended")
        elif run.heartbeat_age_seconds is not None:
            lines.append(f"heartbeat {esc(format_seconds(run.heartbeat_age_seconds))} old")
        return "<br>".join(lines)

    def commands_cell(self, run: RunView, commands: list[Command], artifacts: list[Artifact], run_dir: Path) -> str:
        passed = f"{run.commands_passed}/{run.commands_total} passed"
        if not commands:
            return esc(passed)
        items = []
        for command in commands:
            status = command.status or "unknown"
            exit_code = f"exit {command.exit_code}" if command.exit_code else ""
            facts = " · ".join(fact for fact in (exit_code, format_seconds(command.seconds)) if fact)
            links = " ".join(
                self.link(run_dir / a.relative, "error" if a.relative.startswith("errors/") else "response")
                for a in artifacts
                if a.command == command.index
            )
            items.append(
                f'<li value="{command.index}"><span class="badge small {esc(status)}">{esc(status)}</span> '
                f"<code>{esc(command.command)}</code> "
                f'<span class="muted">{esc(facts)}</span> <span class="links">{links}</span>'
                + (f'<span class="summary">{esc(command.summary)}</span>' if command.summary else "")
                + "</li>"
            )
        return f'<details><summary>{esc(passed)}</summary><ol class="commands">{"".join(items)}</ol></details>'

    def failures(self) -> str:
        blocks = []
        for number, (record, run) in enumerate(self.views[: self.table_limit], start=1):
            if run.status != "failed":
                continue
            blocks.append(self.failure_block(number, record, run))
        if not blocks:
            return ""
        return "<h2>Failed runs</h2>" + "\n".join(blocks)

    def failure_block(self, number: int, record: RunRecord, run: RunView) -> str:
        run_dir = record.run_dir
        title = (
            f'<h3 id="failure-{number}"><a class="mono" href="#run-{number}">{esc(run.run_id)}</a> '
            f'<span class="muted">{esc(run.status_detail or "")}</span></h3>'
        )
        errors = error_summaries(run_dir)
        parts = [f'<div class="failure">{title}']
        if not errors:
            commands = record.manifest.get("commands")
            listed = commands if isinstance(commands, list) else []
            failed = [c for c in listed if isinstance(c, dict) and c.get("status") == "failed"]
            if not failed:
                parts.append('<p class="muted">No error artifact and no failed command recorded.</p>')
            for command in failed:
                parts.append(
                    "<dl>"
                    f"<dt>command</dt><dd><code>{esc(cut(_detail_text(command.get('command') or '')))}</code></dd>"
                    f"<dt>exit code</dt><dd>{esc(_detail_text(command.get('exit_code')))}</dd>"
                    f"<dt>summary</dt><dd>{esc(cut(_detail_text(command.get('summary') or '')))}</dd>"
                    "</dl><p class=\"muted\">No error artifact was written for this run.</p>"
                )
        for error in errors:
            rows = [
                f"<dt>artifact</dt><dd>{self.link(run_dir / error.file, error.file)}</dd>",
                f"<dt>reason</dt><dd>{esc(error.reason)}</dd>",
                f"<dt>command</dt><dd><code>{esc(cut(error.command))}</code></dd>",
            ]
            if error.created_at:
                rows.append(f'<dt>at</dt><dd class="mono">{esc(error.created_at)}</dd>')
            rows.extend(f"<dt>{esc(key.replace('_', ' '))}</dt><dd>{esc(value)}</dd>" for key, value in error.details)
            parts.append(f"<dl>{''.join(rows)}</dl>")
        parts.append("</div>")
        return "".join(parts)


def build_report(
    loc: Locations,
    index: RunsIndex,
    now_ms: float,
    table_limit: int = DEFAULT_TABLE_LIMIT,
    progress: ProgressCallback | None = None,
) -> str:
    """The page; ``progress`` is told after each row of the runs table (the slow part)."""
    return Page(loc, index, now_ms, table_limit, progress).render()


def write_report(loc: Locations, text: str) -> Path:
    """Write the page atomically; returns its path."""
    path = report_path(loc)
    path.parent.mkdir(parents=True, exist_ok=True)
    store.atomic_write_text(path, text)
    return path
