"""The one way a run reaches a terminal status, and its metrics line.

Order matters so that a kill at any point neither loses nor duplicates the
metrics line:

1. one locked save sets the terminal ``status``, ``status_detail``,
   ``completed_at``, the guardrail sentence in ``summary`` and
   ``metrics_recorded: false``;
2. ``metrics.record_run`` appends the line unless this ending of the run is
   already in ``metrics.json`` (checked under the file's lock);
3. a second save sets ``metrics_recorded: true``.

A process killed after 1 leaves a terminal run with ``metrics_recorded``
false: ``complete_pending_metrics`` (called by resume, cancel and a relaunched
worker) finishes steps 2 and 3, and step 2's check keeps it to one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from mcp_core import manifest as manifest_mod
from mcp_core import metrics, process, run_record, store
from mcp_core.error_artifacts import write_error_artifact
from mcp_core.faults import fault_point
from mcp_core.paths import Locations

CANCELLED_REASON = "cancelled"


class FinishResult(NamedTuple):
    manifest: dict[str, Any]
    changed: bool  # False when the run was already terminal (only metrics were completed)


def append_summary(manifest: dict[str, Any], line: str) -> None:
    """Add ``line`` to ``manifest.summary`` (newline-joined) unless it is already there."""
    existing = manifest.get("summary")
    if isinstance(existing, str) and existing:
        if line not in existing:
            manifest["summary"] = f"{existing}\n{line}"
    else:
        manifest["summary"] = line


def finish_run(
    loc: Locations,
    manifest_path: Path,
    status: str,
    status_detail: str | None,
    *,
    update: Callable[[dict[str, Any], str], None] | None = None,
    summary: str | None = None,
    log: TextIO | None = None,
    by: run_record.Identity | None = None,
) -> FinishResult:
    """Move a run to ``status`` (succeeded, failed or cancelled) and record its metrics.

    ``update(manifest, now)`` may change commands in the same locked save.
    ``summary`` is added to ``manifest.summary`` before the guardrail sentence.
    ``by`` is the worker ending its own run (NotOwner when it is no longer its
    own); None for cancel, which ends a run only when its worker is not alive.
    A run that is already terminal is left as it is; only a pending metrics
    line is completed. The guardrail sentence is printed to ``log``
    (default: stderr, which for the worker is ``runner.log``).
    """

    def change(manifest: dict[str, Any], now: str) -> None:
        if update is not None:
            update(manifest, now)
        manifest["status_detail"] = status_detail
        if summary:
            append_summary(manifest, summary)
        sentence = manifest_mod.guardrail_sentence(manifest)
        if sentence:
            append_summary(manifest, sentence)

    changed = run_record.ended(manifest_path, status, change, by=by)
    complete_pending_metrics(loc, manifest_path, log=log)
    return FinishResult(store.read_json(manifest_path, follow=False), changed)


def complete_pending_metrics(loc: Locations, manifest_path: Path, *, log: TextIO | None = None) -> bool:
    """For a terminal run whose ``metrics_recorded`` is not true: make sure the
    guardrail sentence is in its summary, append its metrics line (once), set
    ``metrics_recorded: true``. Returns True when a line was appended."""
    real = manifest_path  # the run's own manifest: saves refuse a symlink
    current = store.read_json(real, follow=False)
    if not isinstance(current, dict) or not manifest_mod.is_terminal(current):
        return False
    if current.get("metrics_recorded") is True:
        return False
    sentence = manifest_mod.guardrail_sentence(current)
    summary = current.get("summary")
    needs_sentence = bool(sentence) and not (isinstance(summary, str) and sentence is not None and sentence in summary)
    search_from = metrics.noted_offset(current)
    if needs_sentence or search_from is None:
        search_from = metrics.metrics_file_size(loc) if search_from is None else search_from

        def prepare(manifest: dict[str, Any]) -> None:
            if needs_sentence and sentence:
                append_summary(manifest, sentence)
            manifest[metrics.OFFSET_KEY] = search_from  # before the append: see metrics_file_size

        current = run_record.metrics_prepared(real, prepare)
    fault_point("before-metrics-append")
    added = metrics.record_run(loc, current, search_from=search_from)
    fault_point("after-metrics-append")
    if added and sentence:
        stream = log if log is not None else sys.stderr
        print(sentence, file=stream, flush=True)
    # Only for the ending just recorded (a retried run may have moved on); the
    # next ending (a retry) notes its own offset.
    run_record.metrics_recorded(real, (current.get("status"), current.get("completed_at")), metrics.OFFSET_KEY)
    return added


def cancel_run(
    loc: Locations,
    manifest_path: Path,
    message: str,
    *,
    log: TextIO | None = None,
    by: run_record.Identity | None = None,
) -> FinishResult:
    """Mark a run ``cancelled``: a command still ``running`` becomes ``failed``
    with ``message`` as its summary and an error artifact (reason
    ``cancelled``); pending commands stay pending. Usable for a run whose
    worker is already dead (the cancel command) as well as by the worker."""
    run_dir = manifest_path.parent

    def fail_running(manifest: dict[str, Any], now: str) -> None:
        for command in manifest.get("commands") or []:
            if not isinstance(command, dict) or command.get("status") != "running":
                continue
            command["status"] = "failed"
            command["completed_at"] = now
            command["summary"] = message
            command["error_file"] = write_error_artifact(
                loc, run_dir, manifest, command, CANCELLED_REASON, {"message": message}, now
            )

    return finish_run(loc, manifest_path, "cancelled", None, update=fail_running, summary=message, log=log, by=by)


def stop_recorded_server(manifest: dict[str, Any], grace_seconds: float = 2.0) -> bool:
    """Stop the MCP server a dead worker left behind (its whole process group),
    as recorded in ``manifest.mcp_server`` {pid, start_ticks}. Returns True when
    it was still running. The pid is only trusted when its start time matches."""
    server = manifest.get("mcp_server")
    if not isinstance(server, dict):
        return False
    pid = server.get("pid")
    ticks = server.get("start_ticks")
    if not isinstance(ticks, int) or not process.is_alive(pid, ticks):
        return False
    assert isinstance(pid, int)
    # The worker started the server in a new session: its pid names the group.
    process.stop_group(pid, grace_seconds)
    return True
