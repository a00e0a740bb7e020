"""The runner against the REAL Codex CLI, offline, installed test-only with npm.

`@openai/codex@0.153.4` (the last release with `codex mcp-server`) is used through
MCP_RUNNER_SERVER=codex, and `@openai/codex@0.171.0` (no `mcp-server`) through the
`codex exec` bridge (MCP_RUNNER_SERVER=codex-exec). Each is installed once per test
session with `npm install --prefix` into a folder of the session (never globally and
never on the global PATH). Without network a Codex call never answers, so a run that
reaches Codex ends `failed` / `tool-invocation-error` at its `--timeout`, with no Codex
process left. Codex runs with HOME in a temp folder and no credentials. Skips with the
reason where npm or the registry cannot be reached.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run_script, runner_env

from mcp_core import process
from mcp_core.server_select import choose_server
from mcp_core.servers.common import deadline_for

OLD = "0.153.4"
NEW = "0.171.0"
NPM_TIMEOUT_SECONDS = 600
TIMEOUT = "5"  # the runs' --timeout: a Codex call offline never answers
BRIDGE_DEADLINE = deadline_for(float(TIMEOUT)).seconds  # the bridge gives up a little before the worker
CREDENTIAL_VARIABLES = ("OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL", "CODEX_HOME")

pytestmark = pytest.mark.slow


def install_codex(folder: Path, version: str) -> Path:
    """``<folder>/<version>/node_modules/.bin`` after ``npm install --prefix`` there."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install @openai/codex for the real-Codex tests")
    prefix = folder / version
    prefix.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [npm, "install", "--prefix", str(prefix), f"@openai/codex@{version}", "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm install @openai/codex@{version} took over {NPM_TIMEOUT_SECONDS} s")
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        pytest.skip(f"npm install @openai/codex@{version} failed (exit {done.returncode}): {tail}")
    return prefix / "node_modules" / ".bin"


def codex_version(bin_dir: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(bin_dir / "codex"), "--version"], capture_output=True, text=True, env=env, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"the installed codex does not run here: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def codex_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real-codex")


@pytest.fixture(scope="session")
def codex_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("codex-home")


@pytest.fixture(scope="session")
def old_codex(codex_folder: Path) -> Path:
    return install_codex(codex_folder, OLD)


@pytest.fixture(scope="session")
def new_codex(codex_folder: Path) -> Path:
    return install_codex(codex_folder, NEW)


def codex_env(repo: Path, bin_dir: Path, home: Path, **extra: str) -> dict[str, str]:
    env = runner_env(repo, **extra)
    for name in CREDENTIAL_VARIABLES:
        env.pop(name, None)
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join([str(bin_dir), env["PATH"]])
    return env


