"""cancel: stop a run's worker and leave the run ``cancelled``, reviewable, with its metrics line."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcp_core import manifest, process, store
from mcp_core.argscan import Messages, scan
from mcp_core.errors import RunnerError, UsageError
from mcp_core.manifest import RUNNER_LOG
from mcp_core.output import check_format, error_line, print_result, run_cli
from mcp_core.paths import Locations, locate, validate_run_id

USAGE = """Usage: scripts/mcp-runner-cancel.sh <run-id> [--format text|json] [--wait SECONDS]

Cancel a run. A live worker gets SIGTERM: it stops the running command (its
whole process group) and the MCP server, marks the run cancelled and records its
metrics line; cancel waits for that. If the worker does not finish within
--wait seconds it is killed (SIGKILL) and cancel marks the run itself. A run
whose worker is already gone is marked cancelled at once. A run that has ended
cannot be cancelled.

Options:
  --format <format>   Output: text or json [default: text].
  --wait <seconds>    How long to wait for the worker to stop [default: 30].
  -h, --help          Show this help and exit.
"""

USAGE_LINE = USAGE.splitlines()[0]
MESSAGES = Messages(unknown=lambda arg: f"Unknown option for cancel: {arg}")
DEFAULT_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05
KILL_GRACE_SECONDS = 5.0
DEAD_WORKER_MESSAGE = (
    "Run cancelled by scripts/mcp-runner-cancel.sh; its worker was no longer running "
    "(a worker out of sight here, in another PID namespace, stops at its next heartbeat)."
)
KILLED_WORKER_MESSAGE = (
    "Run cancelled by scripts/mcp-runner-cancel.sh; its worker did not stop within {wait:g}s and was killed."
)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = store.read_json(path, follow=False)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _mark_cancelled(loc: Locations, manifest_path: Path, message: str) -> dict[str, Any]:
    """Mark the run cancelled ourselves, through the same path the worker takes
    (a running command becomes failed with an error artifact, metrics once).
    ``run_record.ended`` does it only while no worker is alive: one that a
    resume launched meanwhile is left to be signalled. Returns the record."""
    from mcp_core import lifecycle

    record = _read(manifest_path)
    if record is not None:
        lifecycle.stop_recorded_server(record)  # a server the dead worker left behind
    # What the worker would have logged (the guardrail sentence) goes where it would have.
    with os.fdopen(store.open_append(manifest_path.parent / RUNNER_LOG), "a", encoding="utf-8") as log:
        return lifecycle.cancel_run(loc, manifest_path, message, log=log).manifest


def _complete_pending_metrics(loc: Locations, manifest_path: Path) -> None:
    from mcp_core import lifecycle

    with os.fdopen(store.open_append(manifest_path.parent / RUNNER_LOG), "a", encoding="utf-8") as log:
        lifecycle.complete_pending_metrics(loc, manifest_path, log=log)


def _record_cancel(
    loc: Locations, manifest_path: Path, message: str, signalled: list[tuple[int, object]]
) -> dict[str, Any]:
    """``_mark_cancelled``, saying truthfully what happened when the worker was
    stopped but the run cannot be written (a read-only or full disk)."""
    try:
        return _mark_cancelled(loc, manifest_path, message)
    except OSError as exc:
        if not signalled:
            raise
        where = f": {loc.rel(Path(exc.filename))}" if exc.filename else ""
        raise RunnerError(
            f"Cancel failed: the worker of run {manifest_path.parent.name} (PID {signalled[0][0]}) was stopped, "
            f"but the run cannot be recorded as cancelled: {exc.strerror or exc}{where}. "
            "Run cancel again once it can be written."
        ) from exc


def _kill_worker(pid: int, ticks: object) -> None:
    """SIGKILL the worker's process group (it leads its own session), then wait for it."""
    if not process.is_alive(pid, ticks):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getsid(pid) == pid:  # a worker leads its own session; never touch a caller's group
            process.signal_group(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while process.is_alive(pid, ticks) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)


