"""The runner against the REAL Codex CLI, offline, installed test-only with npm.

`@openai/codex@0.153.4` (the last release with `codex mcp-server`) is used through
MCP_RUNNER_SERVER=codex, and `@openai/codex@latest` (no `mcp-server`) through the
`codex exec` bridge (MCP_RUNNER_SERVER=codex-exec). Both are installed with
`npm install --prefix` into pytest's cache folder (`.pytest_cache/d/real-codex/`,
ignored by git), never globally and never on the global PATH; `latest` is
refreshed once a day. Without network a Codex call never answers, so each run
must end `failed` / `tool-invocation-error` at its `--timeout`, with no Codex
process left. Codex runs with HOME in a temp folder and no credentials.
Skips with the reason where npm or the package cannot be had.
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

OLD = "0.153.4"
LATEST = "latest"
LATEST_MAX_AGE_SECONDS = 24 * 3600
NPM_TIMEOUT_SECONDS = 600
TIMEOUT = "5"  # the runs' --timeout: a Codex call offline never answers
CREDENTIAL_VARIABLES = ("OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL", "CODEX_HOME")

pytestmark = pytest.mark.slow


def install_codex(cache: Path, version: str) -> Path:
    """``<cache>/<version>/node_modules/.bin``, installing the package there when needed."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install @openai/codex for the real-Codex tests")
    prefix = cache / version
    bin_dir = prefix / "node_modules" / ".bin"
    stamp = prefix / "installed.json"
    fresh = stamp.exists() and (version != LATEST or time.time() - stamp.stat().st_mtime < LATEST_MAX_AGE_SECONDS)
    if not (fresh and (bin_dir / "codex").exists()):
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
        stamp.write_text(json.dumps({"version": version, "installed_at": time.time()}) + "\n")
    return bin_dir


def codex_version(bin_dir: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(bin_dir / "codex"), "--version"], capture_output=True, text=True, env=env, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"the installed codex does not run here: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def codex_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    return cache.mkdir("real-codex") if cache is not None else tmp_path_factory.mktemp("real-codex")


@pytest.fixture(scope="session")
def codex_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("codex-home")


@pytest.fixture(scope="session")
def old_codex(codex_cache: Path) -> Path:
    return install_codex(codex_cache, OLD)


@pytest.fixture(scope="session")
def latest_codex(codex_cache: Path) -> Path:
    return install_codex(codex_cache, LATEST)


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


def start(repo: Path, env: dict[str, str]) -> str:
    done = run_script(
        "mcp-runner-start.sh", "--command", "echo hi", "--timeout", TIMEOUT, "--format", "json", repo=repo, env=env
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


def test_auto_selection_tells_the_two_codex_releases_apart(
    tmp_path: Path, old_codex: Path, latest_codex: Path, codex_home: Path
) -> None:
    old_env = codex_env(tmp_path, old_codex, codex_home)
    latest_env = codex_env(tmp_path, latest_codex, codex_home)
    assert codex_version(old_codex, old_env) == f"codex-cli {OLD}"
    assert choose_server(tmp_path, old_env).mode == "codex"
    assert choose_server(tmp_path, latest_env).mode == "codex-exec"
    # Why `codex mcp-server --help` proves nothing: the latest answers it with exit 0.
    probe = subprocess.run(
        [str(latest_codex / "codex"), "mcp-server", "--help"],
        capture_output=True,
        text=True,
        env=latest_env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert probe.returncode == 0 and "mcp-server" not in probe.stdout.split("Commands:")[1].split("Arguments:")[0]


def test_offline_runs_end_at_the_timeout_with_no_codex_left(
    tmp_path: Path, old_codex: Path, latest_codex: Path, codex_home: Path
) -> None:
    # Both runs at once: each waits out its --timeout.
    old_repo = tmp_path / "old" / "repo"
    old_repo.mkdir(parents=True)
    record = tmp_path / "old" / "received.jsonl"
    shim_dir = tmp_path / "old" / "bin"
    recording_codex(shim_dir, old_codex / "codex", record)
    old_env = codex_env(old_repo, old_codex, codex_home, MCP_RUNNER_SERVER="codex")
    old_env["PATH"] = os.pathsep.join([str(shim_dir), old_env["PATH"]])
    old_id = start(old_repo, old_env)

    new_repo = tmp_path / "latest" / "repo"
    new_repo.mkdir(parents=True)
    new_env = codex_env(new_repo, latest_codex, codex_home, MCP_RUNNER_SERVER="codex-exec")
    new_id = start(new_repo, new_env)

    for repo, run_id, env, mode in (
        (old_repo, old_id, old_env, "codex"),
        (new_repo, new_id, new_env, "codex-exec"),
    ):
        manifest = wait_ended(repo, run_id, env)
        log = (repo / ".runs/0001/mcp" / run_id / "runner.log").read_text(errors="replace")
        assert manifest["mcp_server"]["mode"] == mode, log
        assert (manifest["status"], manifest["status_detail"]) == ("failed", "tool-invocation-error"), log
        [command] = manifest["commands"]
        assert command["status"] == "failed" and command["exit_code"] is None
        assert command["summary"].startswith("Tool invocation failed: ")
        artifact = json.loads((repo / command["error_file"]).read_text())
        assert artifact["reason"] == "tool-invocation-error" and list(artifact["details"]) == ["message", "stack"]
        assert wait_until(lambda: codex_processes(old_codex.parent.parent) == [], 10), codex_processes(old_codex)
        assert wait_until(lambda: codex_processes(latest_codex.parent.parent) == [], 10)

        if mode == "codex":
            # The worker read the real server's schema: `approval-policy` (hyphen) and `cwd`.
            messages = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
            assert messages[0]["method"] == "initialize"
            [call] = [m for m in messages if m.get("method") == "tools/call"]
            assert call["params"]["name"] == "codex"
            arguments = call["params"]["arguments"]
            assert sorted(arguments) == ["approval-policy", "cwd", "prompt"]
            assert arguments["approval-policy"] == "never" and arguments["cwd"] == str(repo)
            assert "codex-mcp-server" in log  # initialized with the real server
            assert "run-local-mcp.sh" in manifest["mcp_server"]["command"]
        else:
            # The bridge's arguments were accepted: Codex started a thread, no usage error.
            assert '"type":"thread.started"' in log, log
            assert "unexpected argument" not in log and "Usage: codex" not in log
            assert "codex exec gave no answer within" in command["summary"], command["summary"]
