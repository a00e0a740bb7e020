"""Running a run's commands elsewhere: a real ``mcp-runner serve`` on a free
local port (127.0.0.1 only) and real workers talking to it over streamable HTTP."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CHECKOUT, run_script
from runs import Run, create_run, group_members, launch_worker, pid_alive, run_worker, stop_worker, wait_for

from mcp_core import manifest as manifest_mod
from mcp_core.commands import serve as serve_mod
from mcp_core.errors import RunnerError
from mcp_core.mcp_client import unreachable_reason
from mcp_core.server_select import choose_server

SERVING = re.compile(r"serving the \S+ executor at (http://127\.0\.0\.1:\d+/mcp)")
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
# A command that leaves its pid and its child's pid in the serving root, then waits.
WAITING = "sleep 300 & echo $! > child.pid; echo $$ > command.pid; wait"
FAKE_CODEX = Path(__file__).resolve().parent / "fake_codex" / "codex"


def serve_env(token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_RUNNER_")}
    env["PYTHONPATH"] = str(CHECKOUT)
    if token is not None:
        env[serve_mod.TOKEN_ENV] = token
    return env


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    url: str
    token: str
    root: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_serve(where: Path, *extra: str, **env: str) -> Serve:
    root = where / "serve-root"
    root.mkdir(parents=True)
    log_path = where / "serve.log"
    token = secrets.token_hex(32)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_core.commands.serve", "--listen", "127.0.0.1:0", "--root", str(root), *extra],
            cwd=where,
            env={**serve_env(token), **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    served = Serve(process, "", token, root, log_path)
    try:
        served.url = wait_for(lambda: (m := SERVING.search(served.log())) and m.group(1), timeout=60)
    except BaseException:
        served.stop()
        raise
    return served


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Serve]:
    server = start_serve(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def remote_run(
    repo: Path, server: Serve, commands: list[str], *, token: str | None = None, timeout: float = 3600
) -> Run:
    return create_run(repo, commands, server=server.url, timeout=timeout, MCP_RUNNER_SERVER_TOKEN=token or server.token)


def answer_of(run: Run, index: int) -> dict:
    command = run.manifest()["commands"][index - 1]
    content = json.loads((run.loc.repo_root / command["response_file"]).read_text())
    return json.loads(content[0]["text"])


def files_holding(root: Path, secret: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


def read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


def kill_group_of(pid_file: Path) -> None:
    pid = read_pid(pid_file)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def http_status(url: str, *, token: str | None = None, body: bytes | None = None, method: str = "POST") -> int:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def status_for_declared_size(url: str, token: str, size: int) -> int:
    """The answer to a POST whose headers declare ``size`` bytes of body, none sent.

    A server refusing it answers from the headers and closes the connection: a
    client still sending a large body then races that close (a broken pipe on a
    loaded machine), so the body is never sent."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.putrequest("POST", parts.path)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Accept", "application/json, text/event-stream")
        connection.putheader("Authorization", f"Bearer {token}")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the client's side: which server, what is recorded -------------------------


