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
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mcp_core import store
from mcp_core.jsfmt import dumps_compact, iso_from_ms
from mcp_core.paths import Locations
from mcp_core.runs_index import ProgressCallback, RunRecord, RunsIndex, RunView, format_seconds, view

REPORT_NAME = "report.html"
DEFAULT_TABLE_LIMIT = 200
CHART_GROUPS = 40  # at most this many bars
CHART_GROUP_MIN = 5  # runs per bar, where there are enough: a rate of one run says little
DETAIL_LIMIT = 400  # characters of one error detail shown on the page
_RESPONSE_PREFIX_DIGITS = frozenset("0123456789")


def report_path(loc: Locations) -> Path:
    # Task-scoped under the repo root, like the migration logs, whatever the other roots say.
    return loc.repo_root / ".runs" / loc.task_id / REPORT_NAME


@dataclass(frozen=True)
class Artifact:
    label: str
    relative: str  # from the run directory, '/'-separated


@dataclass(frozen=True)
class ErrorSummary:
    file: str  # from the run directory
    reason: str
    command: str
    created_at: str
    details: list[tuple[str, str]]


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def esc(value: object) -> str:
    """HTML-escaped text; control characters (other than newline and tab) shown as ``\\xNN``."""
    text = "" if value is None else str(value)
    return html.escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text), quote=True)


