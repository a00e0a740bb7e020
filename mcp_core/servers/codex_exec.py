"""The ``codex exec`` bridge: a stdio MCP server whose `codex` tool runs
``codex exec`` once per call (``python -m mcp_core.servers.codex_exec``).

Codex 0.154.0 removed ``codex mcp-server``; this keeps the runner an MCP client
of a real Codex agent. Per call it runs, in the repo root and in its own
process group::

    codex exec --json -C <root> --skip-git-repo-check
               --sandbox <mode> -c approval_policy="<policy>"
               --output-schema <tmp>/answer-schema.json -o <tmp>/final-message.txt
               [$MCP_RUNNER_CODEX_EXEC_ARGS] -- <prompt>

with stdin from /dev/null (``codex exec`` would otherwise read the MCP channel).
Codex's JSONL events reach this server's stderr (the worker points it at
``runner.log``) as one readable line each (``[codex-exec] event <type>: <text>``),
the latest also in the run's latest-event file; Codex's own stderr lines pass
through as they are. The final message (constrained by the schema to
``{exit_code, summary, manifest_path}``) is the tool's answer text.

Like ``codex mcp-server`` (which has no way to skip it), each call leaves its
session in ``~/.codex/sessions`` (``codex resume`` can show it); add
``--ephemeral`` to ``MCP_RUNNER_CODEX_EXEC_ARGS`` to keep none.

Approval mapping: ``codex exec`` has nobody to ask, so the default ``never``
becomes ``-c approval_policy="never"`` with the ``workspace-write`` sandbox:
commands run inside the repository and a blocked one fails back to the agent
instead of waiting for a prompt. ``on-request``, ``on-failure`` and
``untrusted`` are passed on as asked (an approval Codex requests then goes
unanswered until the request timeout; Codex 0.171.0 refuses ``untrusted`` at
once, and that refusal is the call's error); any other value is refused at
once. ``MCP_RUNNER_CODEX_SANDBOX`` sets the sandbox mode.

Failures are tool errors (the worker records ``tool-invocation-error``): no
``codex`` on PATH, Codex exiting non-zero (the error names Codex's own
``Error:`` line and a short tail of its output), no final message, or no answer
before the server's deadline (a little shorter than the worker's request
timeout; the error names Codex's last event), and when the call is cancelled
or this server is told to stop, Codex's whole process group is killed first.
When the client goes away (the worker was killed) the server stops with one
line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mcp_core import server_select
from mcp_core.codex_events import LATEST_EVENT_ENV, LatestEvent, describe_exec_event
from mcp_core.errors import RunnerError
from mcp_core.jsfmt import iso_now
from mcp_core.mcp_client import import_sdk
from mcp_core.servers import common

import_sdk()  # before the SDK's modules below: its models then build at first use

from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402

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
EXTRA_ARGS_ENV = "MCP_RUNNER_CODEX_EXEC_ARGS"
LOG_PREFIX = "[codex-exec]"
STOP_WAIT_SECONDS = 5.0  # for a stop signal: how long cancelled calls get to kill their Codex
TAIL_LINES = 3
# A Rust backtrace without symbols ("Stack backtrace:", "   5: <unknown>"): no cause in it.
_BACKTRACE_NOISE = re.compile(r"^(Stack backtrace:|\d+: <unknown>|at \S.*)$")


def sandbox_mode(env: Mapping[str, str]) -> str:
    """The sandbox for ``codex exec --sandbox`` (the runner's one rule for it)."""
    try:
        return server_select.sandbox_mode(env)
    except RunnerError as exc:
        raise ToolError(exc.message) from exc


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


def _event(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("type"), str) else None


def _event_error(event: dict[str, Any]) -> str | None:
    error = event.get("error") if event.get("type") == "turn.failed" else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if event.get("type") == "error" and isinstance(event.get("message"), str):
        return str(event["message"])
    return None


def failure_detail(output_tail: bytes) -> str:
    """What went wrong, for the error message: Codex's own ``Error:`` line(s),
    else the last error it reported as a JSONL event, then (in parentheses) the
    last few other lines it printed, events as readable lines and backtrace
    noise left out."""
    text = output_tail.decode("utf-8", "replace")
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line and not _BACKTRACE_NOISE.match(line)]
    cause_lines = [line for line in lines if line.startswith("Error:")]
    causes = cause_lines
    if not cause_lines:
        event_errors = [(line, error) for line in lines if (event := _event(line)) and (error := _event_error(event))]
        cause_lines = [line for line, _ in event_errors[-1:]]
        causes = [error for _, error in event_errors[-1:]]
    rest = [line for line in lines if line not in cause_lines]
    readable = [describe_exec_event(event) if (event := _event(line)) else line for line in rest]
    tail = common.output_lines("\n".join(readable).encode(), TAIL_LINES)
    cause = " | ".join(common.output_lines("\n".join(causes).encode(), TAIL_LINES))
    if not cause:
        return " | ".join(tail) if tail else "no output"
    return f"{cause} (last output: {' | '.join(tail)})" if tail else cause


