"""The bundled local executor as a real stdio MCP server, driven over raw JSON-RPC."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runs import group_members, pid_alive, wait_for

from mcp_core import protocol
from mcp_core.servers import common

CHECKOUT = Path(__file__).resolve().parents[2]
PROTOCOL = "2025-11-25"


class RawClient:
    """A minimal MCP client: newline-delimited JSON-RPC over the server's pipes."""

    def __init__(self, cwd: Path, stderr_path: Path, **extra_env: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_RUNNER_")}
        env["PYTHONPATH"] = str(CHECKOUT)
        env["MCP_RUNNER_REPO_ROOT"] = str(cwd)
        env.update(extra_env)
        self.stderr = open(stderr_path, "ab")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcp_core.servers.local"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd="/",
            env=env,
            start_new_session=True,
        )
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        hello = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
        self.request("initialize", hello)
        self.notify("notifications/initialized")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.messages.put(json.loads(line))

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())
        self.process.stdin.flush()

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self.send({"method": method, **({"params": params} if params is not None else {})})

    def start(self, method: str, params: dict[str, Any]) -> int:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.next_id

    def wait(self, request_id: int, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("id") == request_id:
                return message

    def request(self, method: str, params: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        return self.wait(self.start(method, params), timeout)

    def call(self, command: str, **arguments: Any) -> dict[str, Any]:
        response = self.request("tools/call", call_params(command, **arguments))
        return response["result"]

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.stderr.close()


def call_params(command: str, **arguments: Any) -> dict[str, Any]:
    prompt = f"Please run this.\n{protocol.COMMAND_MARKER}{command}"
    return {"name": "codex", "arguments": {"prompt": prompt, **arguments}}


def answer_of(result: dict[str, Any]) -> dict[str, Any]:
    assert result.get("isError") in (None, False), result
    [item] = result["content"]
    assert item["type"] == "text"
    answer = json.loads(item["text"])
    assert list(answer) == ["exit_code", "summary", "manifest_path"]
    assert answer["manifest_path"] is None
    return answer


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-executor")


@pytest.fixture(scope="module")
def client(workdir: Path) -> Iterator[RawClient]:
    raw = RawClient(workdir, workdir / "server.stderr")
    yield raw
    raw.close()


def test_offers_the_codex_tool(client: RawClient) -> None:
    tools = client.request("tools/list", {})["result"]["tools"]
    [tool] = tools
    assert tool["name"] == "codex"
    schema = tool["inputSchema"]
    assert set(schema["properties"]) == {"prompt", "approval_policy", "approval-policy", "cwd"}
    assert schema["required"] == ["prompt"]


@pytest.mark.parametrize("approval", [{}, {"approval_policy": "never"}, {"approval-policy": "never"}])
def test_runs_the_command_and_answers_compact_json(client: RawClient, workdir: Path, approval: dict) -> None:
    result = client.call("echo out; echo err >&2; exit 3", **approval)
    text = result["content"][0]["text"]
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    answer = answer_of(result)
    assert answer["exit_code"] == 3
    assert answer["summary"] == "Command exited with status 3; last output: out | err"
    # The output went to the server's stderr (the worker points it at runner.log).
    assert "out\nerr\n" in (workdir / "server.stderr").read_text()


def test_commands_arrive_verbatim(client: RawClient, workdir: Path) -> None:
    command = "printf '%s|' \"$$\" '$$' '$&' '$`' \"it's\" 'é ✓' 'a\\b' > verbatim\nprintf 'line2' >> verbatim"
    assert answer_of(client.call(command))["exit_code"] == 0
    pid, rest = (workdir / "verbatim").read_text().split("|", 1)
    assert pid.isdigit()
    assert rest == "$$|$&|$`|it's|é ✓|a\\b|line2"


def test_runs_in_the_repo_root_or_the_given_cwd(client: RawClient, workdir: Path, tmp_path: Path) -> None:
    answer_of(client.call("pwd > where"))
    assert (workdir / "where").read_text().strip() == str(workdir)
    answer_of(client.call("pwd > where", cwd=str(tmp_path)))
    assert (tmp_path / "where").read_text().strip() == str(tmp_path)


def test_plain_bash_with_no_stdin_in_its_own_session(client: RawClient, workdir: Path) -> None:
    command = (
        "shopt -q login_shell && echo login > shell || echo plain > shell; "
        "readlink /proc/self/fd/0 > stdin; ps -o sid= -o pgid= -p $$ > ids; echo $$ >> ids"
    )
    answer_of(client.call(command))
    assert (workdir / "shell").read_text().strip() == "plain"
    assert (workdir / "stdin").read_text().strip() == "/dev/null"
    sid, pgid, pid = (workdir / "ids").read_text().split()
    assert sid == pgid == pid


def test_background_leftovers_are_killed_when_the_command_ends(client: RawClient, workdir: Path) -> None:
    answer = answer_of(client.call("sleep 60 & echo $! > leftover; echo done"))
    assert answer["exit_code"] == 0
    leftover = int((workdir / "leftover").read_text())
    # The pipe closes while the killed process is still exiting: give it a moment to be gone.
    wait_for(lambda: not pid_alive(leftover), timeout=5)


def test_a_prompt_without_the_marker_is_an_error(client: RawClient) -> None:
    result = client.request("tools/call", {"name": "codex", "arguments": {"prompt": "just chat"}})["result"]
    assert result["isError"] is True
    assert "Run the exact shell command:" in result["content"][0]["text"]


def test_cancel_kills_the_command_group(client: RawClient, workdir: Path) -> None:
    request_id = client.start("tools/call", call_params("echo $$ > cancel-pgid; sleep 60 & sleep 60"))
    wait_for(lambda: (workdir / "cancel-pgid").exists() and (workdir / "cancel-pgid").read_text().strip())
    pgid = int((workdir / "cancel-pgid").read_text())
    assert group_members(pgid)
    client.notify("notifications/cancelled", {"requestId": request_id, "reason": "test"})
    wait_for(lambda: not group_members(pgid))
    # The server carries on.
    assert answer_of(client.call("true"))["exit_code"] == 0


@pytest.fixture
def short_deadline_client(tmp_path: Path) -> Iterator[RawClient]:
    raw = RawClient(tmp_path, tmp_path / "server.stderr", **{common.REQUEST_TIMEOUT_ENV: "2"})
    yield raw
    raw.close()


@pytest.mark.slow
def test_its_own_deadline_answers_exit_124_before_the_client_gives_up(
    short_deadline_client: RawClient, tmp_path: Path
) -> None:
    # The client's request timeout is 2 s; the server gives up at 1.6 s, so the
    # worker gets an answer (exit 124) rather than a timeout of its own.
    answer = answer_of(short_deadline_client.call("echo $$ > pgid; trap '' TERM; sleep 30 & sleep 30"))
    assert answer["exit_code"] == 124
    assert answer["summary"].startswith("Command timed out after 1.6 seconds")
    assert group_members(int((tmp_path / "pgid").read_text())) == []


@pytest.mark.parametrize("how", ["sigterm", "stdin-closed"])
def test_a_stopped_server_takes_the_command_group_with_it(tmp_path: Path, how: str) -> None:
    raw = RawClient(tmp_path, tmp_path / "server.stderr")
    try:
        raw.start("tools/call", call_params("echo $$ > pgid; sleep 60 & sleep 60"))
        wait_for(lambda: (tmp_path / "pgid").exists() and (tmp_path / "pgid").read_text().strip())
        pgid = int((tmp_path / "pgid").read_text())
        if how == "sigterm":
            os.kill(raw.process.pid, signal.SIGTERM)
        else:
            assert raw.process.stdin is not None
            raw.process.stdin.close()
        raw.process.wait(timeout=30)
        wait_for(lambda: not group_members(pgid))
    finally:
        raw.close()


def test_command_from_prompt() -> None:
    marker = protocol.COMMAND_MARKER
    assert protocol.command_from_prompt(f"{marker}ls") == "ls"
    assert protocol.command_from_prompt(f"intro\n{marker}a\nb $$ $&") == "a\nb $$ $&"
    assert protocol.command_from_prompt(f"say {marker}ls") is None
    assert protocol.command_from_prompt("nothing") is None


def test_deadline_leaves_room_for_the_answer() -> None:
    assert common.deadline_for(None) == common.Deadline(None, 1.0)
    assert common.deadline_for(3600) == common.Deadline(3598, 1.0)
    short = common.deadline_for(2)
    assert short.seconds is not None and short.seconds + short.kill_grace < 2
    assert common.deadline_from_env({common.REQUEST_TIMEOUT_ENV: "abc"}).seconds is None


def test_summary_is_bounded() -> None:
    tail = ("x" * 1000 + "\n") * 10
    outcome = common.CommandOutcome(1, False, tail.encode())
    summary = common.summarize(outcome, common.Deadline(None, 1.0))
    assert summary.startswith("Command exited with status 1; last output: ")
    assert len(summary) < 600


@pytest.fixture
def deadline_12_client(tmp_path: Path) -> Iterator[RawClient]:
    raw = RawClient(tmp_path, tmp_path / "server.stderr", **{common.REQUEST_TIMEOUT_ENV: "12"})
    yield raw
    raw.close()


DAEMONS = {
    # a background job that leaves the group (new session), the pipes still open
    "setsid-background": "setsid sh -c 'echo $$ > daemon; exec sleep 40' & sleep 0.5; echo finished",
    # the same with stdout closed but stderr still open
    "setsid-stderr-open": "setsid sh -c 'echo $$ > daemon; sleep 41' >/dev/null & sleep 0.5; echo finished",
    # setsid forks and returns at once: the daemon is an orphan from the start
    "setsid-fork": "setsid -f sh -c 'echo $$ > daemon; exec sleep 36'; sleep 0.5; echo finished",
}


@pytest.mark.parametrize("kind", sorted(DAEMONS))
def test_a_daemon_does_not_keep_a_finished_command_running(
    deadline_12_client: RawClient, tmp_path: Path, kind: str
) -> None:
    # The command's own process ends after half a second; the daemon it started
    # in a session of its own keeps the output pipe open. The answer is the
    # command's status (not a timeout), and the daemon does not outlive it.
    answer = answer_of(deadline_12_client.call(DAEMONS[kind]))
    assert answer["exit_code"] == 0, answer
    assert answer["summary"] == "Command exited with status 0; last output: finished"
    daemon = int((tmp_path / "daemon").read_text())
    # Killed and reaped by the server (its subreaper), not left a zombie.
    wait_for(lambda: not Path(f"/proc/{daemon}").exists(), timeout=10)
    assert answer_of(deadline_12_client.call("echo again"))["exit_code"] == 0


def test_runner_log_keeps_the_first_and_last_of_a_flood_of_output(tmp_path: Path) -> None:
    limit = 1024 * 1024
    log = tmp_path / "server.stderr"
    raw = RawClient(tmp_path, log, **{common.LOG_LIMIT_ENV: str(limit)})
    try:
        flood = "echo FIRST-LINE; head -c 5000000 /dev/zero | tr '\\0' x; echo; echo LAST-LINE"
        answer = answer_of(raw.call(flood))
        assert answer["exit_code"] == 0 and answer["summary"].endswith("LAST-LINE")
        kept = log.read_bytes()
        assert len(kept) <= limit + 1024
        assert kept.startswith(b"FIRST-LINE\n") and kept.endswith(b"\nLAST-LINE\n")
        assert b"bytes of this command's output left out of runner.log (MCP_RUNNER_LOG_MAX_BYTES=1048576)" in kept
        # A later flood still shows its own end (at least LOG_MIN_TAIL_BYTES of it).
        answer_of(raw.call("head -c 300000 /dev/zero | tr '\\0' y; echo; echo SECOND-END"))
        again = log.read_bytes()
        assert again.endswith(b"\nSECOND-END\n") and len(again) <= len(kept) + common.LOG_MIN_TAIL_BYTES + 1024
    finally:
        raw.close()


def test_log_limit_from_env() -> None:
    assert common.log_limit_from_env({}) == common.DEFAULT_LOG_LIMIT_BYTES == 16 * 1024 * 1024
    assert common.log_limit_from_env({common.LOG_LIMIT_ENV: "4096"}) == 4096
    for bad in ("abc", "0", "-5", ""):
        assert common.log_limit_from_env({common.LOG_LIMIT_ENV: bad}) == common.DEFAULT_LOG_LIMIT_BYTES
