"""Watching a run until it ends or nobody is left to end it (poll --watch, diagnostics).

A block is shown every ``interval`` seconds; in between, the manifest is
looked at (``os.stat``) every ``TICK_SECONDS``, so the final block comes as
soon as the run is terminal. A watch also ends on a run whose worker is known
dead (its pid gone or reused, by start time) or whose heartbeat is stale: it
shows that block and the caller says how to resume.

A run is terminal a moment before its ending is fully recorded (its metrics
line comes after the terminal save): a watch returns only once the record has
settled, so what runs next (``make metrics``, a reviewer's script) finds the
metrics line there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from mcp_core import manifest as manifest_mod
from mcp_core import run_record, store
from mcp_core.heartbeat import heartbeat_state
from mcp_core.jsfmt import now_ms

TICK_SECONDS = 0.1
LIVENESS_EVERY_SECONDS = 1.0
# How long a watch waits for a live worker to record a terminal run's metrics.
SETTLE_SECONDS = 10.0


class Ending(NamedTuple):
    record: dict[str, Any]  # the manifest as last shown
    dead: bool  # the run is not over but nobody will move it on (resume it)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def is_dead(record: dict[str, Any]) -> bool:
    """Not terminal, and its worker is known dead or its heartbeat is stale."""
    if manifest_mod.is_terminal(record):
        return False
    return heartbeat_state(record, now_ms())["stale"] or run_record.worker_known_dead(record)


def settled(record: dict[str, Any]) -> bool:
    """Terminal with its metrics recorded, or with no worker left to record them."""
    return record.get("metrics_recorded") is True or not run_record.worker_alive(record)


def _wait_until_settled(
    path: Path, sleep: Callable[[float], None], clock: Callable[[], float]
) -> None:
    deadline = clock() + SETTLE_SECONDS
    while clock() < deadline:
        record = _read(path)
        if record is None or settled(record):
            return
        sleep(TICK_SECONDS)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = store.read_json(path)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def watch(
    show: Callable[[], dict[str, Any]],
    manifest_path: Callable[[], Path],
    interval: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Ending:
    """Show blocks until the run is terminal or dead; returns the last one shown."""
    while True:
        shown = show()
        if manifest_mod.is_terminal(shown):
            _wait_until_settled(manifest_path(), sleep, clock)
            return Ending(shown, False)
        if is_dead(shown):
            return Ending(shown, True)
        path = manifest_path()
        seen = _signature(path)
        next_block = clock() + interval
        next_liveness = clock() + LIVENESS_EVERY_SECONDS
        while clock() < next_block:
            sleep(min(TICK_SECONDS, max(0.0, next_block - clock())))
            current = _signature(path)
            changed = current != seen
            seen = current
            if not changed and clock() < next_liveness:
                continue
            next_liveness = clock() + LIVENESS_EVERY_SECONDS
            record = _read(path)
            if record is not None and (manifest_mod.is_terminal(record) or is_dead(record)):
                break


def resume_hint(run_id: str, record: dict[str, Any]) -> str:
    """What to tell a person whose watch ended on a run nobody will move on."""
    resume = f"Resume it with: scripts/mcp-runner-start.sh --resume {run_id}"
    if not heartbeat_state(record, now_ms())["stale"]:
        return f"The worker of run {run_id} is no longer running. {resume}"
    if run_record.worker_alive(record):
        state = f"its worker (PID {record.get('runner_pid')}) is still running but has stopped reporting"
    else:
        state = "its worker is no longer running"
    return f"Heartbeat of run {run_id} is stale: {state}. {resume}"
