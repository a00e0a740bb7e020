"""start: create a run, launch its detached worker, print where it lives, return at once."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcp_core import manifest, pointers, store, tokens
from mcp_core.argscan import Messages, scan
from mcp_core.default_commands import default_commands
from mcp_core.errors import RunnerError, UsageError
from mcp_core.jsfmt import iso_now, stamp
from mcp_core.launch import Launched, launch_worker
from mcp_core.output import print_result, run_cli
from mcp_core.paths import Locations, locate

USAGE = """Usage: scripts/mcp-runner-start.sh [options]

Start a run: create its record under .runs/, launch a detached worker that runs
the commands in order through an MCP server, print where the run lives and
return at once. Resume a run with: scripts/mcp-runner-start.sh --resume <run-id>.
Without --command the repository's default commands run (the environment
variable MCP_RUNNER_DEFAULT_COMMANDS, else mcp-runner.json at the repo root,
else npm run build / lint / test and bash scripts/spec-guard.sh --dry-run).

Options:
  --command <shell command>  A command to run; repeat it for several, kept in order.
  --approval-policy <v>      The approval policy handed to the MCP tool [default: never].
  --timeout <seconds>        The timeout of each MCP tool call [default: 3600].
  --format <format>          Output: text or json [default: text].
  -h, --help                 Show this help and exit.
