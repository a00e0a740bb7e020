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

from conftest import run_script, runner_env
from runs import wait_for

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
