"""The MCP client side against small real stdio servers (tests/servers/misbehaving)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from runs import group_members, misbehaving_server, pid_alive, wait_for

from mcp_core.mcp_client import (
    CallCancelled,
    McpSession,
    ToolAnswer,
    ToolInvocationError,
    connect,
    spawn_server,
    stop_server,
    tool_error_in,
)


class Logged:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


def start(mode: str, *extra: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    argv = shlex.split(misbehaving_server(mode, *extra))
    fd = os.open(tmp_path / "server.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        return spawn_server(argv, env=env or dict(os.environ), cwd=tmp_path, stderr_fd=fd)
    finally:
        os.close(fd)


def session_run(
    server: subprocess.Popen[bytes], log: Logged, body: Callable[[McpSession], Awaitable[Any]]
) -> Any:
    """Run ``body`` in a connected session; stop the server afterwards."""

    async def main() -> Any:
        try:
            async with connect(server, log=log, initialize_timeout=20) as session:
                return await body(session)
        except (ToolInvocationError, BaseExceptionGroup) as exc:
            error = tool_error_in(exc)
            if error is None:
                raise
            raise error from None

    try:
        return anyio.run(main)
    finally:
        stop_server(server, wait_seconds=0.5, kill_grace=0.5)


def call(prompt: str = "Run the exact shell command: true", timeout: float = 20):
    async def body(session: McpSession) -> ToolAnswer:
        return await session.call_tool("codex", {"prompt": prompt}, timeout)

    return body


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ("codex", {"prompt": "p", "approval-policy": "never", "cwd": "/repo", "sandbox": "read-only"}),
        ("hyphen", {"prompt": "p", "approval-policy": "never", "cwd": "/repo"}),
        ("underscore", {"prompt": "p", "approval_policy": "never"}),
    ],
)
def test_arguments_follow_the_advertised_schema(tmp_path: Path, schema: str, expected: dict[str, str]) -> None:
    async def body(session: McpSession) -> dict[str, Any]:
        return session.tool_arguments("p", "never", Path("/repo"), "read-only")

    assert session_run(start("ok", schema, tmp_path=tmp_path), Logged(), body) == expected


def test_an_answer_is_its_content_list(tmp_path: Path) -> None:
    answer = session_run(start("ok", tmp_path=tmp_path), Logged(), call())
    text = '{"exit_code": 0, "summary": "ran", "manifest_path": null}'
    assert answer == ToolAnswer([{"type": "text", "text": text}], False)


def test_is_error_results_are_flagged(tmp_path: Path) -> None:
    answer = session_run(start("is-error", tmp_path=tmp_path), Logged(), call())
    assert answer.is_error is True
    assert answer.content[0]["text"] == "approval-policy: unknown field"


def test_stray_lines_are_skipped_and_logged(tmp_path: Path) -> None:
    log = Logged()
    answer = session_run(start("stray-line", tmp_path=tmp_path), log, call())
    assert answer.is_error is False
    assert any("not JSON-RPC: Launching server" in line for line in log.lines)
    assert any("not JSON-RPC: this line is not JSON-RPC" in line for line in log.lines)


def test_notification_storms_are_logged_one_readable_line_each(tmp_path: Path) -> None:
    log = Logged()
    answer = session_run(start("storm", tmp_path=tmp_path), log, call())
    assert answer.is_error is False
    assert sum(line == "codex event delta" for line in log.lines) == 2000
    assert "notification notifications/message: {\"level\": \"info\", \"data\": \"busy\"}" in log.lines


def test_a_session_can_end_while_the_server_still_talks(tmp_path: Path) -> None:
    """The call times out while the server sends notifications without end: the
    session closes with messages still coming in, and only the timeout is raised
    (the reader used to fail on the closed stream, and the worker with it)."""

    async def body(session: McpSession) -> str:
        with pytest.raises(ToolInvocationError):
            await session.call_tool("codex", {"prompt": "p"}, 0.2)
        return "ended"

    assert session_run(start("chatter", tmp_path=tmp_path), Logged(), body) == "ended"


@pytest.mark.parametrize(
    ("mode", "message", "code"), [("crash", "Connection closed", -32000), ("rpc-error", "internal boom", -32603)]
)
def test_failed_calls_raise_with_the_servers_own_message(tmp_path: Path, mode: str, message: str, code: int) -> None:
    with pytest.raises(ToolInvocationError) as caught:
        session_run(start(mode, tmp_path=tmp_path), Logged(), call())
    assert (caught.value.message, caught.value.code) == (message, code)  # no " (MCP error N)" appended
    assert caught.value.stack


def test_a_server_that_exits_at_once_fails_to_initialize(tmp_path: Path) -> None:
    with pytest.raises(ToolInvocationError) as caught:
        session_run(start("exit-at-once", tmp_path=tmp_path), Logged(), call())
    assert caught.value.message.startswith("MCP server failed to initialize: Connection closed")


def test_a_missing_server_cannot_be_spawned(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        spawn_server([str(tmp_path / "nope")], env=dict(os.environ), cwd=tmp_path, stderr_fd=2)


def test_the_whole_environment_reaches_the_server(tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "sk-client-test"}
    answer = session_run(start("env", tmp_path=tmp_path, env=env), Logged(), call())
    assert '"summary": "sk-client-test"' in answer.content[0]["text"]


def test_the_call_timeout_is_honoured_and_the_hung_server_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    server = start("hang", tmp_path=tmp_path, env={**os.environ, "RAWSERVER_PID_FILE": str(pid_file)})
    with pytest.raises(ToolInvocationError) as caught:
        session_run(server, Logged(), call(timeout=0.5))
    assert caught.value.message == (
        "The MCP server gave no answer within 0.5 seconds (the run's timeout); it reported nothing"
    )
    # stop_server ran: the server ignored SIGTERM and a closed stdin, so SIGKILL
    # went to its whole group, child included.
    server_pid, child_pid = (int(n) for n in pid_file.read_text().split())
    assert server.returncode is not None
    wait_for(lambda: not pid_alive(child_pid))
    assert not pid_alive(server_pid)
    assert group_members(server_pid) == []


def test_the_tool_error_is_found_however_deeply_it_is_grouped() -> None:
    error = ToolInvocationError("boom")
    assert tool_error_in(error) is error
    nested = BaseExceptionGroup("outer", [ValueError("other"), ExceptionGroup("inner", [KeyError("k"), error])])
    assert tool_error_in(nested) is error
    assert tool_error_in(ExceptionGroup("none", [ValueError("v")])) is None
    assert tool_error_in(ValueError("v")) is None


def test_a_timeout_names_the_servers_last_report(tmp_path: Path) -> None:
    env = {**os.environ, "RAWSERVER_CANCEL_FILE": str(tmp_path / "c")}
    server = start("hang-reporting", tmp_path=tmp_path, env=env)
    log = Logged()
    with pytest.raises(ToolInvocationError) as caught:
        session_run(server, log, call(timeout=1))
    assert caught.value.message == (
        "The MCP server gave no answer within 1 seconds (the run's timeout); "
        "its last report: stream_error: Reconnecting... waiting for network"
    )
    assert "codex event turn_aborted: interrupted" in log.lines  # the courtesy cancel ended the turn


def test_a_cancelled_call_tells_the_server_and_lets_its_turn_end(tmp_path: Path) -> None:
    cancel_file = tmp_path / "cancelled"
    server = start("hang-reporting", tmp_path=tmp_path, env={**os.environ, "RAWSERVER_CANCEL_FILE": str(cancel_file)})
    log = Logged()

    async def body(session: McpSession) -> None:
        async def cancel_once_reported() -> None:
            while session.reports.last is None or "Reconnecting" not in session.reports.last:
                await anyio.sleep(0.02)
            assert session.cancel_call()

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_once_reported)
            with pytest.raises(CallCancelled):
                await session.call_tool("codex", {"prompt": "Run the exact shell command: true"}, 60)
        assert session.reports.turn_open is False
        assert session.cancel_call() is False  # no call in progress any more

    session_run(server, log, body)
    [cancelled] = [line for line in cancel_file.read_text().splitlines()]
    assert '"requestId"' in cancelled
    assert log.lines.index("codex event turn_aborted: interrupted") > log.lines.index(
        "codex event stream_error: Reconnecting... waiting for network"
    )


def output_of_fresh_interpreter(script: str) -> str:
    """What ``script`` prints in a fresh interpreter (in this one the SDK is imported already)."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_sdk_is_imported_with_collections_paused_then_resumed() -> None:
    script = (
        "import gc, sys\n"
        "from mcp_core.mcp_client import import_sdk\n"
        "assert 'mcp' not in sys.modules\n"
        "import_sdk()\n"
        "print('mcp' in sys.modules, 'mcp.client._memory' in sys.modules, gc.isenabled(), gc.get_freeze_count())\n"
    )
    imported, memory_transport, collecting, frozen = output_of_fresh_interpreter(script).split()
    assert (imported, memory_transport, collecting) == ("True", "True", "True")
    assert int(frozen) > 100_000  # the SDK's objects are out of later collections


