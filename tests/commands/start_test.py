"""scripts/mcp-runner-start.sh as callers run it: real processes, a real worker and the
bundled local MCP executor (MCP_RUNNER_SERVER=local), against temp repositories."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CHECKOUT, run_script, runner_env, snapshot
from runs import repo_metrics

from mcp_core import process
from mcp_core.commands.start import timeout_number

RUN_ID = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z-\d+"
CREATED_KEYS = [
    "runner", "script", "status", "status_detail", "commands", "started_at", "updated_at",
    "completed_at", "run_id", "repo_root", "approval_policy", "timeout_seconds", "runner_pid",
    "runner_log", "task_id", "artifact_root", "compat_path", "heartbeat_at",
    "heartbeat_interval_seconds", "heartbeat_stale_after_seconds", "resume_token", "resume_events",
    "metrics_recorded",
]  # fmt: skip
WAIT_FOR_GO = "while [ ! -f go ]; do sleep 0.05; done"


def env_for(repo: Path, **extra: str) -> dict[str, str]:
    return runner_env(repo, MCP_RUNNER_SERVER="local", **extra)


def wait_until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def manifest_of(repo: Path, run_id: str) -> dict[str, Any]:
    data = json.loads((repo / ".runs/0001/mcp" / run_id / "manifest.json").read_text())
    assert isinstance(data, dict)
    return data


def wait_ended(repo: Path, run_id: str) -> dict[str, Any]:
    """Wait until the run is terminal and its worker has exited; return the manifest."""
    wait_until(lambda: manifest_of(repo, run_id)["status"] in ("succeeded", "failed", "cancelled"))
    record = manifest_of(repo, run_id)
    wait_until(lambda: not process.is_alive(record["runner_pid"], record.get("runner_start_ticks")))
    return manifest_of(repo, run_id)


def start_json(repo: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_script("mcp-runner-start.sh", *args, "--format", "json", repo=repo, env=env or env_for(repo))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_help_prints_usage_and_exits_0(repo: Path) -> None:
    for flag in ("-h", "--help"):
        result = run_script("mcp-runner-start.sh", flag, repo=repo, env=env_for(repo))
        assert result.returncode == 0
        assert result.stdout.startswith("Usage: scripts/mcp-runner-start.sh [options]\n")
        assert "--command" in result.stdout and "MCP_RUNNER_DEFAULT_COMMANDS" in result.stdout
        assert result.stderr == ""
    assert snapshot(repo) == {}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--bogus"], "Unknown option for start: --bogus"),
        (["extra"], "Unknown option for start: extra"),
        (["--command=ls"], "Unknown option for start: --command=ls"),
        (["--comm", "ls"], "Unknown option for start: --comm"),
        (["--command", "true", "--bogus", "--format"], "Unknown option for start: --bogus"),
        (["--command"], "--command requires a value"),
        (["--command", ""], "--command requires a value"),
        (["--approval-policy"], "--approval-policy requires a value"),
        (["--timeout"], "--timeout requires a numeric value"),
        (["--timeout", "abc"], "--timeout requires a numeric value"),
        (["--timeout", "0"], "--timeout must be a positive number"),
        (["--timeout", "--format", "json"], "--timeout requires a numeric value"),
        (["--format"], "--format requires a value"),
        (["--format", "xml"], 'Unsupported format: xml. Expected "text" or "json".'),
        (["--format", "xml", "--bogus"], "Unknown option for start: --bogus"),
    ],
)
def test_errors_exit_1_with_one_line_and_write_nothing(repo: Path, args: list[str], error: str) -> None:
    result = run_script("mcp-runner-start.sh", *args, repo=repo, env=env_for(repo))
    assert (result.returncode, result.stdout, result.stderr) == (1, "", error + "\n")
    assert snapshot(repo) == {}


def test_a_bad_config_file_fails_before_anything_is_written(repo: Path) -> None:
    (repo / "mcp-runner.json").write_text('{"default_commands": "make test"}')
    before = snapshot(repo)
    result = run_script("mcp-runner-start.sh", repo=repo, env=env_for(repo))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("Invalid mcp-runner.json: ") and result.stderr.count("\n") == 1
    assert snapshot(repo) == before


@pytest.mark.parametrize(
    ("variable", "what"),
    [
        ("MCP_RUNNER_TASK_RUNS_ROOT", "the run directory"),
        ("MCP_RUNNER_LEGACY_ROOT", "the compatibility pointer"),
    ],
)
def test_a_write_failure_removes_what_start_made(repo: Path, variable: str, what: str) -> None:
    (repo / "blocker").write_text("a file where a directory must go\n")
    env = env_for(repo, **{variable: str(repo / "blocker" / "sub")})
    before = snapshot(repo)
    result = run_script("mcp-runner-start.sh", "--command", "true", repo=repo, env=env)
    assert result.returncode == 1 and result.stdout == ""
    assert re.fullmatch(rf"Failed to start run {RUN_ID}: cannot write {what} .*\n", result.stderr)
    assert snapshot(repo) == before  # no run dir, no pointer, no .runs/ left


def test_the_legacy_root_may_not_be_the_runs_root(repo: Path) -> None:
    same = str(repo / "runs")
    env = env_for(repo, MCP_RUNNER_TASK_RUNS_ROOT=same, MCP_RUNNER_LEGACY_ROOT=same)
    result = run_script("mcp-runner-start.sh", "--command", "true", repo=repo, env=env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "The legacy root and the runs root must differ (MCP_RUNNER_LEGACY_ROOT).\n"
    assert snapshot(repo) == {}


@pytest.mark.slow
def test_start_does_not_import_the_mcp_sdk(repo: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(CHECKOUT / "bin/mcp-runner-start"), "--command", "true",
         "--format", "json"],
        cwd=repo, env=env_for(repo), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "mcp_core.commands.start" in imported
    heavy = {name for name in imported if name.split(".")[0] in ("mcp", "anyio", "httpx", "pydantic", "dateutil")}
    assert heavy == set()
    wait_ended(repo, json.loads(result.stdout)["run_id"])


@pytest.mark.slow
def test_text_output_files_and_manifest(repo: Path) -> None:
    result = run_script("mcp-runner-start.sh", "--command", WAIT_FOR_GO, repo=repo, env=env_for(repo))
    assert result.returncode == 0 and result.stderr == ""
    match = re.fullmatch(
        rf"Run ID: ({RUN_ID})\n"
        r"Artifact root: \.runs/0001/mcp/\1\n"
        r"Compatibility path: \.runs/local-mcp/\1\n"
        r"Manifest: \.runs/0001/mcp/\1/manifest\.json\n"
        r"Runner PID: (\d+)\n"
        r"Use 'scripts/mcp-runner-poll\.sh \1' to monitor progress\.\n",
        result.stdout,
    )
    assert match, result.stdout
    run_id, pid = match.group(1), int(match.group(2))
    run_dir = repo / ".runs/0001/mcp" / run_id
    try:
        record = manifest_of(repo, run_id)
        assert list(record)[: len(CREATED_KEYS)] == CREATED_KEYS
        assert "runner_start_ticks" in list(record)[len(CREATED_KEYS) :]
        assert record["runner"] == "mcp-runner-py" and record["script"] == "bin/mcp-runner-start"
        assert record["run_id"] == run_id and record["repo_root"] == str(repo)
        assert record["approval_policy"] == "never" and record["timeout_seconds"] == 3600
        assert record["status"] == "in_progress"
        assert record["runner_pid"] == pid
        assert isinstance(record["runner_start_ticks"], int)
        assert process.is_alive(pid, record["runner_start_ticks"])
        assert record["runner_log"] == f".runs/0001/mcp/{run_id}/runner.log"
        assert record["commands"][0]["command"] == WAIT_FOR_GO

        token_file = run_dir / ".resume-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert re.fullmatch(r"[0-9a-f]{64}\n", token_file.read_text())
        assert token_file.read_text().strip() == record["resume_token"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n", (run_dir / ".heartbeat").read_text())
        assert (run_dir / "runner.log").is_file()
        pointer = repo / ".runs/local-mcp" / run_id / "manifest.json"
        assert os.readlink(pointer) == f"../../0001/mcp/{run_id}/manifest.json"
        compat = json.loads((repo / ".runs/local-mcp" / run_id / "compat.json").read_text())
        assert list(compat) == ["artifact_root", "manifest", "pointer", "created_at"]
        assert compat["pointer"] == "symlink" and compat["manifest"] == f".runs/0001/mcp/{run_id}/manifest.json"
    finally:
        (repo / "go").touch()
    assert wait_ended(repo, run_id)["status"] == "succeeded"


@pytest.mark.slow
def test_start_returns_while_the_run_goes_on_then_poll_sees_it_finish(repo: Path) -> None:
    started = start_json(repo, "--command", "echo one", "--command", WAIT_FOR_GO, "--timeout", "60")
    run_id = started["run_id"]
    assert re.fullmatch(RUN_ID, run_id)
    assert list(started) == ["run_id", "artifact_root", "compat_path", "manifest", "runner_pid"]
    assert started["artifact_root"] == f".runs/0001/mcp/{run_id}"
    assert started["compat_path"] == f".runs/local-mcp/{run_id}"
    assert started["manifest"] == f".runs/0001/mcp/{run_id}/manifest.json"
    assert isinstance(started["runner_pid"], int)
    # start has exited: the run cannot have ended, its last command waits for us
    record = manifest_of(repo, run_id)
    assert record["status"] == "in_progress"
    assert record["commands"][1]["status"] in ("pending", "running")
    assert record["timeout_seconds"] == 60

    (repo / "go").touch()
    polled = run_script("mcp-runner-poll.sh", run_id, "--watch", "--interval", "0.2", repo=repo, env=env_for(repo))
    assert polled.returncode == 0, polled.stderr
    last_block = polled.stdout.split("\nRun ")[-1]
    assert last_block.startswith(f"{run_id} status: succeeded\n")
    assert "  1. echo one -> succeeded\n" in last_block and f"  2. {WAIT_FOR_GO} -> succeeded\n" in last_block
    wait_ended(repo, run_id)
    assert [entry["status"] for entry in repo_metrics(repo)] == ["succeeded"]


@pytest.mark.parametrize(("given", "stored"), [("2.5", 2.5), ("60", 60), ("1e2", 100), (" 7 ", 7), ("3600.0", 3600)])
def test_timeout_is_stored_as_a_number(given: str, stored: float) -> None:
    value = timeout_number(given)
    assert value == stored and type(value) is type(stored)


@pytest.mark.slow
def test_flag_values_may_look_like_flags_and_the_timeout_is_a_number(repo: Path) -> None:
    run_id = start_json(repo, "--command", "--format", "--approval-policy", "--timeout", "--timeout", "2.5")["run_id"]
    record = manifest_of(repo, run_id)
    assert [c["command"] for c in record["commands"]] == ["--format"]
    assert record["approval_policy"] == "--timeout"
    assert record["timeout_seconds"] == 2.5
    wait_ended(repo, run_id)


@pytest.mark.slow
def test_default_commands_come_from_the_repository_configuration(repo: Path) -> None:
    """The lists themselves are checked in default_commands_test; here, that start uses them."""
    env = env_for(repo, MCP_RUNNER_DEFAULT_COMMANDS="echo a\necho b")
    run_id = start_json(repo, env=env)["run_id"]
    assert [c["command"] for c in manifest_of(repo, run_id)["commands"]] == ["echo a", "echo b"]
    assert wait_ended(repo, run_id)["status"] == "succeeded"


@pytest.mark.parametrize("args", [["--resume"], ["--resume", ""]])
def test_resume_without_a_run_id_is_a_usage_error(repo: Path, args: list[str]) -> None:
    result = run_script("mcp-runner-start.sh", *args, repo=repo, env=env_for(repo))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "Usage: scripts/mcp-runner-start.sh --resume <run-id> [options]\n"


def test_resume_counts_only_as_the_first_argument(repo: Path) -> None:
    result = run_script("mcp-runner-start.sh", "--command", "true", "--resume", "x", repo=repo, env=env_for(repo))
    assert (result.returncode, result.stderr) == (1, "Unknown option for start: --resume\n")
    result = run_script("mcp-runner-start.sh", "--resume", "--format", "--bogus", repo=repo, env=env_for(repo))
    assert (result.returncode, result.stderr) == (1, "Unknown option for resume: --bogus\n")
    assert snapshot(repo) == {}
