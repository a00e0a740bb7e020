"""scripts/run-local-mcp.sh as a real process, with the stand-in `codex` on PATH."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_RUNS, SCRIPTS

SCRIPT = SCRIPTS / "run-local-mcp.sh"
FAKE_CODEX = Path(__file__).resolve().parent.parent / "fake_codex" / "codex"
USAGE = "Usage: scripts/run-local-mcp.sh [--repo PATH] [--no-log] [--dry-run] [--help] [-- CMD...]"
NOT_FOUND = "Error: codex CLI not found in PATH. Install the Codex CLI before running the MCP server.\n"
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$")
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


def system_dirs() -> list[str]:
    return [d for d in ("/usr/local/bin", "/usr/bin", "/bin") if not (Path(d) / "codex").exists()]


def env_for(tmp_path: Path, *, with_codex: bool = True, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    if with_codex and not (bin_dir / "codex").exists():
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "codex").symlink_to(FAKE_CODEX)
    dirs = ([str(bin_dir)] if with_codex else []) + [str(Path(sys.executable).parent), *system_dirs()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_RUNNER_", "FAKE_CODEX_", "GIT_"))}
    env.update(PATH=os.pathsep.join(dirs), FAKE_CODEX_RECORD=str(tmp_path / "codex-calls.jsonl"))
    env.update(extra)
    return env


def run(
    *args: str, env: dict[str, str], cwd: Path, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    record = tmp_path / "codex-calls.jsonl"
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def protocol(*messages: dict[str, Any]) -> str:
    return "".join(json.dumps(message) + "\n" for message in messages)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_goes_to_stdout(tmp_path: Path, root: Path, flag: str) -> None:
    done = run(flag, env=env_for(tmp_path, with_codex=False), cwd=root)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == USAGE
    assert "--no-log" in done.stdout and "mcp-server" in done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize("argument", ["--bogus", "--repo=.", "extra", "--dry"])
def test_unknown_option_prints_the_error_and_the_help_on_stderr(tmp_path: Path, root: Path, argument: str) -> None:
    done = run("--dry-run", argument, env=env_for(tmp_path), cwd=root)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == f"Unknown option: {argument}"
    assert lines[1] == USAGE


def test_missing_codex(tmp_path: Path, root: Path) -> None:
    done = run("--dry-run", env=env_for(tmp_path, with_codex=False), cwd=root)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", NOT_FOUND)
    assert not (root / ".runs").exists()


@pytest.mark.parametrize("args", [["--repo"], ["--repo", ""], ["--dry-run", "--repo"]])
def test_repo_requires_a_path(tmp_path: Path, root: Path, args: list[str]) -> None:
    done = run(*args, env=env_for(tmp_path), cwd=root)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "Error: --repo requires a path.\n")


def test_missing_repo_directory(tmp_path: Path, root: Path) -> None:
    missing = tmp_path / "nowhere"
    done = run("--repo", str(missing), "--dry-run", env=env_for(tmp_path), cwd=root)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"Error: repository root '{missing}' does not exist.\n"


def test_dry_run_prints_the_codex_and_the_root(tmp_path: Path, root: Path) -> None:
    done = run("--dry-run", "--repo", str(root), env=env_for(tmp_path, FAKE_CODEX_MCP_SERVER="1"), cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout == f"codex CLI available: {tmp_path / 'bin' / 'codex'}\nRepository root: {root}\n"
    assert done.stderr == ""
    assert not (root / ".runs").exists() and calls(tmp_path) == []


def test_dry_run_fails_on_a_codex_without_mcp_server(tmp_path: Path, root: Path) -> None:
    done = run("--dry-run", "--repo", str(root), env=env_for(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == f"codex CLI available: {tmp_path / 'bin' / 'codex'}\nRepository root: {root}\n"
    assert done.stderr == "this codex (0.169.0-fake) has no mcp-server; use MCP_RUNNER_SERVER=codex-exec or auto\n"
    assert not (root / ".runs").exists() and calls(tmp_path) == []


def test_the_root_defaults_to_the_git_top_level_else_the_current_directory(tmp_path: Path, root: Path) -> None:
    env = env_for(tmp_path)
    sub = root / "a" / "b"
    sub.mkdir(parents=True)
    assert run("--dry-run", env=env, cwd=sub).stdout.endswith(f"Repository root: {sub}\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=env, timeout=60)
    assert run("--dry-run", env=env, cwd=sub).stdout.endswith(f"Repository root: {root}\n")
    # A relative --repo is made absolute.
    assert run("--dry-run", "--repo", "a", env=env, cwd=root).stdout.endswith(f"Repository root: {root / 'a'}\n")


def test_no_log_execs_codex_mcp_server_with_only_the_protocol_on_stdout(tmp_path: Path, root: Path) -> None:
    env = env_for(tmp_path, FAKE_CODEX_MCP_SERVER="1")
    process = subprocess.Popen(
        [str(SCRIPT), "--repo", str(root), "--no-log", "--", "--extra", "two words"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    stdout, stderr = process.communicate(protocol(INITIALIZE, TOOLS_LIST), timeout=30)
    assert process.returncode == 0
    assert stderr.startswith("Launching Codex MCP server...\n")
    responses = [json.loads(line) for line in stdout.splitlines()]  # nothing but JSON-RPC
    assert [r["id"] for r in responses] == [0, 1]
    assert responses[0]["result"]["serverInfo"]["name"] == "codex-mcp-server"
    [call] = calls(tmp_path)
    assert call["argv"] == ["-C", str(root), "mcp-server", "--extra", "two words"]
    assert call["pid"] == process.pid  # exec'd: signals reach the server itself
    assert call["cwd"] == str(root)  # Codex 0.153.4 ignores -C: it starts in the root
    assert not (root / ".runs").exists()


def test_logged_session_records_manifest_transcript_and_result(tmp_path: Path, root: Path) -> None:
    env = env_for(tmp_path, FAKE_CODEX_MCP_SERVER="1")
    done = run("--repo", str(root), stdin=protocol(INITIALIZE, TOOLS_LIST), env=env, cwd=tmp_path)
    assert done.returncode == 0
    responses = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["id"] for r in responses] == [0, 1]
    [run_dir] = (root / ".runs" / "local-mcp").iterdir()
    assert STAMP.match(run_dir.name)
    assert done.stderr.startswith(f"Launching Codex MCP server (logs: {run_dir / 'mcp-server.log'})...\n")

    manifest_text = (run_dir / "manifest.json").read_text()
    manifest = json.loads(manifest_text)
    assert manifest == {
        "mode": "mcp",
        "started_at": run_dir.name,
        "repo": str(root),
        "command": f"codex -C {root} mcp-server",
    }
    assert manifest_text == json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"  # as jq wrote it

    transcript = (run_dir / "mcp-server.log").read_text()
    # The protocol stream, as the old transcripts hold it, with the server's stderr between:
    # two tees append to the file, so the two streams meet wherever their writes do (a
    # message and its line break may be two writes, with the stderr's between them).
    position = 0
    for line in done.stdout.splitlines():
        found = transcript.find(line, position)
        assert found >= 0, f"{line!r} not in the transcript after offset {position}:\n{transcript}"
        position = found + len(line)
    assert "`codex mcp-server` is deprecated (stand-in)" in transcript  # and the server's stderr

    result_text = (run_dir / "result.json").read_text()
    result = json.loads(result_text)
    assert list(result) == ["mode", "started_at", "finished_at", "exit_code"]
    assert result["mode"] == "mcp" and result["started_at"] == run_dir.name and result["exit_code"] == 0
    assert STAMP.match(result["finished_at"]) and result["finished_at"] >= result["started_at"]
    assert result_text == json.dumps(result, indent=2) + "\n"
    assert sorted(p.name for p in run_dir.iterdir()) == ["manifest.json", "mcp-server.log", "result.json"]


def test_manifest_keys_match_the_old_runs(tmp_path: Path, root: Path) -> None:
    old = json.loads((FIXTURE_RUNS / "local-mcp" / "2025-10-18T13-37-27Z" / "manifest.json").read_text())
    run("--repo", str(root), env=env_for(tmp_path, FAKE_CODEX_MCP_SERVER="1"), cwd=tmp_path)
    [run_dir] = (root / ".runs" / "local-mcp").iterdir()
    new = json.loads((run_dir / "manifest.json").read_text())
    assert list(new) == list(old)
    assert old["command"] == f"codex -C {old['repo']} mcp-server"
    assert new["command"] == f"codex -C {new['repo']} mcp-server"


def test_the_servers_exit_code_is_recorded_and_returned(tmp_path: Path, root: Path) -> None:
    # Without mcp-server (Codex >= 0.154) `codex mcp-server` over pipes fails at once.
    done = run("--repo", str(root), env=env_for(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Error: stdin is not a terminal" in done.stderr
    [run_dir] = (root / ".runs" / "local-mcp").iterdir()
    assert json.loads((run_dir / "result.json").read_text())["exit_code"] == 1
    assert "Error: stdin is not a terminal" in (run_dir / "mcp-server.log").read_text()


def test_odd_characters_in_the_root_are_valid_json(tmp_path: Path) -> None:
    odd = tmp_path / 'we"ird \\ dir\tü'
    odd.mkdir()
    run("--repo", str(odd), env=env_for(tmp_path, FAKE_CODEX_MCP_SERVER="1"), cwd=tmp_path)
    [run_dir] = (odd / ".runs" / "local-mcp").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["repo"] == str(odd)
    assert "\\t" in (run_dir / "manifest.json").read_text()


def test_a_stop_signal_reaches_the_server_and_result_json_is_still_written(tmp_path: Path, root: Path) -> None:
    env = env_for(tmp_path, FAKE_CODEX_MCP_SERVER="1")
    process = subprocess.Popen(
        [str(SCRIPT), "--repo", str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(protocol(INITIALIZE).encode())
    process.stdin.flush()
    assert json.loads(process.stdout.readline())["id"] == 0  # the server is up, stdin still open
    [call] = calls(tmp_path)
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=20) == 143
    process.stdin.close()
    process.stdout.close()
    assert process.stderr is not None
    process.stderr.close()
    [run_dir] = (root / ".runs" / "local-mcp").iterdir()
    assert json.loads((run_dir / "result.json").read_text())["exit_code"] == 143
    deadline = time.monotonic() + 10
    while Path(f"/proc/{call['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{call['pid']}").exists()
