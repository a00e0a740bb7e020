"""Metrics: one JSON line per run that ends, written once; and the summary."""

from __future__ import annotations

import fcntl
import mmap
import os
from typing import Any

from mcp_core.jsfmt import dumps_compact, iso_now, parse_timestamp_ms
from mcp_core.manifest import guardrail_succeeded
from mcp_core.paths import Locations


def duration_seconds(started_at: object, completed_at: object) -> float | None:
    start = parse_timestamp_ms(started_at)
    end = parse_timestamp_ms(completed_at)
    if start is None or end is None:
        return None
    return max(0.0, (end - start) / 1000)


def metrics_entry(manifest: dict[str, Any], recorded_at: str) -> dict[str, Any]:
    """The metrics line of a run that reached a terminal status (CONTRACT section 6)."""
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


def _already_recorded(fd: int, prefix: bytes) -> bool:
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as view:
        position = view.find(prefix)
        while position != -1:
            if position == 0 or view[position - 1 : position] == b"\n":
                return True
            position = view.find(prefix, position + 1)
    return False


def record_run(loc: Locations, manifest: dict[str, Any]) -> bool:
    """Append the run's metrics line unless this ending of the run is already there.

    The check and the append happen under one lock on ``metrics.json``, so a
    worker killed between appending and saving ``metrics_recorded`` and then
    finished again never writes a second line. Returns True when a line was added.
    """
    entry = metrics_entry(manifest, iso_now())
    loc.metrics_root.mkdir(parents=True, exist_ok=True)
    path = loc.metrics_file
    prefix = _identity_prefix(entry)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _already_recorded(fd, prefix):
            return False
        size = os.fstat(fd).st_size
        line = dumps_compact(entry).encode("utf-8", "surrogateescape") + b"\n"
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            # A line cut short by a crash must not swallow ours.
            last = os.pread(fd, 1, size - 1)
            if last != b"\n":
                line = b"\n" + line
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        return True
    finally:
        os.close(fd)