def test_the_sdks_models_are_built_at_first_use_and_later_models_at_once() -> None:
    script = (
        "import pydantic\n"
        "from pydantic._internal._config import config_defaults\n"
        "from mcp_core.mcp_client import import_sdk\n"
        "import_sdk()\n"
        "import mcp_types\n"
        "model = mcp_types.CallToolResult\n"
        "print(model.__pydantic_complete__, config_defaults['defer_build'])\n"
        "result = model.model_validate({'content': [{'type': 'text', 'text': 'hi'}], 'isError': True})\n"
        "print(model.__pydantic_complete__, result.content[0].text, result.is_error)\n"
        "class DefinedAfter(pydantic.BaseModel):\n"
        "    number: int\n"
        "print(DefinedAfter.__pydantic_complete__)\n"
    )
    assert output_of_fresh_interpreter(script).splitlines() == ["False False", "True hi True", "True"]


@pytest.mark.parametrize("server_module", ["mcp_core.servers.local", "mcp_core.servers.codex_exec"])
def test_the_stdio_servers_import_the_sdk_the_same_way(server_module: str) -> None:
    script = (
        "import gc, sys\n"
        f"import {server_module}\n"
        "import mcp_types\n"
        "print(mcp_types.CallToolResult.__pydantic_complete__, gc.isenabled(), gc.get_freeze_count() > 100_000)\n"
    )
    assert output_of_fresh_interpreter(script).split() == ["False", "True", "True"]
