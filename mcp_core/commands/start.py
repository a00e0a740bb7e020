"""start: create a run, launch its detached worker, print where it lives, return at once."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from mcp_core.argscan import Messages, scan, timeout_number
from mcp_core.default_commands import default_commands
from mcp_core.new_run import start_run
from mcp_core.output import check_format, print_result, run_cli
from mcp_core.paths import locate

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
