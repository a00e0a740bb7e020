"""diagnostics: start a run of the default commands and (unless --no-watch) watch it.

The run is started through the start wrapper (``--format json``) and watched
through the poll wrapper (``--watch``, text), as the old script did, so what
this prints is what those commands print. While watching, a heartbeat that
poll reports as stale gets one notice on stderr saying how to resume the run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcp_core import process, store
from mcp_core.argscan import Messages, is_numeric, scan
from mcp_core.errors import RunnerError, UsageError
from mcp_core.manifest import TERMINAL_STATUSES
from mcp_core.output import error_line
from mcp_core.paths import locate
from mcp_core.termtext import printable

USAGE = """Usage: scripts/run-mcp-diagnostics.sh [options]

Start a diagnostics run of the repository's default commands (the list
scripts/mcp-runner-start.sh runs without --command, which should end with the
guardrail scripts/spec-guard.sh), print where it lives, then watch it with
scripts/mcp-runner-poll.sh --watch until it ends; the exit status is poll's.
While watching, a stale heartbeat is reported with the command that resumes
the run. MCP_RUNNER_DIAGNOSTICS_INTERVAL sets the watch interval (default 10 s).

Options:
  --approval-policy <v>  The approval policy of the run [default: never].
  --timeout <seconds>    The timeout of each MCP tool call [default: 3600].
  --no-watch             Print the run's details and return at once.
  -h, --help             Show this help and exit.
"""

MESSAGES = Messages(
    unknown=lambda arg: f"Unknown option: {arg}",
    missing=lambda flag: f"Error: {flag} requires a value.",
    not_numeric=lambda flag: f"Error: {flag} requires a numeric value.",
    not_positive=lambda flag: f"Error: {flag} must be a positive number.",
)
INTERVAL_ENV = "MCP_RUNNER_DIAGNOSTICS_INTERVAL"
DEFAULT_INTERVAL = "10"
START_FAILED = "Failed to start diagnostics runner."
_STALE_LINE = re.compile(rb"^Heartbeat age: .*\(STALE\)\s*$")
_HEARTBEAT_LINE = re.compile(rb"^Heartbeat age: ")
_STATUS_LINE = re.compile(rb"^Run .* status: (\S*)\s*$")


def runner_command(env: Mapping[str, str], script: str, command: str) -> list[str]:
    """``scripts/<script>`` beside this checkout (or where the wrappers were copied);
    for an installed package without wrappers, ``python -m mcp_core.cli <command>``."""
    checkout = env.get("MCP_RUNNER_CHECKOUT")
    wrapper = Path(checkout or Path(__file__).resolve().parent.parent.parent) / "scripts" / script
    if checkout or wrapper.is_file():
        return [str(wrapper)]
    return [sys.executable, "-m", "mcp_core.cli", command]


def start_diagnostics(
    approval_policy: str, timeout: str, env: Mapping[str, str]
) -> tuple[int, dict[str, Any] | None]:
    """Run start with ``--format json``; its stderr passes through. Returns (status, fields)."""
    completed = subprocess.run(
        [
            *runner_command(env, "mcp-runner-start.sh", "start"),
            "--approval-policy",
            approval_policy,
            "--timeout",
            timeout,
            "--format",
            "json",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=dict(env),
    )
    if completed.stderr:
        sys.stderr.buffer.write(completed.stderr)
        sys.stderr.flush()
    if completed.returncode != 0:
        if not completed.stdout.strip() and not completed.stderr.strip():
            error_line(START_FAILED)
            return 1, None
        return completed.returncode, None
    try:
        fields = json.loads(completed.stdout)
    except ValueError:
        fields = None
    if not isinstance(fields, dict) or not isinstance(fields.get("run_id"), str):
        error_line(START_FAILED)
        return 1, None
    return 0, fields


def started_block(fields: dict[str, Any]) -> str:
    def shown(key: str) -> str:
        return printable(str(fields.get(key)))

    return (
        "Diagnostics run started.\n"
        f"Run ID: {shown('run_id')}\n"
        f"Artifact root: {shown('artifact_root')}\n"
        f"Compatibility path: {shown('compat_path')}\n"
        f"Manifest: {shown('manifest')}\n"
        "\n"
    )


def stale_notice(run_id: str, manifest_file: Path) -> str:
    """What to tell a person watching a run whose heartbeat went stale."""
    try:
        record = store.read_json(manifest_file)
    except (OSError, ValueError):
        record = None
    state = "its worker may have stopped"
    if isinstance(record, dict):
        pid = record.get("runner_pid")
        if process.is_alive(pid, record.get("runner_start_ticks")):
            state = f"its worker (PID {pid}) is still running but has stopped reporting"
        else:
            state = "its worker is no longer running"
    return f"Heartbeat of run {run_id} is stale: {state}. Resume it with: scripts/mcp-runner-start.sh --resume {run_id}"


def watch(run_id: str, manifest_file: Path, interval: str, env: Mapping[str, str]) -> int:
    """Relay ``poll --watch`` to stdout line by line; its exit status is ours."""
    poll_command = runner_command(env, "mcp-runner-poll.sh", "poll")
    try:
        poll = subprocess.Popen(
            [*poll_command, run_id, "--watch", "--interval", interval],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=dict(env),
        )
    except OSError as exc:
        raise RunnerError(f"Cannot run {' '.join(poll_command)}: {exc.strerror or exc}") from exc
    assert poll.stdout is not None
    out = sys.stdout.buffer
    noticed = False
    block_terminal = False
    try:
        for line in poll.stdout:
            out.write(line)
            out.flush()
            status = _STATUS_LINE.match(line)
            if status:
                block_terminal = status.group(1).decode("utf-8", "replace") in TERMINAL_STATUSES
            elif _STALE_LINE.match(line):
                if not noticed and not block_terminal:  # an ended run needs no resume
                    error_line(stale_notice(run_id, manifest_file))
                noticed = True
            elif _HEARTBEAT_LINE.match(line):
                noticed = False  # fresh again: a later stale spell gets its own notice
        return poll.wait()
    except KeyboardInterrupt:
        poll.terminate()
        poll.wait()
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly
        poll.terminate()
        poll.wait()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def run(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    environment = dict(os.environ) if env is None else dict(env)
    try:
        parsed = scan(argv, USAGE, MESSAGES, numeric=["--timeout"])
    except UsageError as exc:
        error_line(exc.message)
        if exc.message.startswith("Unknown option"):
            sys.stderr.write(USAGE)
        return 2
    if parsed.help:
        sys.stdout.write(USAGE)
        return 0
    interval = environment.get(INTERVAL_ENV) or DEFAULT_INTERVAL
    if not is_numeric(interval):
        error_line(f"Error: {INTERVAL_ENV} must be a positive number of seconds.")
        return 2
    status, fields = start_diagnostics(
        parsed.text("--approval-policy", "never") or "never",
        parsed.text("--timeout", "3600") or "3600",
        environment,
    )
    if fields is None:
        return status
    run_id = str(fields["run_id"])
    sys.stdout.write(started_block(fields))
    if parsed.flag("--no-watch"):
        sys.stdout.write(f"Use scripts/mcp-runner-poll.sh {run_id} to monitor progress.\n")
        sys.stdout.flush()
        return 0
    sys.stdout.flush()
    manifest_file = locate(environment).repo_root / str(fields.get("manifest"))
    return watch(run_id, manifest_file, interval, environment)


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except RunnerError as exc:
        error_line(exc.message)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
