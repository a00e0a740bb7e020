"""The run manifest: its shape and the names of a run's files (its changes: run_record)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # poll imports this module: nothing imported only for types
    from typing import Any

    from mcp_core.paths import Locations

RUNNER_NAME = "mcp-runner-py"
RUNNER_SCRIPT = "bin/mcp-runner-start"
# The files of a run directory, named once.
MANIFEST_NAME = "manifest.json"
HEARTBEAT_FILE = ".heartbeat"
RUNNER_LOG = "runner.log"
POLL_SNAPSHOT_NAME = "poll.json"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
HEARTBEAT_INTERVAL_SECONDS = 10
HEARTBEAT_STALE_AFTER_SECONDS = 30
GUARDRAIL_MARKER = "scripts/spec-guard.sh"
GUARDRAIL_MISSING = (
    "Guardrail command missing; run scripts/run-mcp-diagnostics.sh --no-watch to capture reviewer diagnostics."
)
GUARDRAIL_FAILED = (
    "Guardrail command failed; re-run scripts/run-mcp-diagnostics.sh --no-watch to gather failure artifacts."
)


def new_command(index: int, command: str) -> dict[str, Any]:
    return {
        "index": index,
        "command": command,
        "status": "pending",
        "started_at": None,
        "completed_at": None,
        "exit_code": None,
        "manifest_path": None,
        "response_file": None,
        "summary": None,
        "error_file": None,
    }


def new_manifest(
    loc: Locations,
    run_id: str,
    commands: list[str],
    *,
    approval_policy: str,
    timeout_seconds: float,
    now: str,
    resume_token: str,
) -> dict[str, Any]:
    """The manifest as start first writes it (docs/interface.md section 5, key order)."""
    run_dir = loc.run_dir(run_id)
    return {
        "runner": RUNNER_NAME,
        "script": RUNNER_SCRIPT,
        "status": "queued",
        "status_detail": None,
        "commands": [new_command(n, c) for n, c in enumerate(commands, start=1)],
        "started_at": now,
        "updated_at": now,
        "completed_at": None,
        "run_id": run_id,
        "repo_root": str(loc.repo_root),
        "approval_policy": approval_policy,
        "timeout_seconds": timeout_seconds,
        "runner_pid": None,
        "runner_log": loc.rel(run_dir / RUNNER_LOG),
        "task_id": loc.task_id,
        "artifact_root": loc.rel(run_dir),
        "compat_path": loc.rel(loc.pointer_dir(run_id)),
        "heartbeat_at": now,
        "heartbeat_interval_seconds": HEARTBEAT_INTERVAL_SECONDS,
        "heartbeat_stale_after_seconds": HEARTBEAT_STALE_AFTER_SECONDS,
        "resume_token": resume_token,
        "resume_events": [],
        "metrics_recorded": False,
    }


def is_terminal(manifest: dict[str, Any]) -> bool:
    return manifest.get("status") in TERMINAL_STATUSES


def is_guardrail(command: object) -> bool:
    return isinstance(command, str) and GUARDRAIL_MARKER in command


def guardrail_succeeded(manifest: dict[str, Any]) -> bool:
    commands = manifest.get("commands")
    if not isinstance(commands, list):
        return False
    return any(
        isinstance(c, dict) and is_guardrail(c.get("command")) and c.get("status") == "succeeded" for c in commands
    )


def guardrail_sentence(manifest: dict[str, Any]) -> str | None:
    """The recommendation to add to the summary, or None when a guardrail succeeded.

    A guardrail command that never ran (the run failed before it) counts as missing.
    """
    if guardrail_succeeded(manifest):
        return None
    commands = manifest.get("commands") if isinstance(manifest.get("commands"), list) else []
    ran = any(
        isinstance(c, dict) and is_guardrail(c.get("command")) and c.get("status") in ("failed", "succeeded", "running")
        for c in commands or []
    )
    return GUARDRAIL_FAILED if ran else GUARDRAIL_MISSING