def event_lines(latest: LatestEvent, echo: common.Echo) -> Callable[[bytes], None]:
    """What becomes of each line Codex prints: a JSONL event as one readable line
    (and the run's latest event), anything else as it is, to ``echo`` (None: not shown)."""

    def on_line(raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        event = _event(line.strip())
        if event is not None:
            text = describe_exec_event(event)
            latest.note(text, iso_now())
            line = f"{LOG_PREFIX} event {text}"
        common.emit(echo, (line + "\n").encode("utf-8", "replace"))

    return on_line


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
    if "\x00" in prompt:  # no program can receive it in its arguments
        raise ToolError("Cannot run it: the prompt contains a NUL byte.")
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
        latest_file = env.get(LATEST_EVENT_ENV)
        latest = LatestEvent(Path(latest_file) if latest_file else None)
        try:
            outcome = await common.run_command(
                argv, cwd=root, env=env, deadline=deadline, on_line=event_lines(latest, echo)
            )
        except OSError as exc:
            raise ToolError(f"Could not start codex exec ({codex}): {exc}") from exc
        except BaseException:  # cancelled: run_command has killed the group
            print(f"{LOG_PREFIX} call cancelled; codex exec's process group was killed", file=sys.stderr, flush=True)
            raise
        finally:
            latest.flush()
        print(f"{LOG_PREFIX} codex exec ended with status {outcome.exit_code}", file=sys.stderr, flush=True)
        if outcome.timed_out:
            last = f" Its last event: {latest.text}" if latest.text else " It reported no event."
            raise ToolError(
                f"codex exec gave no answer within {deadline.seconds:g} seconds; its process group was killed."
                + last
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
    miss it), then exit at once (the stdin reader cannot be interrupted).

    A client that is gone (the worker was killed: a broken pipe on stdout)
    ends the server the same way, with one line, not a traceback."""
    import anyio

    stopping = False

    async def stop(exit_code: int) -> None:
        nonlocal stopping
        stopping = True
        for scope in list(running):
            scope.cancel()
        with anyio.move_on_after(STOP_WAIT_SECONDS):
            while running:
                await anyio.sleep(0.01)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(exit_code)  # no interpreter teardown (~0.3 s of the SDK's modules)

    async def stop_on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                print(f"{LOG_PREFIX} stopping on signal {signum}", file=sys.stderr, flush=True)
                await stop(128 + signum)

    async with anyio.create_task_group() as group:
        group.start_soon(stop_on_signal)
        try:
            await server.run_stdio_async()  # returns when the client closes stdin
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, BaseExceptionGroup) as exc:
            reason = client_gone(exc)  # (not except*: no await inside one before CPython 3.11.4)
            if reason is None:
                raise
            if not stopping:
                print(f"{LOG_PREFIX} the MCP client has gone ({reason}); stopping", file=sys.stderr, flush=True)
            await stop(1)
        await stop(0)


def client_gone(exc: BaseException) -> str | None:
    """Why the client is unreachable (e.g. ``Broken pipe``) when ``exc`` (or every
    exception in its group) is a closed or broken channel; else None."""
    import anyio

    if isinstance(exc, BaseExceptionGroup):
        reasons = [client_gone(inner) for inner in exc.exceptions]
        return reasons[0] if reasons and all(reasons) else None
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, (anyio.BrokenResourceError, anyio.ClosedResourceError)):
        return type(exc).__name__
    return None


def main() -> None:
    import anyio

    running: set[Any] = set()
    anyio.run(serve, build_server(running=running), running)


if __name__ == "__main__":
    main()
