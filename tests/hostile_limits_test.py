"""Issue 14: what a hostile run directory, environment or command output cannot do.

The real CLIs (scripts/) against real runs. Nothing here may hang: every
subprocess runs under a timeout, so a blocking open of a FIFO fails the test
instead of stalling the suite.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import run_script, runner_env
from runs import create_run, run_worker, wait_for

from mcp_core import manifest as manifest_mod
from mcp_core import store

TERMINAL = ("succeeded", "failed", "cancelled")


def local_env(repo: Path, **extra: str) -> dict[str, str]:
    return runner_env(repo, MCP_RUNNER_SERVER="local", **extra)


def start(repo: Path, *commands: str, env: dict[str, str] | None = None, timeout: str = "60") -> str:
    args = [arg for command in commands for arg in ("--command", command)]
    result = run_script(
        "mcp-runner-start.sh", *args, "--timeout", timeout, "--format", "json", repo=repo, env=env or local_env(repo)
    )
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    assert isinstance(run_id, str)
    return run_id


def manifest_path(repo: Path, run_id: str) -> Path:
    return repo / ".runs" / "0001" / "mcp" / run_id / manifest_mod.MANIFEST_NAME


def finished(repo: Path, run_id: str, timeout: float = 90) -> dict[str, Any]:
    path = manifest_path(repo, run_id)

    def ended() -> dict[str, Any] | None:
        record = store.read_json(path)
        return record if record.get("status") in TERMINAL and record.get("metrics_recorded") else None

    record = wait_for(ended, timeout=timeout, interval=0.1)
    assert isinstance(record, dict)
    return record


def live_processes_with_argv(argv: list[str]) -> list[int]:
    wanted = ("\0".join(argv) + "\0").encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if handle.read() == wanted:
                    found.append(int(entry))
        except OSError:
            continue
    return found


# --- 1. a daemon does not make a finished command look timed out ----------------------


def test_a_daemon_left_by_a_command_neither_times_it_out_nor_outlives_it(repo: Path) -> None:
    run_id = start(repo, "setsid sleep 40.0314 & sleep 0.5", "echo next", timeout="12")
    record = finished(repo, run_id)
    assert record["status"] == "succeeded", record
    assert [c["exit_code"] for c in record["commands"]] == [0, 0]
    assert live_processes_with_argv(["sleep", "40.0314"]) == []


# --- 5. MCP_RUNNER_TASK_ID is one plain name, in every command ---------------------------

TASK_ID_COMMANDS = {
    "start": ("mcp-runner-start.sh", "--command", "true"),
    "poll": ("mcp-runner-poll.sh", "2026-01-02T03-04-05-678Z-4242"),
    "resume": ("mcp-runner-start.sh", "--resume", "2026-01-02T03-04-05-678Z-4242"),
    "cancel": ("mcp-runner-cancel.sh", "2026-01-02T03-04-05-678Z-4242"),
    "metrics": ("mcp-runner-metrics.js",),
    "migrate": ("mcp-runner-migrate.js", "--dry-run"),
    "list": ("mcp-runner-list.sh",),
    "report": ("mcp-runner-report.sh",),
    "prune": ("mcp-runner-prune.sh", "--dry-run", "--keep", "1"),
}


@pytest.mark.parametrize("task_id", ["../../../tmp/evil", "a\nb", "..", "a/b", "x" * 101])
@pytest.mark.parametrize("command", sorted(TASK_ID_COMMANDS))
def test_a_hostile_task_id_is_refused_by_every_command(tmp_path: Path, command: str, task_id: str) -> None:
    # Deep enough that ../../../tmp/evil would still land inside tmp_path.
    repo = tmp_path / "a" / "b" / "repo"
    repo.mkdir(parents=True)
    result = run_script(*TASK_ID_COMMANDS[command], repo=repo, env=local_env(repo, MCP_RUNNER_TASK_ID=task_id))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr == f"Invalid task id: {task_id!r} (expected letters, digits, '.', '_' or '-').\n"
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "a", tmp_path / "a" / "b", repo]


# --- 8. a NUL byte in a command -----------------------------------------------------------


def test_a_nul_byte_in_a_command_is_named_in_its_error_artifact(repo: Path) -> None:
    # argv cannot carry a NUL; a repository's default command list can.
    run = create_run(repo, ["echo before\x00after"])
    assert run_worker(run) == 1
    record = run.manifest()
    assert record["status"] == "failed"
    [command] = record["commands"]
    artifact = json.loads((repo / command["error_file"]).read_bytes())
    assert artifact["command"] == "echo before\x00after"
    assert "the command contains a NUL byte" in artifact["details"]["message"], artifact
    assert "the command contains a NUL byte" in command["summary"]
