"""The ``codex exec`` bridge: a stdio MCP server whose `codex` tool runs
``codex exec`` once per call (``python -m mcp_core.servers.codex_exec``).

Codex 0.154.0 removed ``codex mcp-server``; this keeps the runner an MCP client
of a real Codex agent. Per call it runs, in the repo root and in its own
process group::

    codex exec --json -C <root> --skip-git-repo-check --ephemeral
               --sandbox <mode> -c approval_policy="<policy>"
               --output-schema <tmp>/answer-schema.json -o <tmp>/final-message.txt
               [$MCP_RUNNER_CODEX_EXEC_ARGS] -- <prompt>

with stdin from /dev/null (``codex exec`` would otherwise read the MCP channel).
Codex's JSONL events and its own stderr stream to this server's stderr, which
the worker points at ``runner.log``. The final message (constrained by the
schema to ``{exit_code, summary, manifest_path}``) is the tool's answer text.

Approval mapping: ``codex exec`` has nobody to ask, so the default ``never``
becomes ``-c approval_policy="never"`` with the ``workspace-write`` sandbox:
commands run inside the repository and a blocked one fails back to the agent
instead of waiting for a prompt. ``on-request``, ``on-failure`` and
``untrusted`` are passed on as asked (an approval Codex requests then goes
unanswered until the request timeout); any other value is refused at once.
``MCP_RUNNER_CODEX_SANDBOX`` overrides the sandbox mode.

Failures are tool errors (the worker records ``tool-invocation-error``): no
``codex`` on PATH, Codex exiting non-zero, no final message, or no answer
before the server's deadline (a little shorter than the worker's request
timeout), and when the call is cancelled or this server is told to stop,
Codex's whole process group is killed first.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from mcp_core.servers import common

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "exit_code": {"type": "integer"},
        "summary": {"type": "string"},
        "manifest_path": {"type": ["string", "null"]},
    },
    "required": ["exit_code", "summary", "manifest_path"],
    "additionalProperties": False,
}
DEFAULT_APPROVAL_POLICY = "never"
APPROVAL_POLICIES = ("never", "on-request", "on-failure", "untrusted")
SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")
DEFAULT_SANDBOX = "workspace-write"
SANDBOX_ENV = "MCP_RUNNER_CODEX_SANDBOX"
EXTRA_ARGS_ENV = "MCP_RUNNER_CODEX_EXEC_ARGS"
LOG_PREFIX = "[codex-exec]"
STOP_WAIT_SECONDS = 5.0  # for a stop signal: how long cancelled calls get to kill their Codex


def sandbox_mode(env: Mapping[str, str]) -> str:
    mode = (env.get(SANDBOX_ENV) or DEFAULT_SANDBOX).strip()
    if mode not in SANDBOX_MODES:
        raise ToolError(f"{SANDBOX_ENV}={mode!r} is not a sandbox mode; use one of {', '.join(SANDBOX_MODES)}.")
    return mode


def approval_policy_for(requested: str | None) -> str:
    policy = (requested or DEFAULT_APPROVAL_POLICY).strip()
    if policy not in APPROVAL_POLICIES:
        raise ToolError(
            f"Unsupported approval policy {policy!r} for codex exec; use one of {', '.join(APPROVAL_POLICIES)}."
        )
    return policy


def exec_argv(
    codex: str,
    prompt: str,
    *,
    root: str,
    approval_policy: str,
    sandbox: str,
    schema_file: Path,
    final_message_file: Path,
    extra_args: list[str],
) -> list[str]:
    """The ``codex exec`` command line for one call (the prompt last, after ``--``)."""
    return [
        codex,
        "exec",
        "--json",
        "-C",
        root,
        "--skip-git-repo-check",
        "--ephemeral",
        "--sandbox",
        sandbox,
        "-c",
        f"approval_policy={json.dumps(approval_policy)}",
        "--output-schema",
        str(schema_file),
        "-o",
        str(final_message_file),
        *extra_args,
        "--",
        prompt,
    ]


def failure_detail(output_tail: bytes) -> str:
    """What went wrong, for the error message: the last error Codex reported as a
    JSONL event, else the last lines it printed."""
    text = output_tail.decode("utf-8", "replace")
    for line in reversed(text.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        error = event.get("error") if event.get("type") == "turn.failed" else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if event.get("type") == "error" and isinstance(event.get("message"), str):
            return event["message"]
    lines = common.output_lines(output_tail)
    return " | ".join(lines) if lines else "no output"


async def run_codex_exec(
    prompt: str,
    approval_policy: str | None,
    cwd: str | None,
    *,
    env: Mapping[str, str],
    deadline: common.Deadline,
    echo: common.Echo = 2,
) -> str:
    """One ``codex exec`` run for one tool call; its final message, or a ToolError.
    Codex's output goes to ``echo`` as it comes (None: not shown)."""
    codex = shutil.which("codex", path=env.get("PATH"))
    if codex is None:
        raise ToolError("codex CLI not found in PATH; the codex-exec server needs the Codex CLI.")
    policy = approval_policy_for(approval_policy)
    sandbox = sandbox_mode(env)
    try:
        extra_args = shlex.split(env.get(EXTRA_ARGS_ENV) or "")
    except ValueError as exc:
        raise ToolError(f"{EXTRA_ARGS_ENV} is not a valid argument list: {exc}") from exc
    root = common.command_cwd(cwd, env)
    with tempfile.TemporaryDirectory(prefix="mcp-runner-codex-exec-") as scratch:
        schema_file = Path(scratch) / "answer-schema.json"
        schema_file.write_text(json.dumps(ANSWER_SCHEMA, indent=2) + "\n", encoding="utf-8")
        final_message_file = Path(scratch) / "final-message.txt"
        argv = exec_argv(
            codex,
            prompt,
            root=root,
            approval_policy=policy,
            sandbox=sandbox,
            schema_file=schema_file,
            final_message_file=final_message_file,
            extra_args=extra_args,
        )
        shown = shlex.join(argv[:-1]) + " <prompt>"
        print(f"{LOG_PREFIX} {shown}", file=sys.stderr, flush=True)
        try:
            outcome = await common.run_command(argv, cwd=root, env=env, deadline=deadline, echo=echo)
        except OSError as exc:
            raise ToolError(f"Could not start codex exec ({codex}): {exc}") from exc
        except BaseException:  # cancelled: run_command has killed the group
            print(f"{LOG_PREFIX} call cancelled; codex exec's process group was killed", file=sys.stderr, flush=True)
            raise
        print(f"{LOG_PREFIX} codex exec ended with status {outcome.exit_code}", file=sys.stderr, flush=True)
        if outcome.timed_out:
            raise ToolError(
                f"codex exec gave no answer within {deadline.seconds:g} seconds; its process group was killed."
            )
        if outcome.exit_code != 0:
            detail = failure_detail(outcome.output_tail)
            raise ToolError(f"codex exec exited with status {outcome.exit_code}: {detail}")
        try:
            final_message = final_message_file.read_text(encoding="utf-8", errors="replace").strip()
        except FileNotFoundError:
            final_message = ""
        if not final_message:
            raise ToolError("codex exec finished without a final message.")
        return final_message


