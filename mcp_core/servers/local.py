"""The bundled local executor: a stdio MCP server whose `codex` tool runs the
prompt's command with ``bash -c`` in the repo root (``python -m mcp_core.servers.local``).

It needs no network and no credentials. The command's output streams to this
server's stderr (the worker points that at ``runner.log``); when the call is
cancelled or the server's own deadline passes the command's whole process
group is killed and the answer says exit 124.
"""

from __future__ import annotations

import contextlib
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from mcp_core import process, protocol
from mcp_core.servers import common


async def run_prompt(prompt: str, *, cwd: str, deadline: common.Deadline, echo: common.Echo = 2) -> str:
    """Run the prompt's command with ``bash -c`` in ``cwd``; the answer text.
    ``echo`` gets the command's output as it comes (None: kept only for the summary)."""
    command = protocol.command_from_prompt(prompt)
    if command is None:
        raise ToolError(f"The prompt has no line starting with {protocol.COMMAND_MARKER.strip()!r}.")
    if "\x00" in command:  # no program can receive it in its arguments
        raise ToolError("Cannot run it: the command contains a NUL byte.")
    try:
        outcome = await common.run_command(
            ["bash", "-c", command], cwd=cwd, env=os.environ, deadline=deadline, echo=echo
        )
    except OSError as exc:
        raise ToolError(f"Could not start bash: {exc}") from exc
    return protocol.answer(outcome.exit_code, common.summarize(outcome, deadline))


def build_server() -> MCPServer:
    server: MCPServer = MCPServer("mcp-runner-local-executor", version="1", log_level="WARNING")
    deadline = common.deadline_from_env(os.environ)

    async def run(prompt: str, approval_policy: str | None, cwd: str | None) -> str:
        return await run_prompt(prompt, cwd=common.command_cwd(cwd, os.environ), deadline=deadline)

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