def cancel_run(loc: Locations, run_id: str, wait_seconds: float) -> dict[str, Any]:
    """Cancel ``run_id``; returns the printed fields or raises RunnerError."""
    validate_run_id(run_id)
    manifest_path = loc.run_dir(run_id) / manifest.MANIFEST_NAME
    if not manifest_path.is_file():
        raise RunnerError(f"Manifest for run {run_id} not found: {loc.rel(manifest_path)}")
    record = _read(manifest_path)
    if record is None:
        raise RunnerError(f"Manifest for run {run_id} cannot be read: {loc.rel(manifest_path)}")
    if manifest.is_terminal(record):
        if record.get("metrics_recorded") is not True:
            _complete_pending_metrics(loc, manifest_path)
        raise RunnerError(f"Run {run_id} is already {record.get('status')}; cannot cancel.")

    signalled: list[tuple[int, object]] = []
    deadline = time.monotonic() + wait_seconds
    while True:
        record = _read(manifest_path) or record
        if manifest.is_terminal(record):
            break
        pid, ticks = record.get("runner_pid"), record.get("runner_start_ticks")
        if not process.is_alive(pid, ticks):
            # Nobody left to mark the run (or the worker died just now, or it
            # runs out of sight and learns it at its next heartbeat): do it here.
            record = _record_cancel(loc, manifest_path, DEAD_WORKER_MESSAGE, signalled)
            if manifest.is_terminal(record):
                break
            continue  # a resume launched a worker meanwhile: that one is signalled
        assert isinstance(pid, int)
        if (pid, ticks) not in signalled:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            signalled.append((pid, ticks))
        if time.monotonic() >= deadline:
            error_line(f"Worker {pid} of run {run_id} did not stop within {wait_seconds:g}s; killing it.")
            _kill_worker(pid, ticks)
            record = _record_cancel(loc, manifest_path, KILLED_WORKER_MESSAGE.format(wait=wait_seconds), signalled)
            break
        time.sleep(POLL_SECONDS)

    # The worker marks the run before it exits: wait for it too, so that no
    # process of the run is left once cancel returns.
    for pid, ticks in signalled:
        while process.is_alive(pid, ticks) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
    status = record.get("status")
    if status != "cancelled":
        raise RunnerError(f"Run {run_id} is already {status}; cannot cancel.")
    return {
        "run_id": run_id,
        "status": status,
        "artifact_root": record.get("artifact_root") or loc.rel(manifest_path.parent),
        "compat_path": record.get("compat_path") or loc.rel(loc.pointer_dir(run_id)),
        "manifest": loc.rel(manifest_path),
        "runner_pid": signalled[0][0] if signalled else None,
    }


def format_text(result: dict[str, Any]) -> str:
    return (
        f"Cancelled run {result['run_id']}.\n"
        f"Artifact root: {result['artifact_root']}\n"
        f"Compatibility path: {result['compat_path']}\n"
        f"Manifest: {result['manifest']}\n"
    )


def run(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    if not argv:
        raise UsageError(USAGE_LINE, exit_code=2)
    if argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    run_id = argv[0]
    validate_run_id(run_id)
    parsed = scan(argv[1:], USAGE, MESSAGES, numeric=["--wait"])
    if parsed.help:
        sys.stdout.write(USAGE)
        return 0
    output_format = check_format(parsed.text("--format", "text") or "text")
    wait_text = parsed.text("--wait")
    wait_seconds = float(wait_text) if wait_text is not None else DEFAULT_WAIT_SECONDS
    environment = dict(os.environ) if env is None else dict(env)
    result = cancel_run(locate(environment), run_id, wait_seconds)
    print_result(result, output_format, format_text)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(sys.argv[1:] if argv is None else argv), disk_error="Cancel failed")


if __name__ == "__main__":
    sys.exit(main())
