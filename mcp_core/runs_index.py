"""Every run of a task, read from its manifest, for the overview, the report and prune.

Reading 10,000 runs must stay well under a second, so this module reads only
``<runs root>/<id>/manifest.json`` (one open and read each, no stat of the other
files of a run) and never writes: the heartbeat age is computed from the
manifest's ``heartbeat_at`` as poll computes it, without poll's stale mark.
"""

from __future__ import annotations

import gc
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_core import store
from mcp_core.codex_events import running_command_event
from mcp_core.errors import RunnerError
from mcp_core.heartbeat import heartbeat_state
from mcp_core.jsfmt import duration_seconds, parse_timestamp_ms
from mcp_core.jsonparse import json_error_text
from mcp_core.manifest import MANIFEST_NAME, TERMINAL_STATUSES
from mcp_core.output import error_line
from mcp_core.paths import Locations, validate_run_id
from mcp_core.termtext import cut, printable

KNOWN_STATUSES = ("queued", "in_progress", "succeeded", "failed", "cancelled")
STALE = "stale"
_RUN_ID_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:-\d{1,3})?Z")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class RunRecord:
    """One run directory whose manifest is a JSON object."""

    runs_root: Path
    run_id: str  # the directory name: what every path is built from
    manifest: dict[str, Any]
    started_ms: float | None  # started_at, else the stamp in the run id

    @property
    def run_dir(self) -> Path:
        return self.runs_root / self.run_id

    @property
    def status(self) -> str | None:
        status = self.manifest.get("status")
        return status if isinstance(status, str) else None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class Unreadable:
    """A run directory whose manifest could not be used, and why."""

    run_id: str
    manifest_path: Path
    reason: str


@dataclass(frozen=True)
class RunsIndex:
    runs: list[RunRecord]  # newest first
    unreadable: list[Unreadable]  # in directory-name order


@dataclass(frozen=True)
class RunView:
    """What a person sees of a run in the overview and the report."""

    run_id: str
    status: str | None
    status_detail: str | None
    stale: bool  # heartbeat stale and the run not terminal
    commands_passed: int
    commands_failed: int
    commands_total: int
    started_at: str | None
    completed_at: str | None
    duration_seconds: float | None
    heartbeat_age_seconds: float | None  # None once the run has ended: its heartbeat no longer says anything
    ended_ago_seconds: float | None  # from completed_at, for a run that has ended
    summary: str  # first line of the run's summary, else of the failing command's
    latest_event: str | None = None  # the running command's latest Codex event (mcp_core.codex_events)


def run_id_ms(run_id: str) -> float | None:
    """The time in a runner-made run id (``<stamp>-<pid>``), or None."""
    match = _RUN_ID_STAMP.match(run_id)
    return parse_timestamp_ms(match.group()) if match else None


def _read_manifest(root_fd: int, run_id: str) -> dict[str, Any] | str:
    """The manifest object of ``<root>/<run_id>``, or a short reason it cannot be used."""
    try:
        # Relative to the open runs root (no path walk per run); not followed: a
        # manifest.json planted as a symlink must not make us read elsewhere, nor
        # a FIFO hang us, nor a huge file fill the memory.
        data = store.parse_json(store.read_run_file(f"{run_id}/{MANIFEST_NAME}", follow=False, dir_fd=root_fd))
    except FileNotFoundError:
        return "manifest missing"
    except OSError as exc:
        return exc.strerror or str(exc)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {json_error_text(exc)}"
    except ValueError as exc:  # undecodable bytes, nested too deeply
        return f"not valid JSON: {exc}"
    if not isinstance(data, dict):
        return "not a JSON object"
    return data