def codex_processes(install_dir: Path) -> list[str]:
    """Live processes started from ``install_dir`` (the node wrapper or the native binary)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            exe = os.readlink(f"/proc/{entry}/exe")
        except OSError:
            continue
        started_there = str(install_dir) in cmdline or exe.startswith(str(install_dir))
        if started_there and process.start_ticks(int(entry)) is not None:  # not a zombie
            found.append(f"{entry}: {cmdline.strip()}")
    return found


def wait_until(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def start(repo: Path, env: dict[str, str], *extra: str) -> str:
    done = run_script(
        "mcp-runner-start.sh", "--command", "echo hi", "--timeout", TIMEOUT, "--format", "json", *extra,
        repo=repo, env=env,
    )
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["run_id"])


def wait_ended(repo: Path, run_id: str, env: dict[str, str]) -> dict[str, Any]:
    def manifest() -> dict[str, Any]:
        data: dict[str, Any] = json.loads((repo / ".runs/0001/mcp" / run_id / "manifest.json").read_text())
        return data

    assert wait_until(lambda: manifest()["status"] in ("succeeded", "failed", "cancelled"), 90)
    ended = manifest()
    assert wait_until(lambda: not process.is_alive(ended["runner_pid"], ended.get("runner_start_ticks")), 30)
    polled = run_script("mcp-runner-poll.sh", run_id, "--format", "json", repo=repo, env=env)
    assert polled.returncode == 0 and json.loads(polled.stdout)["status"] == ended["status"]
    return manifest()


def recording_codex(bin_dir: Path, real: Path, record: Path) -> None:
    """A `codex` that hands everything to the real one, keeping a copy of what the
    server receives on stdin (the client's JSON-RPC messages)."""
    bin_dir.mkdir()
    shim = bin_dir / "codex"
    shim.write_text(f'#!/usr/bin/env bash\ntee -a "{record}" | exec "{real}" "$@"\n')
    shim.chmod(0o755)


def tool_calls(record: Path) -> list[dict[str, Any]]:
    messages = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
    return [m for m in messages if m.get("method") == "tools/call"]


def test_auto_selection_tells_the_two_codex_releases_apart(
    tmp_path: Path, old_codex: Path, new_codex: Path, codex_home: Path
) -> None:
    old_env = codex_env(tmp_path, old_codex, codex_home)
    new_env = codex_env(tmp_path, new_codex, codex_home)
    assert codex_version(old_codex, old_env) == f"codex-cli {OLD}"
    assert codex_version(new_codex, new_env) == f"codex-cli {NEW}"
    assert choose_server(tmp_path, old_env).mode == "codex"
    assert choose_server(tmp_path, new_env).mode == "codex-exec"
    # Why `codex mcp-server --help` proves nothing: the new one answers it with exit 0.
    probe = subprocess.run(
        [str(new_codex / "codex"), "mcp-server", "--help"],
        capture_output=True,
        text=True,
        env=new_env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert probe.returncode == 0 and "mcp-server" not in probe.stdout.split("Commands:")[1].split("Arguments:")[0]


def test_codex_mode_on_a_codex_without_mcp_server_says_what_to_use(
    tmp_path: Path, new_codex: Path, codex_home: Path
) -> None:
    line = f"this codex ({NEW}) has no mcp-server; use MCP_RUNNER_SERVER=codex-exec or auto"
    env = codex_env(tmp_path, new_codex, codex_home, MCP_RUNNER_SERVER="codex")
    manifest = wait_ended(tmp_path, start(tmp_path, env), env)
    assert (manifest["status"], manifest["status_detail"]) == ("failed", "tool-invocation-error")
    assert manifest["commands"][0]["summary"] == f"Tool invocation failed: {line}"
    dry = run_script("run-local-mcp.sh", "--dry-run", "--repo", str(tmp_path), repo=tmp_path, env=env)
    assert dry.returncode == 1 and dry.stderr.splitlines()[-1] == line, dry.stderr
    assert dry.stdout.splitlines() == [f"codex CLI available: {new_codex / 'codex'}", f"Repository root: {tmp_path}"]


def test_offline_runs_send_the_sandbox_and_end_at_the_timeout_with_no_codex_left(
    tmp_path: Path, old_codex: Path, new_codex: Path, codex_home: Path
) -> None:
    # All runs at once: each waits out its --timeout (or is refused at once).
    runs = {}
    for name, bin_dir, extra in (
        ("codex", old_codex, {"MCP_RUNNER_SERVER": "codex"}),
        ("codex-read-only", old_codex, {"MCP_RUNNER_SERVER": "codex", "MCP_RUNNER_CODEX_SANDBOX": "read-only"}),
        ("codex-exec", new_codex, {"MCP_RUNNER_SERVER": "codex-exec"}),
    ):
        repo = tmp_path / name / "repo"
        repo.mkdir(parents=True)
        record = tmp_path / name / "received.jsonl"
        shim_dir = tmp_path / name / "bin"
        recording_codex(shim_dir, bin_dir / "codex", record)
        env = codex_env(repo, bin_dir, codex_home, **extra)
        env["PATH"] = os.pathsep.join([str(shim_dir), env["PATH"]])
        runs[name] = (repo, record, env, start(repo, env))

    for name, (repo, record, env, run_id) in runs.items():
        manifest = wait_ended(repo, run_id, env)
        log = (repo / ".runs/0001/mcp" / run_id / "runner.log").read_text(errors="replace")
        assert manifest["mcp_server"]["mode"] == name.removesuffix("-read-only"), log
        assert (manifest["status"], manifest["status_detail"]) == ("failed", "tool-invocation-error"), log
        [command] = manifest["commands"]
        assert command["status"] == "failed" and command["exit_code"] is None
        artifact = json.loads((repo / command["error_file"]).read_text())
        assert artifact["reason"] == "tool-invocation-error"
        assert wait_until(lambda: codex_processes(old_codex.parent.parent) == [], 10), codex_processes(old_codex)
        assert wait_until(lambda: codex_processes(new_codex.parent.parent) == [], 10)
        assert "Traceback" not in log and "MCP error" not in command["summary"]

        if name.startswith("codex-exec"):
            # The bridge's arguments were accepted: Codex started a thread, no usage error.
            assert "[codex-exec] event thread.started: " in log, log
            assert " --sandbox workspace-write " in log
            assert "unexpected argument" not in log and "Usage: codex" not in log
            assert (
                f": codex exec gave no answer within {BRIDGE_DEADLINE:g} seconds; "
                "its process group was killed. Its last event: error: Reconnecting... "
            ) in command["summary"], command["summary"]
            assert list(artifact["details"]) == ["message", "stack"]
            continue
        # The worker read the real server's schema: the exact tools/call arguments.
        sandbox = "read-only" if name == "codex-read-only" else "workspace-write"
        [call] = tool_calls(record)
        assert call["params"]["name"] == "codex"
        arguments = call["params"]["arguments"]
        assert sorted(arguments) == ["approval-policy", "cwd", "prompt", "sandbox"]
        assert (arguments["approval-policy"], arguments["cwd"], arguments["sandbox"]) == ("never", str(repo), sandbox)
        assert arguments["prompt"].endswith("\nRun the exact shell command: echo hi")
        # Codex set its session up with that sandbox (without it 0.153.4 chose read-only).
        files = "read-only" if sandbox == "read-only" else "writable"
        assert "codex event session_configured: model " in log and f", files {files}\n" in log, log
        assert "run-local-mcp.sh" in manifest["mcp_server"]["command"]
        assert command["summary"].startswith(
            f"Tool invocation failed: The MCP server gave no answer within {TIMEOUT} seconds (the run's timeout);"
            " its last report: "
        ), command["summary"]
        assert list(artifact["details"]) == ["message", "stack", "code"] and artifact["details"]["code"] == -32001
        # The timeout told Codex to stop (notifications/cancelled) before its stdin closed.
        messages = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
        assert messages[-1]["method"] == "notifications/cancelled", messages[-1]


@pytest.mark.parametrize(
    ("server", "policy", "message"),
    [
        (
            "codex",
            "on-failure",
            "Failed to parse configuration for Codex tool: unknown variant `on-failure`, "
            "expected `on-request` or `never`",
        ),
        (
            "codex-exec",
            "untrusted",
            'codex exec exited with status 1: Error: approval_policy = "untrusted" is no longer supported; '
            "remove this setting",
        ),
    ],
)
def test_approval_policies_a_codex_refuses_fail_at_once_with_its_own_words(
    tmp_path: Path, old_codex: Path, new_codex: Path, codex_home: Path, server: str, policy: str, message: str
) -> None:
    bin_dir = old_codex if server == "codex" else new_codex
    env = codex_env(tmp_path, bin_dir, codex_home, MCP_RUNNER_SERVER=server)
    manifest = wait_ended(tmp_path, start(tmp_path, env, "--approval-policy", policy), env)
    [command] = manifest["commands"]
    assert command["summary"].startswith("Tool invocation failed: ") and message in command["summary"]
    assert "<unknown>" not in command["summary"] and "Stack backtrace" not in command["summary"]
