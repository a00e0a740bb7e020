"""diagnostics: start a run of the default commands and (unless --no-watch) watch it.

It starts the run and watches it through the core, as start and poll do
(``new_run.start_run``, poll's block, ``watch.watch``), so what it prints is
what those commands print. The watch ends when the run ends, or on a
run whose worker is known dead or whose heartbeat is stale: then one line on
stderr says how to resume it. The exit status is 0 only when the run succeeded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from mcp_core import watch
from mcp_core.argscan import Messages, is_numeric, scan, timeout_number
from mcp_core.default_commands import default_commands
from mcp_core.errors import UsageError
from mcp_core.new_run import start_run
from mcp_core.output import error_line, run_cli
from mcp_core.paths import locate
from mcp_core.termtext import printable

USAGE = """Usage: scripts/run-mcp-diagnostics.sh [options]

Start a diagnostics run of the repository's default commands (the list
scripts/mcp-runner-start.sh runs without --command, which should end with the
guardrail scripts/spec-guard.sh), print where it lives, then watch it as
scripts/mcp-runner-poll.sh --watch does until it ends; the exit status is 0
only when the run succeeded. A watch also ends on a run whose worker is gone
or whose heartbeat is stale, with the command that resumes the run.
MCP_RUNNER_DIAGNOSTICS_INTERVAL sets the watch interval (default 10 s).

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


def watch_run(run_id: str, interval: float) -> int:
    """Blocks as poll --watch prints them until the run ends (or nobody is left
    to end it); 0 only when it succeeded."""
    from pathlib import Path

    from mcp_core.commands import poll  # its block is what a diagnostics watch shows

    roots, options = poll.Roots(), poll.PollOptions(run_id)

    def show() -> dict[str, Any]:
        return poll.poll_once(roots, options, error_line)

    ending = watch.watch(show, lambda: Path(poll.read_manifest(roots, run_id)[0]), interval)
    if ending.dead:
        error_line(watch.resume_hint(run_id, ending.record))
        return 1
    return 0 if ending.record.get("status") == "succeeded" else 1


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
    if not is_numeric(interval) or float(interval) <= 0:
        error_line(f"Error: {INTERVAL_ENV} must be a positive number of seconds.")
        return 2
    loc = locate(environment)
    fields = start_run(
        loc,
        default_commands(loc.repo_root, environment),
        parsed.text("--approval-policy", "never") or "never",
        timeout_number(parsed.text("--timeout", "3600") or "3600"),
        environment,
    )
    sys.stdout.write(started_block(fields))
    run_id = str(fields["run_id"])
    if parsed.flag("--no-watch"):
        sys.stdout.write(f"Use scripts/mcp-runner-poll.sh {run_id} to monitor progress.\n")
        sys.stdout.flush()
        return 0
    sys.stdout.flush()
    return watch_run(run_id, float(interval))


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
