"""The bundled local executor: an MCP server whose `codex` tool runs the prompt's
command with ``bash -c`` in the repo root.

It needs no network and no credentials. The worker runs it in its own process
over the SDK's in-memory transport (``build_server`` with a ``GroupGuard``):
still MCP, one interpreter and one SDK import instead of two. As a stdio server
of its own it is ``python -m mcp_core.servers.local`` (e.g. as a custom
``MCP_RUNNER_SERVER``). The command's output streams to stderr (the worker's
is ``runner.log``); when the call is cancelled or the deadline passes the
command's whole process group is killed and the answer says exit 124.
"""

from __future__ import annotations

import contextlib
import os
import sys

from mcp_core import process, protocol
from mcp_core.mcp_client import import_sdk
from mcp_core.servers import common

import_sdk()  # before the SDK's modules below: its models then build at first use

from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402


async def run_prompt(
    prompt: str,
    *,
    cwd: str,
    deadline: common.Deadline,
    echo: common.Echo = 2,
    guard: common.GroupGuard | None = None,
) -> str:
    """Run the prompt's command with ``bash -c`` in ``cwd``; the answer text.
    ``echo`` gets the command's output as it comes (None: kept only for the summary)."""
    command = protocol.command_from_prompt(prompt)
    if command is None:
        raise ToolError(f"The prompt has no line starting with {protocol.COMMAND_MARKER.strip()!r}.")
    if "\x00" in command:  # no program can receive it in its arguments
        raise ToolError("Cannot run it: the command contains a NUL byte.")
    try:
        outcome = await common.run_command(
            ["bash", "-c", command], cwd=cwd, env=os.environ, deadline=deadline, echo=echo, guard=guard
        )
    except OSError as exc:
        raise ToolError(f"Could not start bash: {exc}") from exc
    return protocol.answer(outcome.exit_code, common.summarize(outcome, deadline))


def build_server(deadline: common.Deadline | None = None, guard: common.GroupGuard | None = None) -> MCPServer:
    """The server; ``deadline`` defaults to the one the worker hands a separate
    server in its environment."""
    server: MCPServer = MCPServer("mcp-runner-local-executor", version="1", log_level="WARNING")
    limit = deadline if deadline is not None else common.deadline_from_env(os.environ)

    async def run(prompt: str, approval_policy: str | None, cwd: str | None) -> str:
        return await run_prompt(prompt, cwd=common.command_cwd(cwd, os.environ), deadline=limit, guard=guard)

    common.register_codex_tool(server, run)
    return server


def main() -> None:
    common.exit_on_sigterm()
    # Processes a command leaves outside its group (setsid, daemons) are
    # re-parented here when their parent exits, so they end with the command.
    process.become_subreaper()
    build_server().run("stdio")
    # The client closed our stdin and has every answer. Tearing down the SDK's
    # ~550 modules would take ~0.5 s here, and the worker waits for our exit
    # before it records the run's end (BENCHMARKS.md): skip it.
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
