"""The codex exec bridge as a real stdio MCP server, driven by the SDK client,
with the scripted stand-in `codex` (tests/fake_codex/codex) first on PATH."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import run_script, runner_env
from mcp import ClientSession, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server.mcpserver.exceptions import ToolError
from runs import group_members, wait_for

from mcp_core import process
from mcp_core.servers import codex_exec, common

FAKE_CODEX = Path(__file__).resolve().parent.parent / "fake_codex" / "codex"
PROMPT = "Run it once and answer with JSON only.\nRun the exact shell command: "


def wait_until(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Bridge:
    """Spawns ``python -m mcp_core.servers.codex_exec`` with a PATH holding the stand-in."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "repo"
        self.root.mkdir(parents=True, exist_ok=True)
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        if not (bin_dir / "codex").exists():
            (bin_dir / "codex").symlink_to(FAKE_CODEX)
        self.record = tmp_path / "codex-calls.jsonl"
        self.errlog = tmp_path / "server-stderr.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_RUNNER_", "FAKE_CODEX_"))}
        self.env.update(
            PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            MCP_RUNNER_REPO_ROOT=str(self.root),
            FAKE_CODEX_RECORD=str(self.record),
        )
        self.env.update(env)
        self.server_pid: int | None = None

    def params(self) -> StdioServerParameters:
        return StdioServerParameters(
            command=sys.executable,
            args=["-m", "mcp_core.servers.codex_exec"],
            env=self.env,
            cwd=str(Path(__file__).resolve().parent.parent.parent),
        )

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def stderr(self) -> str:
        return self.errlog.read_text(encoding="utf-8", errors="replace")

    def call(self, arguments: dict[str, Any], read_timeout: float = 30) -> Any:
        async def go() -> Any:
            async with open_session(self) as session:
                return await session.call_tool("codex", arguments, read_timeout_seconds=read_timeout)

        return anyio.run(go)


@contextlib.asynccontextmanager
async def open_session(bridge: Bridge) -> AsyncIterator[ClientSession]:
    """An initialized MCP session with a freshly spawned bridge (its stderr to ``bridge.errlog``)."""
    with bridge.errlog.open("a") as errlog:
        async with (
            stdio_client(bridge.params(), errlog=errlog) as (read, write),
            ClientSession(read, write, read_timeout_seconds=30) as session,
        ):
            await session.initialize()
            yield session


def text_of(result: Any) -> str:
    return "\n".join(item.text for item in result.content if item.type == "text")


def exec_argv_of(call: dict[str, Any]) -> list[str]:
    assert call["argv"][0] == "exec"
    return call["argv"][1:]


def run_direct(
    bridge: Bridge,
    approval: str | None = None,
    cwd: str | None = None,
    command: str = "true",
    deadline: common.Deadline | None = None,
) -> str:
    """One call of the tool's function in this process (the stand-in is still a real process)."""
    return anyio.run(
        lambda: codex_exec.run_codex_exec(
            PROMPT + command, approval, cwd, env=bridge.env, deadline=deadline or common.Deadline(30, 0.5)
        )
    )


