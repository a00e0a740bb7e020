"""resume: check that a run may go on, record why (not), and launch a new worker."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_core import manifest, process, run_record, store, tokens
from mcp_core.argscan import Messages, scan
from mcp_core.errors import RunnerError
from mcp_core.faults import fault_point
from mcp_core.jsfmt import iso_now
from mcp_core.launch import launch_worker
from mcp_core.manifest import RUNNER_LOG
from mcp_core.output import check_format, error_line, print_result, run_cli
from mcp_core.paths import Locations, locate, validate_run_id
from mcp_core.run_record import Identity, Refusal

USAGE = """Usage: scripts/mcp-runner-start.sh --resume <run-id> [options]

Resume a run whose worker has stopped: the run goes on from its first command
that has not succeeded (commands that succeeded are never run again). A run
that has ended cannot be resumed, except a failed one with --retry-failed.
Every attempt, accepted or blocked, is recorded in the manifest's resume_events.

Options:
  --run-id <id>           The run to resume (the wrapper passes it).
  --resume-token <hex>    Refuse unless this is the run's resume token.
  --actor <name>          Who resumes, for the record [default: cli].
  --reason <text>         Why, for the record [default: manual-resume].
  --retry-failed          Also resume a failed run, from its failed command.
  --format <format>       Output: text or json [default: text].
  -h, --help              Show this help and exit.
"""

MESSAGES = Messages(unknown=lambda arg: f"Unknown option for resume: {arg}")


@dataclass(frozen=True)
class Request:
    run_id: str
    given_token: str | None
    actor: str
    reason: str
    retry_failed: bool


def _event(request: Request, outcome: str, detail: str) -> dict[str, Any]:
    return {
        "timestamp": iso_now(),
        "actor": request.actor,
        "reason": request.reason,
        "outcome": outcome,
        "detail": detail,
    }


def evaluate(record: dict[str, Any], run_dir: Path, request: Request) -> Refusal | str:
    """The contract's checks, in order, on the manifest as it is now (pure but for
    reading /proc and the token file): a refusal or the accepted token."""
    run_id = request.run_id
    status = record.get("status")
    if manifest.is_terminal(record) and not (request.retry_failed and status == "failed"):
        return Refusal(f"terminal-status:{status}", f"Run {run_id} is already {status}; cannot resume.")
    pid = record.get("runner_pid")
    if process.is_alive(pid, record.get("runner_start_ticks")):
        return Refusal(f"runner-active:{pid}", f"Run {run_id} still has active PID {pid}.")
    recorded = tokens.manifest_token(record.get("resume_token"))
    from_file = tokens.read_token_file(run_dir)
    if recorded is None and from_file.token is None:
        detail = f"resume-token-read-error:{from_file.error_code}" if from_file.error_code else "missing-resume-token"
        return Refusal(detail, f"Resume token not found for run {run_id}.")
    token = recorded if recorded is not None else from_file.token
    assert token is not None
    mismatch = Refusal("resume-token-mismatch", "Resume token mismatch.")
    if request.given_token is not None and not tokens.tokens_equal(request.given_token, token):
        return mismatch
    if recorded is not None and from_file.token is not None and not tokens.tokens_equal(from_file.token, recorded):
        return mismatch
    return token


def _complete_pending_metrics(loc: Locations, manifest_path: Path) -> None:
    """A run that ended without its metrics line (its worker died at the end) gets it now."""
    from mcp_core import lifecycle  # only this rare path needs it

    # The guardrail sentence goes where the worker would have printed it.
    with os.fdopen(store.open_append(manifest_path.parent / RUNNER_LOG), "a", encoding="utf-8") as log:
        lifecycle.complete_pending_metrics(loc, manifest_path, log=log)


def _stop_leftover_server(record: dict[str, Any]) -> None:
    """An MCP server the dead worker left behind (a Codex server outlives its
    stdin) must not run on beside the new worker's."""
    from mcp_core import lifecycle

    lifecycle.stop_recorded_server(record)


