"""scripts/mcp-runner-cancel.sh as callers run it: real processes, real runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run_script, runner_env, snapshot
from runs import group_members, repo_metrics

from mcp_core import manifest, process, store, tokens
from mcp_core.jsfmt import iso_now
from mcp_core.paths import locate

RUN_ID = "2025-10-18T18-26-16-688Z-39463"
USAGE_LINE = "Usage: scripts/mcp-runner-cancel.sh <run-id> [--format text|json] [--wait SECONDS]"


def env_for(repo: Path, **extra: str) -> dict[str, str]:
    return runner_env(repo, MCP_RUNNER_SERVER="local", **extra)


def wait_until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def read(repo: Path, run_id: str = RUN_ID) -> dict[str, Any]:
    data = json.loads((repo / ".runs/0001/mcp" / run_id / "manifest.json").read_text())
    assert isinstance(data, dict)
    return data


def cancel(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_script("mcp-runner-cancel.sh", *args, repo=repo, env=env_for(repo))


def make_run(repo: Path, **fields: Any) -> dict[str, Any]:
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    run_dir = loc.run_dir(RUN_ID)
    run_dir.mkdir(parents=True)
    record = manifest.new_manifest(
        loc, RUN_ID, ["echo one", "bash scripts/spec-guard.sh --dry-run"], approval_policy="never",
        timeout_seconds=60, now=iso_now(), resume_token=tokens.new_token(),
    )  # fmt: skip
    record.update(status="in_progress")
    record.update(fields)
    store.write_json(run_dir / "manifest.json", record)
    return record


# -- the command line -----------------------------------------------------------


def test_no_arguments_is_a_usage_error(repo: Path) -> None:
    result = cancel(repo)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", USAGE_LINE + "\n")


@pytest.mark.parametrize("args", [["-h"], ["--help"], [RUN_ID, "-h"]])
def test_help(repo: Path, args: list[str]) -> None:
    result = cancel(repo, *args)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(USAGE_LINE + "\n")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([RUN_ID, "--bogus"], "Unknown option for cancel: --bogus"),
        ([RUN_ID, "--wait"], "--wait requires a numeric value"),
        ([RUN_ID, "--wait", "soon"], "--wait requires a numeric value"),
        ([RUN_ID, "--format"], "--format requires a value"),
        ([RUN_ID, "--format", "yaml"], 'Unsupported format: yaml. Expected "text" or "json".'),
        (["nope"], "Manifest for run nope not found: .runs/0001/mcp/nope/manifest.json"),
        (["../x"], "Invalid run id: '../x' (expected a single plain path segment)."),
    ],
)
def test_errors_exit_1_and_change_nothing(repo: Path, args: list[str], error: str) -> None:
    make_run(repo)
    before = snapshot(repo)
    result = cancel(repo, *args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", error + "\n")
    assert snapshot(repo) == before


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_run_that_has_ended_cannot_be_cancelled(repo: Path, status: str) -> None:
    make_run(repo, status=status, completed_at=iso_now(), metrics_recorded=True)
    before = snapshot(repo)
    result = cancel(repo, RUN_ID)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"Run {RUN_ID} is already {status}; cannot cancel.\n"
    assert snapshot(repo) == before


def test_an_ended_run_without_its_metrics_line_gets_it(repo: Path) -> None:
    make_run(repo, status="failed", completed_at=iso_now(), metrics_recorded=False)
    assert cancel(repo, RUN_ID).returncode == 1
    assert [m["status"] for m in repo_metrics(repo)] == ["failed"]
    assert read(repo)["metrics_recorded"] is True


# -- cancelling ------------------------------------------------------------------


def test_a_run_whose_worker_is_gone_is_marked_cancelled_here(repo: Path) -> None:
    made = make_run(repo, runner_pid=None)
    made["commands"][0].update(status="running", started_at=iso_now())
    store.write_json(repo / ".runs/0001/mcp" / RUN_ID / "manifest.json", made)

    result = cancel(repo, RUN_ID)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"Cancelled run {RUN_ID}.\n"
        f"Artifact root: .runs/0001/mcp/{RUN_ID}\n"
        f"Compatibility path: .runs/local-mcp/{RUN_ID}\n"
        f"Manifest: .runs/0001/mcp/{RUN_ID}/manifest.json\n"
    )
    record = read(repo)
    assert record["status"] == "cancelled" and record["completed_at"] is not None
    assert record["metrics_recorded"] is True
    first, second = record["commands"]
    assert first["status"] == "failed" and "worker was no longer running" in first["summary"]
    assert first["error_file"] and (repo / first["error_file"]).is_file()
    assert second["status"] == "pending"
    assert "worker was no longer running" in record["summary"]
    assert [(m["run_id"], m["status"]) for m in repo_metrics(repo)] == [(RUN_ID, "cancelled")]
    again = cancel(repo, RUN_ID)
    assert (again.returncode, again.stderr) == (1, f"Run {RUN_ID} is already cancelled; cannot cancel.\n")


def start_waiting_run(repo: Path) -> tuple[str, int]:
    """A real run whose second command runs until it is stopped; returns (id, its pgid)."""
    result = run_script(
        "mcp-runner-start.sh",
        "--command", "echo first",
        "--command", "echo $$ > cmd.pid; while true; do sleep 0.05; done",
        "--format", "json",
        repo=repo, env=env_for(repo),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_id = str(json.loads(result.stdout)["run_id"])
    wait_until(lambda: (repo / "cmd.pid").exists() and (repo / "cmd.pid").read_text().endswith("\n"))
    return run_id, int((repo / "cmd.pid").read_text())


def assert_nothing_left(record: dict[str, Any], command_group: int) -> None:
    server = record["mcp_server"]
    assert not process.is_alive(record["runner_pid"], record["runner_start_ticks"])
    wait_until(lambda: not process.is_alive(server["pid"], server["start_ticks"]), timeout=15)
    wait_until(lambda: group_members(command_group) == [], timeout=15)


@pytest.mark.slow
def test_cancel_stops_a_live_run_mid_command_and_leaves_no_process(repo: Path) -> None:
    run_id, command_group = start_waiting_run(repo)
    running = read(repo, run_id)
    assert running["commands"][1]["status"] == "running"

    result = cancel(repo, run_id, "--format", "json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == {
        "run_id": run_id,
        "status": "cancelled",
        "artifact_root": f".runs/0001/mcp/{run_id}",
        "compat_path": f".runs/local-mcp/{run_id}",
        "manifest": f".runs/0001/mcp/{run_id}/manifest.json",
        "runner_pid": running["runner_pid"],
    }
    record = read(repo, run_id)
    assert record["status"] == "cancelled"
    assert [c["status"] for c in record["commands"]] == ["succeeded", "failed"]
    assert "SIGTERM" in record["commands"][1]["summary"]
    assert [(m["run_id"], m["status"]) for m in repo_metrics(repo)] == [(run_id, "cancelled")]
    assert_nothing_left(record, command_group)


@pytest.mark.slow
def test_a_worker_that_does_not_stop_in_time_is_killed(repo: Path) -> None:
    run_id, command_group = start_waiting_run(repo)
    running = read(repo, run_id)
    os.kill(running["runner_pid"], signal.SIGSTOP)  # it cannot act on SIGTERM now
    try:
        result = cancel(repo, run_id, "--wait", "0.5")
    finally:
        if process.is_alive(running["runner_pid"], running["runner_start_ticks"]):
            os.kill(running["runner_pid"], signal.SIGKILL)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        rf"Worker {running['runner_pid']} of run {run_id} did not stop within 0\.5s; killing it\.\n", result.stderr
    )
    record = read(repo, run_id)
    assert record["status"] == "cancelled"
    assert "did not stop within 0.5s and was killed" in record["summary"]
    assert [(m["run_id"], m["status"]) for m in repo_metrics(repo)] == [(run_id, "cancelled")]
    assert_nothing_left(record, command_group)
