"""Metrics: one JSON line per run that ends, appended once (docs/interface.md section 8).

Imported by every worker (through lifecycle) at the end of a run: kept light,
without msgspec; the summary is in ``mcp_core.metrics_summary``.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
from typing import Any

from mcp_core import store
from mcp_core.jsfmt import dumps_compact, duration_seconds, iso_now
from mcp_core.manifest import guardrail_succeeded
from mcp_core.paths import Locations


def metrics_entry(manifest: dict[str, Any], recorded_at: str) -> dict[str, Any]:
    """The metrics line of a run that reached a terminal status (docs/interface.md section 8)."""
    commands = [c for c in manifest.get("commands") or [] if isinstance(c, dict)]
    return {
        "run_id": manifest.get("run_id"),
        "task_id": manifest.get("task_id"),
        "started_at": manifest.get("started_at"),
        "completed_at": manifest.get("completed_at"),
        "duration_seconds": duration_seconds(manifest.get("started_at"), manifest.get("completed_at")),
        "status": manifest.get("status"),
        "commands_passed": sum(1 for c in commands if c.get("status") == "succeeded"),
        "commands_failed": sum(1 for c in commands if c.get("status") == "failed"),
        "guardrails_present": guardrail_succeeded(manifest),
        "artifact_path": manifest.get("artifact_root"),
        "recorded_at": recorded_at,
    }


def _identity_prefix(entry: dict[str, Any]) -> bytes:
    """The start of an entry's line up to ``completed_at``: the same for every
    attempt to record the same ending of the same run."""
    head = {k: entry[k] for k in ("run_id", "task_id", "started_at", "completed_at")}
    return dumps_compact(head)[:-1].encode("utf-8", "surrogateescape") + b","


def _already_recorded(fd: int, prefix: bytes, search_from: int) -> bool:
    """Whether a whole line of ``fd`` starting with ``prefix`` begins at or after
    ``search_from`` (from the start when the file is shorter than that)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    start = search_from if 0 <= search_from <= size else 0
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as view:
        position = view.find(prefix, start)
        while position != -1:
            if position == 0 or view[position - 1 : position] == b"\n":
                # Only a whole line counts: a SIGKILL in the middle of an append
                # can leave the start of our own line behind, cut short.
                end = view.find(b"\n", position)
                if end != -1 and _is_json_object(view[position:end]):
                    return True
            position = view.find(prefix, position + 1)
    return False


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


OFFSET_KEY = "metrics_offset"  # in the manifest of a run whose line is being recorded


def noted_offset(manifest: dict[str, Any]) -> int | None:
    """The size of metrics.json noted in the manifest before its line's append, if any."""
    value = manifest.get(OFFSET_KEY)
    return value if type(value) is int and value >= 0 else None


def metrics_file_size(loc: Locations) -> int:
    """The size of metrics.json now (0 when there is none): where a run's line will
    be found, at or after it, once it is appended. Noted in the manifest before
    the append (``lifecycle.complete_pending_metrics``), so that a retry after a
    crash between the append and the manifest's save searches only from there."""
    try:
        return os.stat(loc.metrics_file).st_size
    except FileNotFoundError:
        return 0


def record_run(loc: Locations, manifest: dict[str, Any], *, search_from: int = 0) -> bool:
    """Append the run's metrics line unless this ending of the run is already there.

    The check and the append happen under one lock on ``metrics.json``, so a
    worker killed between appending and saving ``metrics_recorded`` and then
    finished again never writes a second line. The check reads the file from
    ``search_from`` on (a size noted before the first attempt to append: see
    ``metrics_file_size``), so its cost does not grow with the file. Returns
    True when a line was added.
    """
    entry = metrics_entry(manifest, iso_now())
    loc.metrics_root.mkdir(parents=True, exist_ok=True)
    path = loc.metrics_file
    prefix = _identity_prefix(entry)
    fd = store.open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)  # a FIFO there would block the worker
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _already_recorded(fd, prefix, search_from):
            return False
        size = os.fstat(fd).st_size
        line = dumps_compact(entry).encode("utf-8", "surrogateescape") + b"\n"
        if size:
            # A line cut short by a crash must not swallow ours.
            last = os.pread(fd, 1, size - 1)
            if last != b"\n":
                line = b"\n" + line
        # One write: a summary reading without a lock sees the line whole or not at all.
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        return True
    finally:
        os.close(fd)