def _read_manifest(loc: Locations, run_id: str) -> tuple[Path, dict[str, Any]]:
    path = loc.run_dir(run_id) / manifest.MANIFEST_NAME
    try:
        record = store.read_json(path, follow=False)
    except FileNotFoundError as exc:
        raise RunnerError(f"Manifest for run {run_id} not found: {loc.rel(path)}") from exc
    except (OSError, ValueError) as exc:
        raise RunnerError(f"Manifest for run {run_id} cannot be read: {loc.rel(path)}: {exc}") from exc
    if not isinstance(record, dict):
        raise RunnerError(f"Manifest for run {run_id} is not a JSON object: {loc.rel(path)}")
    commands = record.get("commands")
    if not isinstance(commands, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("command"), str) for entry in commands
    ):
        # A worker would find nothing to run and call the run succeeded.
        raise RunnerError(f"Manifest for run {run_id} has no valid command list: {loc.rel(path)}")
    return path, record


def resume_run(loc: Locations, request: Request, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Resume ``request.run_id``; returns the printed fields or raises RunnerError
    (after recording the blocked event)."""
    validate_run_id(request.run_id)
    manifest_path, first_read = _read_manifest(loc, request.run_id)
    run_dir = manifest_path.parent
    if manifest.is_terminal(first_read) and first_read.get("metrics_recorded") is not True:
        _complete_pending_metrics(loc, manifest_path)
    if tokens.exposed_to_others(run_dir):
        error_line(
            f"Warning: {loc.rel(tokens.token_path(run_dir))} is readable by other users; restrict it with chmod 600."
        )

    me = Identity.me()

    def event(outcome: str, detail: str) -> dict[str, Any]:
        return _event(request, outcome, detail)

    # Decided under the manifest lock on what is on disk now, so that two
    # resumes cannot both pass and a live worker's save cannot lose the event.
    refusal, claimed = run_record.resume_claimed(manifest_path, me, lambda r: evaluate(r, run_dir, request), event)
    if refusal is not None:
        raise RunnerError(refusal.message)
    fault_point("resume-claimed")  # tests: a cancel while resume holds the run
    _stop_leftover_server(claimed)
    run_record.write_heartbeat_file(run_dir, iso_now())
    try:
        launched, saved = run_record.resume_launched(manifest_path, me, lambda: launch_worker(loc, run_dir, env), event)
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "EIO")
        with contextlib.suppress(OSError, ValueError):  # give the run back: no resume holds it now
            run_record.resume_released(manifest_path, me, event("blocked", f"launch-failed:{code}"))
        raise RunnerError(f"Failed to launch the worker of run {request.run_id}: {exc}") from exc
    if launched is None:
        raise RunnerError(f"Run {request.run_id} is already {saved.get('status')}; cannot resume.")
    return {
        "run_id": request.run_id,
        "artifact_root": saved.get("artifact_root") or loc.rel(run_dir),
        "compat_path": saved.get("compat_path") or loc.rel(loc.pointer_dir(request.run_id)),
        "manifest": loc.rel(manifest_path),
        "runner_pid": launched.pid,
        "resume_token": claimed["resume_token"],
    }


def format_text(result: dict[str, Any]) -> str:
    return (
        f"Resumed run {result['run_id']}.\n"
        f"Artifact root: {result['artifact_root']}\n"
        f"Compatibility path: {result['compat_path']}\n"
        f"Manifest: {result['manifest']}\n"
        f"Runner PID: {result['runner_pid']}\n"
    )


def run(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    parsed = scan(argv, USAGE, MESSAGES)
    if parsed.help:
        sys.stdout.write(USAGE)
        return 0
    output_format = check_format(parsed.text("--format", "text") or "text")
    run_id = parsed.text("--run-id")
    if run_id is None:
        raise RunnerError("Resume requires --run-id <id>.")
    environment = dict(os.environ) if env is None else dict(env)
    request = Request(
        run_id=run_id,
        given_token=parsed.text("--resume-token"),
        actor=parsed.text("--actor", "cli") or "cli",
        reason=parsed.text("--reason", "manual-resume") or "manual-resume",
        retry_failed=parsed.flag("--retry-failed"),
    )
    result = resume_run(locate(environment), request, environment)
    print_result(result, output_format, format_text)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(sys.argv[1:] if argv is None else argv), disk_error="Resume failed")


if __name__ == "__main__":
    sys.exit(main())