def build_server(env: Mapping[str, str] | None = None, running: set[Any] | None = None) -> MCPServer:
    """The server; ``running`` collects the cancel scope of each call in progress
    so a stop signal can cancel them (and so kill their Codex) before exiting."""
    import anyio

    environment = dict(os.environ if env is None else env)
    calls: set[Any] = set() if running is None else running
    server: MCPServer = MCPServer("mcp-runner-codex-exec", log_level="WARNING")
    deadline = common.deadline_from_env(environment)

    async def run(prompt: str, approval_policy: str | None, cwd: str | None) -> str:
        with anyio.CancelScope() as scope:
            calls.add(scope)
            try:
                return await run_codex_exec(prompt, approval_policy, cwd, env=environment, deadline=deadline)
            finally:
                calls.discard(scope)
        raise ToolError("codex exec was stopped: the server is shutting down.")

    common.register_codex_tool(server, run)
    return server


async def serve(server: MCPServer, running: set[Any]) -> None:
    """Serve stdio until the client leaves or SIGTERM, SIGINT or SIGHUP arrives;
    either way cancel the calls in progress, which kills Codex's process group
    (it has its own session, so the client's kill of this server's group would
    miss it), then exit at once (the stdin reader cannot be interrupted)."""
    import anyio

    async def stop(exit_code: int) -> None:
        for scope in list(running):
            scope.cancel()
        with anyio.move_on_after(STOP_WAIT_SECONDS):
            while running:
                await anyio.sleep(0.01)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)  # no interpreter teardown (~0.3 s of the SDK's modules)

    async def stop_on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                print(f"{LOG_PREFIX} stopping on signal {signum}", file=sys.stderr, flush=True)
                await stop(128 + signum)

    async with anyio.create_task_group() as group:
        group.start_soon(stop_on_signal)
        await server.run_stdio_async()  # returns when the client closes stdin
        await stop(0)


def main() -> None:
    import anyio

    running: set[Any] = set()
    anyio.run(serve, build_server(running=running), running)


if __name__ == "__main__":
    main()