def cut(text: str, limit: int = DETAIL_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (cut: {len(text)} characters in all)"


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
            found.append(Artifact(name.split("-", 1)[0], name))
    for name in _plain_files(run_dir / "errors"):
        if name.endswith(".json"):
            found.append(Artifact(f"errors/{name.split('-', 1)[0]}", f"errors/{name}"))
    return found


def _read_json_file(path: Path) -> Any:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ValueError("not a regular file")
        try:
            return json.loads(handle.read().decode("utf-8", "surrogateescape"))
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


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


@dataclass(frozen=True)
class Group:
    """Consecutive finished runs (oldest first) drawn as one bar or point."""

    first_ms: float
    last_ms: float
    runs: int
    succeeded: int
    median_seconds: float | None


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def chart_groups(finished: list[tuple[float, RunView]], groups: int = CHART_GROUPS) -> list[Group]:
    """Split finished runs (oldest first) into at most ``groups`` groups of near-equal
    size, each of at least ``CHART_GROUP_MIN`` runs where there are that many."""
    if not finished:
        return []
    # Too few to group: one bar per run shows the sequence of outcomes.
    few = len(finished) < 2 * CHART_GROUP_MIN
    count = len(finished) if few else min(groups, len(finished) // CHART_GROUP_MIN)
    result: list[Group] = []
    for n in range(count):
        chunk = finished[n * len(finished) // count : (n + 1) * len(finished) // count]
        durations = [v.duration_seconds for _, v in chunk if v.duration_seconds is not None]
        result.append(
            Group(
                first_ms=chunk[0][0],
                last_ms=chunk[-1][0],
                runs=len(chunk),
                succeeded=sum(1 for _, v in chunk if v.status == "succeeded"),
                median_seconds=_median(durations),
            )
        )
    return result


def _day(ms: float) -> str:
    return iso_from_ms(int(ms))[:16].replace("T", " ")


def _span(group: Group) -> str:
    first, last = _day(group.first_ms), _day(group.last_ms)
    return first if first == last else f"{first} – {last}"


_W, _H, _LEFT, _TOP, _BOTTOM = 640, 190, 56, 12, 30


def success_chart(groups: list[Group]) -> str:
    plot_w, plot_h = _W - _LEFT - 10, _H - _TOP - _BOTTOM
    slot = plot_w / len(groups)
    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="Success rate over time">']
    for pct in (0, 50, 100):
        y = _TOP + plot_h * (1 - pct / 100)
        parts.append(f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{_W - 10}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{pct}%</text>')
    for n, group in enumerate(groups):
        rate = group.succeeded / group.runs
        height = max(plot_h * rate, 3.0)  # a 0% bar stays visible
        width = min(slot * 0.76, 48.0)
        x = _LEFT + n * slot + (slot - width) / 2
        css = "bar good" if rate >= 0.8 else "bar fair" if rate >= 0.5 else "bar poor"
        tip = f"{_span(group)}: {group.succeeded} of {group.runs} succeeded ({rate:.0%})"
        parts.append(
            f'<rect class="{css}" x="{x:.1f}" y="{_TOP + plot_h - height:.1f}" width="{width:.1f}" '
            f'height="{height:.1f}"><title>{esc(tip)}</title></rect>'
        )
    parts.append(_x_labels(groups))
    parts.append("</svg>")
    return "".join(parts)


def _nice_ceiling(value: float) -> float:
    for step in (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400):
        if value <= step:
            return float(step)
    return float(int(value / 86400 + 1) * 86400)


def duration_chart(groups: list[Group]) -> str:
    plot_w, plot_h = _W - _LEFT - 10, _H - _TOP - _BOTTOM
    slot = plot_w / len(groups)
    medians = [g.median_seconds for g in groups if g.median_seconds is not None]
    top = _nice_ceiling(max(medians) if medians else 1)
    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="Median duration over time">']
    for fraction in (0, 0.5, 1):
        y = _TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{_W - 10}" y2="{y:.1f}"/>')
        label = format_seconds(top * fraction) if fraction else "0"
        parts.append(f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(label)}</text>')
    points: list[tuple[float, float, Group]] = []
    for n, group in enumerate(groups):
        if group.median_seconds is None:
            continue
        x = _LEFT + n * slot + slot / 2
        y = _TOP + plot_h * (1 - group.median_seconds / top)
        points.append((x, y, group))
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
        parts.append(f'<polyline class="line" points="{path}"/>')
    for x, y, group in points:
        tip = f"{_span(group)}: median {format_seconds(group.median_seconds)} over {group.runs} runs"
        parts.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="3.2"><title>{esc(tip)}</title></circle>')
    parts.append(_x_labels(groups))
    parts.append("</svg>")
    return "".join(parts)


def _x_labels(groups: list[Group]) -> str:
    y = _H - 10
    first = f'<text class="axis" x="{_LEFT}" y="{y}" text-anchor="start">{esc(_day(groups[0].first_ms))}</text>'
    if len(groups) == 1 and groups[0].first_ms == groups[0].last_ms:
        return first
    last = f'<text class="axis" x="{_W - 10}" y="{y}" text-anchor="end">{esc(_day(groups[-1].last_ms))}</text>'
    return first + last


# ---------------------------------------------------------------- the page

STYLE = """
:root { color-scheme: light; --ink:#1d232b; --muted:#5d6875; --line:#d9dee4; --bg:#f6f7f9;
  --good:#1f8a4c; --poor:#c0392b; --fair:#d4a017; --info:#2463b5; --stale:#b35c00; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 28px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 0 0 6px; }
.muted { color: var(--muted); }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 12.5px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 4px; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px;
  min-width: 112px; }
.card b { display: block; font-size: 20px; }
.card span { color: var(--muted); font-size: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; }
.charts figure { margin: 0; flex: 1 1 520px; max-width: 680px; border: 1px solid var(--line);
  border-radius: 6px; padding: 10px 12px 4px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
.chart { width: 100%; height: auto; display: block; }
.grid { stroke: var(--line); stroke-width: 1; }
.axis { fill: var(--muted); font-size: 11px; }
.bar.good { fill: var(--good); } .bar.fair { fill: var(--fair); } .bar.poor { fill: var(--poor); }
.line { fill: none; stroke: var(--info); stroke-width: 2; }
.dot { fill: var(--info); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { position: sticky; top: 0; background: var(--bg); font-size: 12px; text-transform: uppercase;
  letter-spacing: .03em; color: var(--muted); }
tbody tr:hover { background: #fafbfc; }
td.num { text-align: right; white-space: nowrap; }
td.id { white-space: nowrap; }
td.when { white-space: nowrap; }
td.summary { max-width: 420px; overflow-wrap: anywhere; }
.links a { margin-right: 6px; white-space: nowrap; }
a { color: var(--info); text-decoration: none; } a:hover { text-decoration: underline; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; font-weight: 600;
  color: #fff; background: var(--muted); white-space: nowrap; }
.badge.succeeded { background: var(--good); } .badge.failed { background: var(--poor); }
.badge.in_progress, .badge.queued { background: var(--info); } .badge.cancelled { background: #7a8591; }
.badge.stale { background: var(--stale); margin-left: 4px; }
.failure { border: 1px solid var(--line); border-left: 4px solid var(--poor); border-radius: 6px;
  padding: 10px 14px; margin: 10px 0; }
.failure dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0 0; }
.failure dt { color: var(--muted); }
.failure dd { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.note { background: #fff8e6; border: 1px solid #f0d58c; border-radius: 6px; padding: 8px 12px; }
"""

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
        finished = sorted(
            ((r.started_ms, v) for r, v in self.views if r.terminal and r.started_ms is not None),
            key=lambda item: item[0],
        )
        if not finished:
            return '<h2>Over time</h2><p class="muted">No finished runs yet.</p>'
        groups = chart_groups(finished)
        sizes = sorted({g.runs for g in groups})
        size = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"
        per = "each bar and point is one run" if sizes == [1] else f"each bar and point is {size} consecutive runs"
        return (
            "<h2>Over time</h2>"
            f'<p class="muted">{len(finished)} finished runs, oldest on the left; {per}. '
            "Hover a bar or point for its figures.</p>"
            '<div class="charts">'
            f"<figure><figcaption>Success rate</figcaption>{success_chart(groups)}</figure>"
            f"<figure><figcaption>Duration (median)</figcaption>{duration_chart(groups)}</figure>"
            "</div>"
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
            run_dir = record.run_dir
            artifacts = run_artifacts(run_dir)
            manifest_link = (
                self.link(run_dir / "manifest.json", run.run_id, "mono")
                if any(a.relative == "manifest.json" for a in artifacts)
                else f'<span class="mono">{esc(run.run_id)}</span>'
            )
            files = " ".join(
                self.link(run_dir / a.relative, a.label) for a in artifacts if a.relative != "manifest.json"
            )
            summary = esc(run.summary)
            if run.status == "failed":
                summary += f' <a href="#failure-{number}">error details</a>'
            rows.append(
                f'<tr id="run-{number}"><td class="id">{manifest_link}</td><td>{self.status_cell(run)}</td>'
                f'<td class="num">{run.commands_passed}/{run.commands_total}</td>'
                f'<td class="when mono">{esc(run.started_at or "")}</td>'
                f'<td class="num">{esc(format_seconds(run.duration_seconds))}</td>'
                f'<td class="num">{esc(format_seconds(run.heartbeat_age_seconds))}</td>'
                f'<td class="summary">{summary}</td><td class="links">{files}</td></tr>'
            )
        names = ("Run (manifest)", "Status", "Passed", "Started", "Duration", "Heartbeat age", "Summary", "Files")
        head = "".join(f"<th>{name}</th>" for name in names)
        return (
            f"<h2>Runs</h2>{note}<table><thead><tr>{head}</tr></thead>"
            f'<tbody>\n{chr(10).join(rows)}\n</tbody></table>'
        )

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
                f"<dt>command</dt><dd><code>{esc(error.command)}</code></dd>",
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