@pytest.mark.parametrize("url", ["http://build-box:8765/mcp", "https://gpu.example.org/mcp", "HTTP://10.0.0.5:80/x"])
def test_a_url_selects_the_http_server_and_records_only_the_url(tmp_path: Path, url: str) -> None:
    choice = choose_server(tmp_path, {"MCP_RUNNER_SERVER": url, "MCP_RUNNER_SERVER_TOKEN": "secret-token-123456"})
    assert choice.mode == "http" and choice.url == url
    assert choice.describe() == {"mode": "http", "url": url}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:secret@host:8765/mcp", "must not hold credentials"),
        ("https://:secret@host/mcp", "must not hold credentials"),
        ("http:///mcp", "names no host"),
        ("http://host:port/mcp", "not a valid URL"),
    ],
)
def test_bad_server_urls_are_refused_without_echoing_credentials(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(RunnerError) as caught:
        choose_server(tmp_path, {"MCP_RUNNER_SERVER": url})
    assert message in caught.value.message
    assert "secret" not in caught.value.message


def test_the_reason_a_server_is_unreachable_is_the_systems() -> None:
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    wrapped = OSError("All connection attempts failed")
    wrapped.__cause__ = refused
    outer = RuntimeError("ConnectError: All connection attempts failed")
    outer.__cause__ = wrapped
    assert unreachable_reason(outer) == "Connection refused"
    assert unreachable_reason(socket.gaierror(-2, "Name or service not known")) == "Name or service not known"
    assert unreachable_reason(ValueError("odd")) == "ValueError: odd"


# -- serve's own checks ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9000", ("::1", 9000)),
        (":9000", ("127.0.0.1", 9000)),
        ("9000", ("127.0.0.1", 9000)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_listen_addresses(value: str, expected: tuple[str, int]) -> None:
    assert serve_mod.parse_listen(value) == expected


@pytest.mark.parametrize("value", ["host:", "host:70000", "host:http", "", "a:-1"])
def test_bad_listen_addresses(value: str) -> None:
    with pytest.raises(RunnerError):
        serve_mod.parse_listen(value)


@pytest.mark.parametrize(
    ("env", "fault"),
    [
        ({}, "is not set"),
        ({serve_mod.TOKEN_ENV: ""}, "is not set"),
        ({serve_mod.TOKEN_ENV: "short"}, "at least 16"),
        ({serve_mod.TOKEN_ENV: "sixteen chars but spaces"}, "without spaces"),
        ({serve_mod.TOKEN_ENV: "é" * 20}, "ASCII"),
    ],
)
def test_serve_refuses_to_start_without_a_usable_token(tmp_path: Path, env: dict[str, str], fault: str) -> None:
    base = serve_env(None)
    base.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "mcp_core.commands.serve", "--listen", "127.0.0.1:0"],
        cwd=tmp_path, env=base, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and fault in result.stderr and serve_mod.TOKEN_ENV in result.stderr


@pytest.mark.parametrize(
    ("args", "fault"),
    [
        (["--root", "/nonexistent/dir"], "--root is not a directory"),
        (["--executor", "ssh"], "--executor must be one of local, codex-exec"),
        (["--listen", "nowhere:x"], "--listen needs HOST:PORT"),
        (["--bogus"], "Unknown option for serve: --bogus"),
        (["--root"], "--root requires a value"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path: Path, args: list[str], fault: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mcp_core.commands.serve", *args],
        cwd=tmp_path, env=serve_env(secrets.token_hex(16)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and fault in result.stderr


def test_what_callers_send_cannot_forge_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    command = serve_mod.shown_command("Run the exact shell command: a\nb")
    serve_mod.log(f"127.0.0.1:5 ran {command}: error: x\ny\x1b[2J")
    logged = capsys.readouterr().err
    assert logged.count("\n") == 1
    assert logged.endswith("ran 'a\\nb': error: x\\x0ay\\x1b[2J\n")


def test_help_and_checks_import_nothing_heavy(tmp_path: Path) -> None:
    program = (
        "import sys\n"
        "from mcp_core.commands import serve\n"
        "import mcp_core.server_select, mcp_core.mcp_client\n"
        "code = serve.main(['--help'])\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('mcp', 'starlette', 'uvicorn', 'httpx2', 'anyio')]\n"
        "print(code, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, env=serve_env(None), capture_output=True, text=True, timeout=60
    )
    assert result.stdout.startswith("Usage: mcp-runner serve [--listen HOST:PORT]")
    assert result.stderr == "0 []\n"


@pytest.mark.slow
def test_every_request_without_the_right_token_gets_401(served: Serve) -> None:
    body = json.dumps(INITIALIZE).encode()
    other = served.url.removesuffix("/mcp") + "/elsewhere"
    wrong = secrets.token_hex(32)  # as long as the right one
    assert http_status(served.url, body=body) == 401
    assert http_status(served.url, token=wrong, body=body) == 401
    assert http_status(served.url, token=served.token.upper(), body=body) == 401
    assert http_status(served.url, method="GET") == 401
    assert http_status(served.url, method="DELETE") == 401
    assert http_status(other, method="GET") == 401
    assert http_status(served.url, token=served.token, body=body) == 200
    assert http_status(other, token=served.token, method="GET") == 404
    # Request size is limited.
    assert status_for_declared_size(served.url, served.token, serve_mod.MAX_REQUEST_BODY_BYTES + 1) == 413
    log = served.log()
    assert log.count("refused with HTTP 401") == 6
    assert served.token not in log and wrong not in log


# -- runs through a real serve -----------------------------------------------


@pytest.mark.slow
def test_a_run_through_serve_is_recorded_like_a_local_one(tmp_path: Path, served: Serve) -> None:
    commands = ["echo hello > made-here.txt; pwd", "printf 'a\\nb'"]
    remote_repo, local_repo = tmp_path / "remote-repo", tmp_path / "local-repo"
    remote_repo.mkdir()
    local_repo.mkdir()
    remote = remote_run(remote_repo, served, commands)
    local = create_run(local_repo, commands, timeout=3600)
    assert run_worker(remote) == 0
    assert run_worker(local) == 0

    manifest = remote.manifest()
    assert manifest["status"] == "succeeded"
    assert manifest["mcp_server"] == {"mode": "http", "url": served.url}
    # The same record as a local run, command by command and file by file.
    keys = ("index", "command", "status", "exit_code", "manifest_path", "error_file")
    assert [{k: c[k] for k in keys} for c in manifest["commands"]] == [
        {k: c[k] for k in keys} for c in local.manifest()["commands"]
    ]
    assert sorted(p.name for p in remote.run_dir.iterdir()) == sorted(p.name for p in local.run_dir.iterdir())
    # The command ran in serve's root, whatever cwd the worker asked for.
    assert (served.root / "made-here.txt").read_text() == "hello\n"
    assert not (remote_repo / "made-here.txt").exists()
    assert str(served.root) in answer_of(remote, 1)["summary"]
    # The token is nowhere in the record, runner.log included.
    assert files_holding(remote_repo, served.token) == []
    assert f"talking to the MCP server at {served.url}" in remote.log_text()
    # The commands' output reaches runner.log as a local server's stderr does.
    for output in (f"{served.root}\n", "a\nb"):
        assert output in local.log_text().replace(str(local_repo), str(served.root))
        assert output in remote.log_text()
    # One line per call on serve's stderr: who, command, exit, duration.
    calls = [line for line in served.log().splitlines() if " ran " in line]
    assert len(calls) == 2
    assert re.search(r"127\.0\.0\.1:\d+ ran 'echo hello > made-here\.txt; pwd': exit 0 \(\d+\.\d{3}s\)$", calls[0])


@pytest.mark.slow
def test_serve_offers_the_codex_exec_bridge_too(tmp_path: Path) -> None:
    record = tmp_path / "codex-calls.jsonl"
    path = f"{FAKE_CODEX.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    server = start_serve(tmp_path, "--executor", "codex-exec", PATH=path, FAKE_CODEX_RECORD=str(record))
    try:
        repo = tmp_path / "repo"
        repo.mkdir()
        run = remote_run(repo, server, ["echo through codex > made-here.txt"])
        assert run_worker(run, timeout=120) == 0
    finally:
        server.stop()
    assert run.manifest()["status"] == "succeeded"
    assert (server.root / "made-here.txt").read_text() == "through codex\n"
    (call,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert call["argv"][call["argv"].index("-C") + 1] == str(server.root)
    assert re.search(r" ran 'echo through codex > made-here\.txt': exit 0 ", server.log())


def test_serve_with_codex_exec_needs_codex_on_path(tmp_path: Path) -> None:
    env = {**serve_env(secrets.token_hex(16)), "PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "mcp_core.commands.serve", "--executor", "codex-exec"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == "serve --executor codex-exec needs the codex CLI on PATH.\n"


@pytest.mark.slow
def test_a_wrong_token_fails_the_run_at_once_and_runs_nothing(repo: Path, served: Serve) -> None:
    wrong = secrets.token_hex(32)
    run = remote_run(repo, served, ["touch ran-anyway"], token=wrong)
    assert run_worker(run, timeout=120) == 1
    manifest = run.manifest()
    assert manifest["status"] == "failed"
    assert manifest["status_detail"] == "tool-invocation-error"
    summary = manifest["commands"][0]["summary"]
    assert "HTTP 401 Unauthorized" in summary and "MCP_RUNNER_SERVER_TOKEN" in summary
    assert not (served.root / "ran-anyway").exists()
    assert " ran " not in served.log()
    assert files_holding(repo, wrong) == [] and files_holding(repo, served.token) == []


@pytest.mark.slow
def test_a_server_that_is_down_fails_the_run_at_once(repo: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    run = create_run(repo, ["true"], server=url, timeout=3600, MCP_RUNNER_SERVER_TOKEN=secrets.token_hex(32))
    assert run_worker(run, timeout=120) == 1  # long before the 3600 s timeout
    manifest = run.manifest()
    assert manifest["status"] == "failed"
    assert manifest["mcp_server"] == {"mode": "http", "url": url}
    summary = manifest["commands"][0]["summary"]
    assert summary == f"Tool invocation failed: cannot reach the MCP server at {url}: Connection refused"


@pytest.mark.slow
def test_a_server_killed_mid_call_fails_the_run(repo: Path, served: Serve) -> None:
    run = remote_run(repo, served, [WAITING, "echo never"])
    worker = launch_worker(run)
    try:
        wait_for(lambda: read_pid(served.root / "command.pid"), timeout=60)
        os.kill(served.process.pid, signal.SIGKILL)
        served.process.wait()
        assert worker.wait(timeout=120) == 1  # long before the 3600 s timeout
    finally:
        stop_worker(worker)
        kill_group_of(served.root / "command.pid")  # a server killed by SIGKILL leaves its command behind
    manifest = run.manifest()
    assert manifest["status"] == "failed"
    assert manifest["status_detail"] == "tool-invocation-error"
    assert [c["status"] for c in manifest["commands"]] == ["failed", "pending"]
    assert manifest["commands"][0]["summary"].startswith("Tool invocation failed: ")


@pytest.mark.slow
def test_a_frozen_server_fails_the_run_at_its_timeout(repo: Path, served: Serve) -> None:
    # SIGSTOP: connections are still accepted, nothing is answered (a hung host).
    run = remote_run(repo, served, [WAITING], timeout=20)
    worker = launch_worker(run)
    try:
        wait_for(lambda: read_pid(served.root / "command.pid"), timeout=60)
        os.kill(served.process.pid, signal.SIGSTOP)
        # Bounded well below what waiting a second timeout for the cancel and the close would take.
        assert worker.wait(timeout=50) == 1
    finally:
        os.kill(served.process.pid, signal.SIGCONT)
        stop_worker(worker)
    command = run.manifest()["commands"][0]
    assert command["status"] == "failed" and "gave no answer within 20 seconds" in command["summary"]
    assert "Traceback" not in run.log_text()


@pytest.mark.slow
def test_stopping_serve_kills_the_commands_it_runs(repo: Path, served: Serve) -> None:
    run = remote_run(repo, served, [WAITING])
    worker = launch_worker(run)
    try:
        wait_for(lambda: read_pid(served.root / "child.pid") and read_pid(served.root / "command.pid"), timeout=60)
        pids = [read_pid(served.root / "command.pid"), read_pid(served.root / "child.pid")]
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=60) != 0
        assert worker.wait(timeout=120) == 1
    finally:
        stop_worker(worker)
    wait_for(lambda: not any(pid is not None and pid_alive(pid) for pid in pids), timeout=30)
    assert run.manifest()["status"] == "failed"
    assert "cancelled; its process group was killed" in served.log()


@pytest.mark.slow
def test_cancel_mid_call_kills_the_remote_command(repo: Path, served: Serve) -> None:
    run = remote_run(repo, served, [WAITING])
    worker = launch_worker(run)
    try:
        wait_for(lambda: read_pid(served.root / "child.pid") and read_pid(served.root / "command.pid"), timeout=60)
        command, child = read_pid(served.root / "command.pid"), read_pid(served.root / "child.pid")
        assert command is not None and child is not None and pid_alive(child)
        result = run_script("mcp-runner-cancel.sh", run.run_id, repo=repo, env=run.env)
        assert result.returncode == 0, result.stderr
        worker.wait(timeout=60)
    finally:
        stop_worker(worker)
    assert run.manifest()["status"] == "cancelled"
    # The remote command and its child are gone within seconds, not at the timeout.
    wait_for(lambda: not pid_alive(command) and not pid_alive(child) and not group_members(command), timeout=30)
    # Whichever serve noticed first: the worker's notifications/cancelled, or its connection closing.
    ended = re.compile(r"ran 'sleep 300 .*: (cancelled|error: The caller disconnected); its process group was killed")
    wait_for(lambda: ended.search(served.log()), timeout=30)
    assert served.process.poll() is None  # serve goes on serving


@pytest.mark.slow
def test_the_timeout_is_honoured_end_to_end(repo: Path, served: Serve) -> None:
    run = remote_run(repo, served, [WAITING], timeout=3)
    assert run_worker(run, timeout=120) == 1
    manifest = run.manifest()
    command = manifest["commands"][0]
    # As a local run records it: the server ended the command at the deadline.
    assert (manifest["status_detail"], command["exit_code"]) == ("command-failed", 124)
    assert "timed out" in command["summary"]
    pids = [read_pid(served.root / "command.pid"), read_pid(served.root / "child.pid")]
    wait_for(lambda: not any(pid is not None and pid_alive(pid) for pid in pids), timeout=30)


@pytest.mark.slow
def test_two_runs_at_once_against_one_server(tmp_path: Path, served: Serve) -> None:
    # Each command waits for the other's: they both succeed only if serve runs them at once.
    meet = "touch {me}; until [ -e {other} ]; do sleep 0.05; done; echo met"
    runs = []
    for me, other in (("a", "b"), ("b", "a")):
        repo = tmp_path / f"repo-{me}"
        repo.mkdir()
        runs.append(remote_run(repo, served, [meet.format(me=me, other=other)], timeout=120))
    workers = [launch_worker(run) for run in runs]
    try:
        assert [worker.wait(timeout=180) for worker in workers] == [0, 0]
    finally:
        for worker in workers:
            stop_worker(worker)
    assert [run.manifest()["status"] for run in runs] == ["succeeded", "succeeded"]
    assert len({line.split(" ran ")[0] for line in served.log().splitlines() if " ran " in line}) == 2


@pytest.mark.slow
def test_a_resumed_run_reconnects(repo: Path, served: Serve) -> None:
    first_time = "if [ -e first ]; then echo second time; else touch first; echo $$ > command.pid; sleep 300; fi"
    run = remote_run(repo, served, ["echo one", first_time])
    worker = launch_worker(run)
    wait_for(lambda: read_pid(served.root / "command.pid"), timeout=60)
    command = read_pid(served.root / "command.pid")
    assert command is not None
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    # Its caller is gone without a word: serve stops the command anyway.
    wait_for(lambda: not pid_alive(command), timeout=30)
    assert run.manifest()["status"] == "in_progress"

    result = run_script("mcp-runner-start.sh", "--resume", run.run_id, repo=repo, env=run.env)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: manifest_mod.is_terminal(run.manifest()), timeout=120)
    manifest = run.manifest()
    assert manifest["status"] == "succeeded"
    assert answer_of(run, 2)["summary"].endswith("last output: second time")
    assert manifest["mcp_server"] == {"mode": "http", "url": served.url}