def test_over_mcp_each_call_runs_codex_exec_once_with_the_documented_arguments(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    async def go() -> list[Any]:
        async with open_session(bridge) as session:
            tools = (await session.list_tools()).tools
            first = await session.call_tool(
                "codex", {"prompt": PROMPT + "echo out-$((40+2)); echo err >&2", "approval_policy": "never"}
            )
            failing = await session.call_tool("codex", {"prompt": PROMPT + "exit 2"})
            hyphen = await session.call_tool(
                "codex", {"prompt": PROMPT + "pwd", "approval-policy": "on-request", "cwd": str(elsewhere)}
            )
            return [tools, first, failing, hyphen]

    tools, first, failing, hyphen = anyio.run(go)
    [tool] = tools
    assert tool.name == common.TOOL_NAME  # the same tool as the local executor offers
    assert set(tool.input_schema["properties"]) == set(common.TOOL_INPUT_SCHEMA["properties"])
    assert tool.input_schema["required"] == ["prompt"]

    assert not first.is_error
    assert json.loads(text_of(first)) == {
        "exit_code": 0,
        "summary": "Ran the command; it exited with status 0.",
        "manifest_path": None,
    }
    assert not failing.is_error  # a failing command is an answer, not a tool error
    assert json.loads(text_of(failing))["exit_code"] == 2
    assert not hyphen.is_error

    calls = bridge.calls()
    assert len(calls) == 3  # once per call
    argv = exec_argv_of(calls[0])
    assert argv[:10] == [
        "--json",
        "-C",
        str(bridge.root),
        "--skip-git-repo-check",
        "--sandbox",
        "workspace-write",
        "-c",
        'approval_policy="never"',
        "--output-schema",
        argv[9],
    ]
    assert argv[10] == "-o"
    assert argv[-2:] == ["--", PROMPT + "echo out-$((40+2)); echo err >&2"]
    assert calls[0]["cwd"] == str(bridge.root)
    assert calls[0]["stdin"] == "/dev/null"  # never the MCP channel
    assert calls[0]["pgid"] == calls[0]["pid"]  # its own process group
    # The schema and final-message files lived in a scratch dir that is gone.
    assert not Path(argv[9]).exists() and not Path(argv[11]).exists()

    third = exec_argv_of(calls[2])
    assert third[third.index("-C") + 1] == str(elsewhere)
    assert third[third.index("-c") + 1] == 'approval_policy="on-request"'
    assert calls[2]["cwd"] == str(elsewhere)

    log = bridge.stderr()
    # Codex's JSONL events reach the server's stderr as one readable line each.
    assert "[codex-exec] event thread.started: 00000000-fake-thread\n" in log
    assert "[codex-exec] event item.started: command_execution echo out-$((40+2)); echo err >&2\n" in log
    assert "[codex-exec] event turn.completed\n" in log and '"type"' not in log
    completed = "item.completed: command_execution echo out-$((40+2)); echo err >&2 (exit code 0): err"
    assert f"[codex-exec] event {completed}\n" in log
    assert "--output-schema" in log
    # Its own stderr lines pass as they are.
    assert "\nWARNING: this is the stand-in codex used by the tests\n" in log


def test_the_answer_schema_is_the_workers_json_object() -> None:
    schema = codex_exec.ANSWER_SCHEMA
    assert schema["required"] == ["exit_code", "summary", "manifest_path"]
    assert schema["properties"]["exit_code"] == {"type": "integer"}
    assert schema["properties"]["manifest_path"] == {"type": ["string", "null"]}


def test_unknown_approval_policy_is_refused_without_running_codex(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path)
    with pytest.raises(ToolError, match="Unsupported approval policy 'sometimes'"):
        run_direct(bridge, approval="sometimes")
    assert bridge.calls() == []


def test_sandbox_and_extra_arguments_come_from_the_environment(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path, MCP_RUNNER_CODEX_SANDBOX="read-only", MCP_RUNNER_CODEX_EXEC_ARGS="-m 'some model'")
    run_direct(bridge)
    argv = exec_argv_of(bridge.calls()[0])
    assert argv[argv.index("--sandbox") + 1] == "read-only"
    assert argv[argv.index("-m") + 1] == "some model"
    assert argv.index("-m") < argv.index("--")

    bridge.env["MCP_RUNNER_CODEX_SANDBOX"] = "yolo"
    with pytest.raises(ToolError, match="MCP_RUNNER_CODEX_SANDBOX='yolo' is not a sandbox mode"):
        run_direct(bridge)
    assert len(bridge.calls()) == 1


def test_malformed_final_message_is_returned_as_is(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path, FAKE_CODEX_MODE="malformed")
    assert run_direct(bridge) == "Done! Ran the command; it exited with status 0."


def test_codex_exiting_non_zero_is_a_tool_error_with_its_reason(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path, FAKE_CODEX_MODE="crash")
    with pytest.raises(ToolError) as raised:
        run_direct(bridge)
    assert str(raised.value) == (
        "codex exec exited with status 1: Error: stand-in crashed mid-turn (last output: "
        "turn.started | error: stand-in told to crash | turn.failed: stand-in crashed mid-turn)"
    )


def test_codexs_own_error_line_survives_and_backtrace_noise_does_not(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path)
    with pytest.raises(ToolError) as raised:
        run_direct(bridge, approval="untrusted")
    assert str(raised.value) == (
        'codex exec exited with status 1: Error: approval_policy = "untrusted" is no longer supported; '
        "remove this setting (last output: Reading additional input from stdin... | "
        "WARNING: this is the stand-in codex used by the tests)"
    )


def test_a_usage_error_from_codex_is_a_tool_error(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path, MCP_RUNNER_CODEX_EXEC_ARGS="--no-such-flag")
    with pytest.raises(ToolError) as raised:
        run_direct(bridge)
    assert str(raised.value).startswith("codex exec exited with status 2: ")
    assert "unexpected argument '--no-such-flag' found" in str(raised.value)


def test_no_final_message_is_a_tool_error(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path, FAKE_CODEX_MODE="silent")
    with pytest.raises(ToolError) as raised:
        run_direct(bridge)
    assert str(raised.value) == "codex exec finished without a final message."


def test_no_codex_on_path_is_a_tool_error(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path)
    bridge.env["PATH"] = str(tmp_path / "empty")
    with pytest.raises(ToolError, match="codex CLI not found in PATH"):
        run_direct(bridge)


def test_a_nul_byte_in_the_prompt_is_a_tool_error_and_runs_nothing(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path)
    with pytest.raises(ToolError) as raised:
        run_direct(bridge, command="echo a\x00b")
    assert str(raised.value) == "Cannot run it: the prompt contains a NUL byte."
    assert not bridge.record.exists()  # the stand-in codex was never started


@pytest.mark.parametrize("ignore_term", ["0", "1"])
def test_hang_past_the_deadline_kills_the_whole_group(tmp_path: Path, ignore_term: str) -> None:
    bridge = Bridge(tmp_path, FAKE_CODEX_MODE="hang", FAKE_CODEX_IGNORE_TERM=ignore_term)
    with pytest.raises(ToolError) as raised:
        run_direct(bridge, deadline=common.Deadline(1.0, 0.3))
    assert str(raised.value) == (
        "codex exec gave no answer within 1 seconds; its process group was killed. "
        "Its last event: error: Reconnecting... 1/5 (stand-in told to hang)"
    )
    [call] = bridge.calls()
    # Codex and its grandchild are gone, by SIGKILL if need be (a SIGKILLed process
    # can take a moment to leave /proc on a loaded machine).
    assert wait_until(lambda: group_members(call["pgid"]) == [], 10)


def test_the_servers_deadline_comes_from_the_workers_request_timeout(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path, FAKE_CODEX_MODE="hang", **{common.REQUEST_TIMEOUT_ENV: "2"})
    result = bridge.call({"prompt": PROMPT + "true"})
    assert result.is_error
    seconds = common.deadline_for(2.0).seconds
    assert text_of(result).endswith(
        f"codex exec gave no answer within {seconds:g} seconds; its process group was killed. "
        "Its last event: error: Reconnecting... 1/5 (stand-in told to hang)"
    )
    [call] = bridge.calls()
    assert group_members(call["pgid"]) == []


def test_client_timeout_cancels_the_call_and_kills_codex(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path, FAKE_CODEX_MODE="hang")

    async def go() -> None:
        async with open_session(bridge) as session:
            with pytest.raises(MCPError):
                await session.call_tool("codex", {"prompt": PROMPT + "true"}, read_timeout_seconds=1)
            # The cancelled call's Codex is stopped while the server lives on.
            [call] = bridge.calls()
            gone = await anyio.to_thread.run_sync(lambda: wait_until(lambda: not group_members(call["pgid"])))
            assert gone
            await session.send_ping()

    anyio.run(go)


def test_a_stop_signal_to_the_server_kills_the_running_codex(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path, FAKE_CODEX_MODE="hang")

    async def go() -> None:
        async with open_session(bridge) as session, anyio.create_task_group() as group:

            async def call() -> None:
                try:  # the server may answer with a tool error before it exits, or just go
                    result = await session.call_tool("codex", {"prompt": PROMPT + "true"}, read_timeout_seconds=20)
                except MCPError:
                    return
                assert result.is_error

            group.start_soon(call)
            assert await anyio.to_thread.run_sync(lambda: wait_until(lambda: bool(bridge.calls())))
            os.kill(_parent_of(bridge.calls()[0]["pid"]), signal.SIGTERM)

    anyio.run(go)
    [call] = bridge.calls()
    assert wait_until(lambda: group_members(call["pgid"]) == [], 10)
    assert "[codex-exec] stopping on signal" in bridge.stderr()


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


def test_leaving_the_session_mid_call_leaves_no_codex(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path, FAKE_CODEX_MODE="hang")

    async def go() -> None:
        async with open_session(bridge) as session:
            with anyio.move_on_after(1.5):
                await session.call_tool("codex", {"prompt": PROMPT + "true"}, read_timeout_seconds=20)

    anyio.run(go)
    [call] = bridge.calls()
    assert wait_until(lambda: group_members(call["pgid"]) == [], 10)


def test_failure_detail_prefers_codexs_error_lines_then_its_error_events() -> None:
    tail = b'{"type":"turn.started"}\n{"type":"error","message":"Reconnecting... 1/5"}\nplain\n'
    assert codex_exec.failure_detail(tail) == "Reconnecting... 1/5 (last output: turn.started | plain)"
    failed = b'{"type":"error","message":"first"}\n{"type":"turn.failed","error":{"message":"quota"}}\n'
    assert codex_exec.failure_detail(failed) == "quota (last output: error: first)"
    assert codex_exec.failure_detail(b"Error: bad flag\n\nStack backtrace:\n   0: <unknown>\n") == "Error: bad flag"
    assert codex_exec.failure_detail(b"one\ntwo\nthree\nfour\n   5: <unknown>\n") == "two | three | four"
    assert codex_exec.failure_detail(b"Stack backtrace:\n  1: <unknown>\n") == "no output"
    assert codex_exec.failure_detail(b"") == "no output"
    long_error = b"Error: " + b"x" * 500 + b"\n"
    assert len(codex_exec.failure_detail(long_error)) == common.SUMMARY_LINE_CHARS


# --- Through the runner: scripts/mcp-runner-start.sh + poll, the worker, this bridge, the stand-in.

RESPONSE_KEYS = ["exit_code", "summary", "manifest_path"]
ARTIFACT_KEYS = ["run_id", "task_id", "command_index", "command", "created_at", "reason", "details"]
TERMINAL = ("succeeded", "failed", "cancelled")


def start_run(repo: Path, server: str, commands: list[str], timeout: str = "60", **env: str) -> str:
    bridge = Bridge(repo.parent, **env)  # for its PATH with the stand-in first
    run_env = runner_env(repo, MCP_RUNNER_SERVER=server, PATH=bridge.env["PATH"], **env)
    run_env["FAKE_CODEX_RECORD"] = str(repo.parent / "codex-calls.jsonl")
    args = [arg for command in commands for arg in ("--command", command)]
    done = run_script("mcp-runner-start.sh", *args, "--timeout", timeout, "--format", "json", repo=repo, env=run_env)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["run_id"])