def read_manifest(run_dir: Path) -> dict[str, Any] | str:
    """One run's manifest (as ``read_runs`` reads it), or why it cannot be used."""
    try:
        root_fd = os.open(run_dir.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        return _read_manifest(root_fd, run_dir.name)
    finally:
        os.close(root_fd)


def sort_key(record: RunRecord) -> tuple[float, str]:
    return (record.started_ms if record.started_ms is not None else float("-inf"), record.run_id)


ProgressCallback = Callable[[int, int], None]  # (runs read, runs in all)


def read_runs(runs_root: Path, progress: ProgressCallback | None = None) -> RunsIndex:
    """Read every run directory directly under ``runs_root`` (newest first).

    Hidden entries and plain files are not runs and are passed over; a run
    directory that is a symlink, has an invalid name, or whose manifest is
    missing, unreadable or not a JSON object is reported in ``unreadable``.
    ``progress`` is told after each run directory.
    """
    collecting = gc.isenabled()
    # Every parsed manifest is kept, so the collector's passes over the growing
    # heap (150,000 containers for 10,000 runs) find nothing: skip them (~15%).
    gc.disable()
    try:
        return _read_runs(runs_root, progress)
    finally:
        if collecting:
            gc.enable()


def _read_runs(runs_root: Path, progress: ProgressCallback | None) -> RunsIndex:
    runs: list[RunRecord] = []
    unreadable: list[Unreadable] = []
    try:
        root_fd = os.open(runs_root, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return RunsIndex([], [])
    except OSError as exc:
        raise RunnerError(f"Cannot read runs root {runs_root}: {exc.strerror or exc}") from exc
    try:
        with os.scandir(root_fd) as scan:
            # d_type from the directory listing: no stat per entry.
            names = [
                (entry.name, entry.is_symlink())
                for entry in scan
                if not entry.name.startswith(".") and (entry.is_symlink() or entry.is_dir(follow_symlinks=False))
            ]
        names.sort()
        for done, (name, is_link) in enumerate(names):
            if progress is not None:
                progress(done, len(names))
            if is_link:
                reason = "run directory is a symlink, not followed"
                unreadable.append(Unreadable(name, runs_root / name / MANIFEST_NAME, reason))
                continue
            try:
                if not _PLAIN_NAME.match(name) or len(name) > 200:
                    validate_run_id(name)  # the full check, for unusual names only
            except RunnerError:
                unreadable.append(Unreadable(name, runs_root / name / MANIFEST_NAME, "not a valid run id"))
                continue
            manifest = _read_manifest(root_fd, name)
            if isinstance(manifest, str):
                unreadable.append(Unreadable(name, runs_root / name / MANIFEST_NAME, manifest))
                continue
            started = parse_timestamp_ms(manifest.get("started_at"))
            if started is None:
                started = run_id_ms(name)
            runs.append(RunRecord(runs_root, name, manifest, started))
        if progress is not None:
            progress(len(names), len(names))
    finally:
        os.close(root_fd)
    runs.sort(key=sort_key, reverse=True)
    return RunsIndex(runs, unreadable)


def read_task_runs(loc: Locations, progress: ProgressCallback | None = None) -> RunsIndex:
    return read_runs(loc.runs_root, progress)


def first_line(value: object) -> str:
    """The first non-blank line, cut to what a view shows (``termtext.cut``)."""
    if not isinstance(value, str):
        return ""
    for line in value.splitlines():
        if line.strip():
            return cut(line.strip())
    return ""


def _seconds_since(timestamp: object, now_ms: float) -> float | None:
    moment = parse_timestamp_ms(timestamp)
    return None if moment is None else max(0.0, (now_ms - moment) / 1000)


def _shown(value: object) -> str | None:
    return cut(value) if isinstance(value, str) and value else None


def view(record: RunRecord, now_ms: float) -> RunView:
    manifest = record.manifest
    raw_commands = manifest.get("commands")
    commands = [c for c in raw_commands if isinstance(c, dict)] if isinstance(raw_commands, list) else []
    passed = sum(1 for c in commands if c.get("status") == "succeeded")
    failed = sum(1 for c in commands if c.get("status") == "failed")
    beat = heartbeat_state(manifest, now_ms)
    summary = first_line(manifest.get("summary"))
    if not summary:
        summary = next((first_line(c.get("summary")) for c in commands if c.get("status") == "failed"), "")
    detail = manifest.get("status_detail")
    started_at = manifest.get("started_at")
    completed_at = manifest.get("completed_at")
    return RunView(
        run_id=record.run_id,
        status=cut(record.status) if record.status is not None else None,
        status_detail=_shown(detail),
        stale=bool(beat["stale"]) and not record.terminal,
        commands_passed=passed,
        commands_failed=failed,
        commands_total=len(commands),
        started_at=cut(started_at) if isinstance(started_at, str) else None,
        completed_at=cut(completed_at) if isinstance(completed_at, str) else None,
        duration_seconds=duration_seconds(started_at, completed_at) if record.terminal else None,
        heartbeat_age_seconds=None if record.terminal else beat["age_seconds"],
        ended_ago_seconds=_seconds_since(completed_at, now_ms) if record.terminal else None,
        summary=summary,
        latest_event=None if record.terminal else running_command_event(manifest, record.run_dir),
    )


def parse_status_filter(value: str) -> frozenset[str]:
    """``--status`` takes one status or a comma-separated list; ``stale`` is a status too."""
    wanted = frozenset(part.strip() for part in value.split(",") if part.strip())
    allowed = (*KNOWN_STATUSES, STALE)
    unknown = sorted(wanted - set(allowed))
    if not wanted or unknown:
        shown = unknown[0] if unknown else value
        raise RunnerError(f"Unsupported status: {shown}. Expected one of: {', '.join(allowed)}.")
    return wanted


def is_stale(record: RunRecord, now_ms: float) -> bool:
    """Not terminal and the heartbeat stale (what poll would mark; nothing is written)."""
    return not record.terminal and bool(heartbeat_state(record.manifest, now_ms)["stale"])


def matches(record: RunRecord, wanted: frozenset[str], now_ms: float) -> bool:
    return record.status in wanted or (STALE in wanted and is_stale(record, now_ms))


def format_seconds(seconds: float | None) -> str:
    """A duration for people: ``7.3s``, ``12m 05s``, ``3h 02m``, ``4d 06h``."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def warn_unreadable(loc: Locations, unreadable: list[Unreadable]) -> None:
    """One warning line on stderr for each manifest skipped."""
    for item in unreadable:
        error_line(f"Warning: skipping {printable(loc.rel(item.manifest_path))}: {printable(item.reason)}")