"""

MESSAGES = Messages(unknown=lambda arg: f"Unknown option for start: {arg}")
FORMATS = ("text", "json")
HEARTBEAT_FILE = ".heartbeat"


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise UsageError(f'Unsupported format: {value}. Expected "text" or "json".')
    return value


def timeout_number(value: str) -> int | float:
    """The timeout as stored: a number, integral values as ints (3600, not 3600.0)."""
    number = float(value.strip())
    return int(number) if number.is_integer() else number


def write_heartbeat(run_dir: Path, now: str) -> None:
    store.atomic_write_text(run_dir / HEARTBEAT_FILE, now + "\n")


def _missing_ancestors(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            break
        missing.append(candidate)
    return missing


class _Creation:
    """What start has made so far, so that a failure can take it all back."""

    def __init__(self, loc: Locations, run_id: str) -> None:
        self.loc = loc
        self.run_id = run_id
        self.made_dirs: list[Path] = []
        self.pointer_made = False

    def make_dir(self, path: Path) -> None:
        missing = _missing_ancestors(path)
        try:
            path.mkdir(parents=True)
        finally:  # also the ancestors made before a failure
            self.made_dirs.extend(p for p in missing if p.is_dir())

    def undo(self) -> None:
        if self.pointer_made:
            pointers.remove_pointer(self.loc, self.run_id)
        run_dir = self.loc.run_dir(self.run_id)
        if run_dir in self.made_dirs:  # never remove a directory start did not make
            import shutil  # ~8 ms to import: only a failed start needs it

            shutil.rmtree(run_dir, ignore_errors=True)
        for directory in sorted(self.made_dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                directory.rmdir()
            except OSError:
                pass


def _step_error(run_id: str, what: str, path: Path, loc: Locations, exc: OSError) -> RunnerError:
    reason = exc.strerror or str(exc)
    return RunnerError(f"Failed to start run {run_id}: cannot write {what} {loc.rel(path)}: {reason}.")


def create_run(
    loc: Locations, commands: list[str], approval_policy: str, timeout: int | float
) -> tuple[str, Path, _Creation]:
    """Write run dir, manifest (queued), .resume-token, .heartbeat and pointer, in that
    order, or nothing at all. Returns the run id, the manifest path and what was made."""
    if os.path.realpath(loc.legacy_root) == os.path.realpath(loc.runs_root):
        # The pointer would replace the manifest it points to.
        raise RunnerError("The legacy root and the runs root must differ (MCP_RUNNER_LEGACY_ROOT).")
    run_id = f"{stamp(iso_now())}-{os.getpid()}"
    now = iso_now()  # the contract wants a clock read of its own for started_at
    run_dir = loc.run_dir(run_id)
    manifest_path = run_dir / manifest.MANIFEST_NAME
    created = _Creation(loc, run_id)
    step = ("the run directory", run_dir)
    try:
        created.make_dir(run_dir)
        step = ("the manifest", manifest_path)
        record = manifest.new_manifest(
            loc,
            run_id,
            commands,
            approval_policy=approval_policy,
            timeout_seconds=timeout,
            now=now,
            resume_token=tokens.new_token(),
        )
        store.write_json(manifest_path, record)
        step = ("the resume token", tokens.token_path(run_dir))
        tokens.write_token_file(run_dir, record["resume_token"])
        step = ("the heartbeat", run_dir / HEARTBEAT_FILE)
        write_heartbeat(run_dir, now)
        step = ("the compatibility pointer", loc.pointer_dir(run_id))
        pointer_dir = loc.pointer_dir(run_id)
        if not pointer_dir.is_dir():
            created.make_dir(pointer_dir)
        created.pointer_made = True
        pointers.create_pointer(loc, run_id, iso_now())
    except OSError as exc:
        created.undo()
        raise _step_error(run_id, step[0], step[1], loc, exc) from exc
    except BaseException:
        created.undo()
        raise
    return run_id, manifest_path, created


def launch_and_record(loc: Locations, manifest_path: Path, env: Mapping[str, str] | None) -> Launched:
    """Launch the worker and save ``runner_pid``, ``runner_start_ticks`` and
    ``status: in_progress`` in one save.

    The launch happens inside that save, under the manifest lock: whatever the
    worker saves (its first save needs the same lock) comes after this one, so it
    can never be overwritten with ``in_progress``, even if the worker ends at once.
    """
    launched: Launched | None = None

    def change(record: dict[str, Any]) -> None:
        nonlocal launched
        launched = launch_worker(loc, manifest_path.parent, env)
        record["status"] = "in_progress"
        record["runner_pid"] = launched.pid
        record["runner_start_ticks"] = launched.start_ticks

    try:
        manifest.save(manifest_path, change, iso_now)
    except BaseException:
        if launched is not None:  # the run is being taken back: so is its worker
            with contextlib.suppress(OSError):
                os.kill(launched.pid, signal.SIGKILL)
        raise
    assert launched is not None
    return launched


def start_run(
    loc: Locations,
    commands: list[str],
    approval_policy: str,
    timeout: int | float,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create and launch a run; returns the printed fields (run_id ... runner_pid)."""
    run_id, manifest_path, created = create_run(loc, commands, approval_policy, timeout)
    try:
        launched = launch_and_record(loc, manifest_path, env)
    except (OSError, ValueError) as exc:
        created.undo()
        raise RunnerError(f"Failed to launch the worker of run {run_id}: {exc}") from exc
    return {
        "run_id": run_id,
        "artifact_root": loc.rel(manifest_path.parent),
        "compat_path": loc.rel(loc.pointer_dir(run_id)),
        "manifest": loc.rel(manifest_path),
        "runner_pid": launched.pid,
    }


def format_text(result: dict[str, Any]) -> str:
    return (
        f"Run ID: {result['run_id']}\n"
        f"Artifact root: {result['artifact_root']}\n"
        f"Compatibility path: {result['compat_path']}\n"
        f"Manifest: {result['manifest']}\n"
        f"Runner PID: {result['runner_pid']}\n"
        f"Use 'scripts/mcp-runner-poll.sh {result['run_id']}' to monitor progress.\n"
    )


def run(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    parsed = scan(argv, USAGE, MESSAGES, numeric=["--timeout"], repeatable=["--command"])
    if parsed.help:
        sys.stdout.write(USAGE)
        return 0
    output_format = check_format(parsed.text("--format", "text") or "text")
    environment = dict(os.environ) if env is None else dict(env)
    loc = locate(environment)
    commands = parsed.many("--command") or default_commands(loc.repo_root, environment)
    timeout_text = parsed.text("--timeout")
    timeout = timeout_number(timeout_text) if timeout_text is not None else 3600
    result = start_run(loc, commands, parsed.text("--approval-policy", "never") or "never", timeout, environment)
    print_result(result, output_format, format_text)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