def poll_until_ended(repo: Path, run_id: str, seconds: float = 60) -> dict[str, Any]:
    """Poll (the real script, JSON) until the run is terminal and its worker has gone."""
    deadline = time.monotonic() + seconds
    while True:
        done = run_script("mcp-runner-poll.sh", run_id, "--format", "json", repo=repo)
        assert done.returncode == 0, done.stderr
        if json.loads(done.stdout)["status"] in TERMINAL:
            break
        assert time.monotonic() < deadline, f"run {run_id} did not end"
        time.sleep(0.2)
    path = repo / ".runs/0001/mcp" / run_id / "manifest.json"
    ended = json.loads(path.read_text())
    wait_for(lambda: not process.is_alive(ended["runner_pid"], ended.get("runner_start_ticks")), timeout=60)
    # Read again: the worker's last saves (its metrics line recorded) come after the terminal status.
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def shape(repo: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """What must be the same whichever server ran the commands: keys, statuses,
    exit codes, the response files' structure, the error artifacts' structure."""
    commands = []
    for command in manifest["commands"]:
        entry: dict[str, Any] = {
            "keys": list(command),
            "status": command["status"],
            "exit_code": command["exit_code"],
            "response_file": command["response_file"] and Path(command["response_file"]).name,
            "error_file": command["error_file"] and Path(command["error_file"]).name,
        }
        if command["response_file"]:
            content = json.loads((repo / command["response_file"]).read_text())
            [item] = content
            entry["response"] = [list(item), item["type"], list(json.loads(item["text"]))]
        if command["error_file"]:
            artifact = json.loads((repo / command["error_file"]).read_text())
            entry["artifact"] = [list(artifact), artifact["reason"], list(artifact["details"])]
        commands.append(entry)
    keys = [key for key in manifest if key != "mcp_server"]
    return {"keys": keys, "status": manifest["status"], "detail": manifest["status_detail"], "commands": commands}


def make_repo(tmp_path: Path, name: str) -> Path:
    repo = tmp_path / name / "repo"
    repo.mkdir(parents=True)
    return repo


@pytest.mark.slow
def test_runs_through_the_bridge_match_runs_through_the_local_executor(tmp_path: Path) -> None:
    plans = {
        "succeeded": ["echo hello", "printf 'a$$b$&c é\\n'"],
        "command-failed": ["true", "exit 2", "echo never"],
    }
    started = {}
    for name, commands in plans.items():  # all four runs go at once; start returns at once
        for server in ("local", "codex-exec"):
            repo = make_repo(tmp_path, f"{name}-{server}")
            started[name, server] = (repo, start_run(repo, server, commands))
    shapes = {}
    for (name, server), (repo, run_id) in started.items():
        manifest = poll_until_ended(repo, run_id)
        assert manifest["mcp_server"]["mode"] == server
        shapes[name, server] = shape(repo, manifest)
    for name in plans:
        assert shapes[name, "codex-exec"] == shapes[name, "local"]
    assert shapes["succeeded", "local"]["status"] == "succeeded"
    failed = shapes["command-failed", "codex-exec"]
    assert (failed["status"], failed["detail"]) == ("failed", "command-failed")
    assert [c["status"] for c in failed["commands"]] == ["succeeded", "failed", "pending"]
    assert failed["commands"][1]["artifact"] == [
        ARTIFACT_KEYS,
        "command-failed",
        ["exit_code", "summary", "normalized_response"],
    ]
    assert failed["commands"][1]["response"] == [["type", "text"], "text", RESPONSE_KEYS]

    # What the agent did is in runner.log: the bridge's command line and Codex's JSONL events.
    repo, run_id = started["command-failed", "codex-exec"]
    log = (repo / ".runs/0001/mcp" / run_id / "runner.log").read_text()
    assert "[codex-exec] event item.completed: command_execution exit 2 (exit code 2)\n" in log


@pytest.mark.slow
def test_bridge_failures_end_the_run_with_the_contracts_error_artifacts(tmp_path: Path) -> None:
    cases = {
        "malformed": ("malformed-tool-response", {}, "60"),
        "crash": ("tool-invocation-error", {}, "60"),
        "hang": ("tool-invocation-error", {"FAKE_CODEX_IGNORE_TERM": "1"}, "4"),
    }
    started = {}
    for mode, (_, extra, timeout) in cases.items():
        repo = make_repo(tmp_path, mode)
        started[mode] = (
            repo,
            start_run(repo, "codex-exec", ["true", "echo x"], timeout, FAKE_CODEX_MODE=mode, **extra),
        )
    for mode, (repo, run_id) in started.items():
        reason = cases[mode][0]
        manifest = poll_until_ended(repo, run_id)
        assert (manifest["status"], manifest["status_detail"]) == ("failed", reason)
        first = manifest["commands"][0]
        assert first["status"] == "failed" and manifest["commands"][1]["status"] == "pending"
        artifact = json.loads((repo / first["error_file"]).read_text())
        assert list(artifact) == ARTIFACT_KEYS and artifact["reason"] == reason
        if reason == "tool-invocation-error":
            assert list(artifact["details"]) == ["message", "stack"]  # a tool error: no JSON-RPC code
            assert first["summary"].startswith("Tool invocation failed: ") and first["exit_code"] is None
        else:
            assert list(artifact["details"]) == ["note", "raw_summary", "normalized_response"]
            assert first["summary"] == "Done! Ran the command; it exited with status 0."
        # No process is left: not Codex's group, not the server, not the worker.
        for call in [json.loads(line) for line in (repo.parent / "codex-calls.jsonl").read_text().splitlines()]:
            assert wait_until(lambda call=call: group_members(call["pgid"]) == [])
        assert not process.is_alive(manifest["mcp_server"]["pid"], manifest["mcp_server"]["start_ticks"])
    crash = json.loads((started["crash"][0] / ".runs/0001/mcp" / started["crash"][1] / "manifest.json").read_text())
    assert "codex exec exited with status 1: Error: stand-in crashed mid-turn" in crash["commands"][0]["summary"]
    hang_repo, hang_id = started["hang"]
    hang = json.loads((hang_repo / ".runs/0001/mcp" / hang_id / "manifest.json").read_text())
    assert "codex exec gave no answer within 3.2 seconds" in hang["commands"][0]["summary"]


@pytest.mark.slow
def test_a_killed_worker_leaves_the_bridge_to_stop_quietly(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "killed")
    run_id = start_run(repo, "codex-exec", ["true"], "60", FAKE_CODEX_MODE="hang")
    run_dir = repo / ".runs/0001/mcp" / run_id
    record = repo.parent / "codex-calls.jsonl"
    assert wait_until(lambda: record.exists() and "stand-in told to hang" in (run_dir / "runner.log").read_text(), 30)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    os.kill(manifest["runner_pid"], signal.SIGKILL)
    [call] = [json.loads(line) for line in record.read_text().splitlines()]
    assert wait_until(lambda: group_members(call["pgid"]) == [], 20)
    server = manifest["mcp_server"]
    assert wait_until(lambda: not process.is_alive(server["pid"], server["start_ticks"]), 20)
    log = (run_dir / "runner.log").read_text()
    assert "Traceback" not in log and "BrokenPipeError" not in log and "ExceptionGroup" not in log, log
    # After Codex's last event: a line or two on how the bridge stopped, nothing more.
    lines = log.splitlines()
    last_event = max(n for n, line in enumerate(lines) if line.startswith("[codex-exec] event "))
    assert 1 <= len(lines[last_event + 1 :]) <= 3, lines[last_event + 1 :]


@pytest.mark.parametrize(
    ("server", "env", "message"),
    [
        ("codex", {}, "this codex (0.169.0-fake) has no mcp-server; use MCP_RUNNER_SERVER=codex-exec or auto"),
        (
            "codex-exec",
            {"MCP_RUNNER_CODEX_SANDBOX": "bogus"},
            "MCP_RUNNER_CODEX_SANDBOX='bogus' is not a sandbox mode; "
            "use read-only, workspace-write or danger-full-access.",
        ),
    ],
)
def test_a_run_that_cannot_use_its_server_fails_with_one_line_saying_why(
    tmp_path: Path, server: str, env: dict[str, str], message: str
) -> None:
    repo = make_repo(tmp_path, server)
    manifest = poll_until_ended(repo, start_run(repo, server, ["true"], **env))
    assert (manifest["status"], manifest["status_detail"]) == ("failed", "tool-invocation-error")
    assert manifest["commands"][0]["summary"] == f"Tool invocation failed: {message}"
    assert not (repo.parent / "codex-calls.jsonl").exists()  # no Codex session was started


@pytest.mark.slow
def test_the_running_commands_latest_event_is_shown_where_people_look(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "latest")
    run_id = start_run(repo, "codex-exec", ["true"], "60", FAKE_CODEX_MODE="hang")
    event = "error: Reconnecting... 1/5 (stand-in told to hang)"

    def polled() -> dict[str, Any]:
        done = run_script("mcp-runner-poll.sh", run_id, "--format", "json", repo=repo)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    assert wait_until(lambda: polled().get("latest_event") == event, 30)
    snapshot = polled()
    assert list(snapshot)[-1] == "latest_event" and snapshot["status"] == "in_progress"  # appended at the end
    text = run_script("mcp-runner-poll.sh", run_id, repo=repo).stdout
    assert "Reconnecting" not in text  # poll's text stays as the contract fixes it
    listing = json.loads(run_script("mcp-runner-list.sh", "--format", "json", repo=repo).stdout)
    assert listing["runs"][0]["latest_event"] == event
    assert f"now: {event}" in run_script("mcp-runner-list.sh", repo=repo).stdout
    report = run_script("mcp-runner-report.sh", repo=repo)
    assert report.returncode == 0, report.stderr
    assert "now: error: Reconnecting... 1/5" in (repo / ".runs/0001/report.html").read_text()
    done = run_script("mcp-runner-cancel.sh", run_id, repo=repo)
    assert done.returncode == 0, done.stderr
    ended = poll_until_ended(repo, run_id)
    assert ended["status"] == "cancelled"
    assert "latest_event" not in polled()  # only while a command runs
