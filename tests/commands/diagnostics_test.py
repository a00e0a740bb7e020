"""scripts/run-mcp-diagnostics.sh as callers run it (the guardrail is in tests/spec_guard_test.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CHECKOUT, SCRIPTS, run_script, runner_env, snapshot
from runs import read_metrics

from mcp_core import manifest, process, run_record, store
from mcp_core.commands.diagnostics import USAGE
from mcp_core.jsfmt import iso_from_ms, now_ms

WAIT_FOR_GO = "while [ ! -f go ]; do sleep 0.05; done"
RUN_ID = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z-\d+"


def env_for(repo: Path, commands: str = "echo diagnosed", **extra: str) -> dict[str, str]:
    settings = {"MCP_RUNNER_SERVER": "local", "MCP_RUNNER_DEFAULT_COMMANDS": commands}
    settings["MCP_RUNNER_DIAGNOSTICS_INTERVAL"] = "0.2"
    return runner_env(repo, **{**settings, **extra})


def diagnostics(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_script("run-mcp-diagnostics.sh", *args, repo=repo, env=env or env_for(repo), timeout=120)


def wait_until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def read(repo: Path, run_id: str) -> dict[str, Any]:
    data = json.loads((repo / ".runs/0001/mcp" / run_id / "manifest.json").read_text())
    assert isinstance(data, dict)
    return data


def wait_ended(repo: Path, run_id: str) -> dict[str, Any]:
    wait_until(lambda: read(repo, run_id)["status"] in manifest.TERMINAL_STATUSES)
    record = read(repo, run_id)
    wait_until(lambda: not process.is_alive(record["runner_pid"], record.get("runner_start_ticks")))
    return read(repo, run_id)


def started_block(run_id: str) -> str:
    return (
        "Diagnostics run started.\n"
        f"Run ID: {run_id}\n"
        f"Artifact root: .runs/0001/mcp/{run_id}\n"
        f"Compatibility path: .runs/local-mcp/{run_id}\n"
        f"Manifest: .runs/0001/mcp/{run_id}/manifest.json\n"
        "\n"
    )


# -- the command line -----------------------------------------------------------


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(repo: Path, flag: str) -> None:
    result = diagnostics(repo, flag)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == USAGE
    lines = result.stdout.splitlines()
    assert lines[0] == "Usage: scripts/run-mcp-diagnostics.sh [options]"
    for option in ("--approval-policy", "--timeout", "--no-watch", "-h, --help"):
        assert any(line.lstrip().startswith(option) for line in lines)
    assert snapshot(repo) == {}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--approval-policy"], "Error: --approval-policy requires a value."),
        (["--approval-policy", ""], "Error: --approval-policy requires a value."),
        (["--timeout"], "Error: --timeout requires a numeric value."),
        (["--timeout", "soon"], "Error: --timeout requires a numeric value."),
        (["--timeout", "0"], "Error: --timeout must be a positive number."),
        (["--no-watch", "--timeout"], "Error: --timeout requires a numeric value."),
    ],
)
def test_a_flag_missing_its_value_exits_2(repo: Path, args: list[str], error: str) -> None:
    result = diagnostics(repo, *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", error + "\n")
    assert snapshot(repo) == {}


@pytest.mark.parametrize("arg", ["--bogus", "--no-watch=1", "extra"])
def test_an_unknown_option_prints_the_help_to_stderr_and_exits_2(repo: Path, arg: str) -> None:
    result = diagnostics(repo, "--no-watch", arg)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"Unknown option: {arg}\n" + USAGE
    assert snapshot(repo) == {}


def test_a_bad_interval_setting_is_refused_before_starting(repo: Path) -> None:
    result = diagnostics(repo, env=env_for(repo, MCP_RUNNER_DIAGNOSTICS_INTERVAL="often"))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "Error: MCP_RUNNER_DIAGNOSTICS_INTERVAL must be a positive number of seconds.\n"
    assert snapshot(repo) == {}


# -- starting --------------------------------------------------------------------


@pytest.mark.slow
def test_no_watch_prints_the_block_and_returns_while_the_run_goes_on(repo: Path) -> None:
    result = diagnostics(
        repo, "--no-watch", "--approval-policy", "on-request", "--timeout", "42", env=env_for(repo, WAIT_FOR_GO)
    )
    assert (result.returncode, result.stderr) == (0, "")
    match = re.match(rf"Diagnostics run started\.\nRun ID: ({RUN_ID})\n", result.stdout)
    assert match, result.stdout
    run_id = match.group(1)
    assert result.stdout == started_block(run_id) + f"Use scripts/mcp-runner-poll.sh {run_id} to monitor progress.\n"
    record = read(repo, run_id)
    assert record["status"] == "in_progress"  # it waits for the go file
    assert [c["command"] for c in record["commands"]] == [WAIT_FOR_GO]
    assert (record["approval_policy"], record["timeout_seconds"]) == ("on-request", 42)
    (repo / "go").touch()
    assert wait_ended(repo, run_id)["status"] == "succeeded"


def test_a_failing_start_passes_its_error_and_status_through(repo: Path) -> None:
    (repo / "mcp-runner.json").write_text("[]")
    env = env_for(repo)
    del env["MCP_RUNNER_DEFAULT_COMMANDS"]
    before = snapshot(repo)
    result = diagnostics(repo, "--no-watch", env=env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("Invalid mcp-runner.json: ") and result.stderr.count("\n") == 1
    assert snapshot(repo) == before


def test_no_start_wrapper_is_needed(tmp_path: Path, repo: Path) -> None:
    """diagnostics starts the run through the core, not through a sibling wrapper:
    a checkout whose scripts are missing (or not executable) changes nothing."""
    empty = tmp_path / "checkout"
    (empty / "scripts").mkdir(parents=True)
    (empty / "scripts" / "mcp-runner-start.sh").write_text("#!/bin/sh\nexit 99\n")  # not executable
    result = diagnostics(repo, "--no-watch", env=env_for(repo, MCP_RUNNER_CHECKOUT=str(empty)))
    assert (result.returncode, result.stderr) == (0, "")
    run_id = re.search(rf"Run ID: ({RUN_ID})\n", result.stdout).group(1)  # type: ignore[union-attr]
    wait_ended(repo, run_id)


def test_a_start_that_cannot_write_fails_with_its_one_line(repo: Path) -> None:
    blocker = repo / "not-a-dir"
    blocker.write_text("")
    result = diagnostics(repo, env=env_for(repo, MCP_RUNNER_TASK_RUNS_ROOT=str(blocker / "runs")))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("Failed to start run ") and result.stderr.count("\n") == 1


# -- watching --------------------------------------------------------------------


@pytest.mark.slow
def test_watching_ends_with_polls_terminal_block_and_its_status(repo: Path) -> None:
    result = diagnostics(repo, "--timeout", "30")
    assert (result.returncode, result.stderr) == (0, "")
    run_id = re.search(rf"Run ID: ({RUN_ID})\n", result.stdout).group(1)  # type: ignore[union-attr]
    head, _, watched = result.stdout.partition(started_block(run_id))
    assert head == ""
    blocks = watched.split(f"\nRun {run_id} status: ")
    assert blocks[0] == "" and len(blocks) >= 2
    last = blocks[-1]
    assert last.startswith("succeeded\n")
    assert last.endswith("Commands:\n  1. echo diagnosed -> succeeded\n"
                         "     summary: Command exited with status 0; last output: diagnosed\n"
                         f"     response: .runs/0001/mcp/{run_id}/01-echo-diagnosed.json\n")  # fmt: skip
    assert wait_ended(repo, run_id)["status"] == "succeeded"


def stop_outside_its_saves(pid: int, run_dir: Path) -> None:
    """SIGSTOP ``pid`` at a moment it does not hold the run's lock (a worker frozen
    inside a save would keep this test's own edit waiting: a writer's wait is bounded)."""
    while True:
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: process_state(pid) == "T")
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if store.lock_holder(fd) != pid:
                return
        finally:
            os.close(fd)
        os.kill(pid, signal.SIGCONT)


def process_state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    return raw[raw.rfind(b")") + 2 :].split()[0].decode()


@pytest.mark.slow
def test_a_stale_heartbeat_ends_the_watch_with_how_to_resume(repo: Path) -> None:
    """A frozen worker (alive, but it cannot beat): the watch shows the stale block,
    says how to resume on stderr and exits 1; it does not wait for ever."""
    watcher = subprocess.Popen(
        [str(SCRIPTS / "run-mcp-diagnostics.sh")],
        cwd=repo, env=env_for(repo, WAIT_FOR_GO), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    stdout_chunks: list[str] = []
    assert watcher.stdout is not None
    stdout_reader = threading.Thread(target=lambda: stdout_chunks.extend(watcher.stdout), daemon=True)  # type: ignore[union-attr, arg-type]
    stdout_reader.start()
    worker = None
    try:
        wait_until(lambda: any(line.startswith("Run ID: ") for line in stdout_chunks))
        run_id = next(line for line in stdout_chunks if line.startswith("Run ID: "))[len("Run ID: ") :].strip()
        wait_until(lambda: read(repo, run_id)["commands"][0]["status"] == "running")
        worker = read(repo, run_id)
        stop_outside_its_saves(worker["runner_pid"], repo / ".runs/0001/mcp" / run_id)  # it cannot beat any more

        def age_heartbeat(record: dict[str, Any]) -> None:
            record["heartbeat_at"] = iso_from_ms(now_ms() - 120_000)

        run_record.update(repo / ".runs/0001/mcp" / run_id / "manifest.json", age_heartbeat)
        assert watcher.wait(timeout=60) == 1
        stderr = watcher.stderr.read()  # type: ignore[union-attr]
    finally:
        if worker is not None and process.is_alive(worker["runner_pid"], worker["runner_start_ticks"]):
            os.kill(worker["runner_pid"], signal.SIGCONT)
        if watcher.poll() is None:
            os.killpg(watcher.pid, signal.SIGKILL)
            watcher.wait(timeout=30)
        (repo / "go").touch()
    stdout_reader.join(timeout=10)
    assert stderr == (
        f"Heartbeat of run {run_id} is stale: its worker (PID {worker['runner_pid']}) is still running but has "
        f"stopped reporting. Resume it with: scripts/mcp-runner-start.sh --resume {run_id}\n"
    )
    last = "".join(stdout_chunks).split(f"\nRun {run_id} status: ")[-1]
    assert last.startswith("in_progress\nStatus detail: stale-heartbeat\n") and "(STALE)" in last
    assert wait_ended(repo, run_id)["status"] == "succeeded"  # let go, the worker ends the run


@pytest.mark.slow
def test_a_dead_worker_ends_the_watch_at_once(repo: Path) -> None:
    """kill -9 of the worker: the watch ends within a block or two (the pid is gone,
    whatever the heartbeat says), exit 1, with the resume hint."""
    watcher = subprocess.Popen(
        [str(SCRIPTS / "run-mcp-diagnostics.sh")],
        cwd=repo, env=env_for(repo, WAIT_FOR_GO, MCP_RUNNER_DIAGNOSTICS_INTERVAL="3600"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    stdout_chunks: list[str] = []
    stdout_reader = threading.Thread(target=lambda: stdout_chunks.extend(watcher.stdout), daemon=True)  # type: ignore[union-attr, arg-type]
    stdout_reader.start()
    try:
        wait_until(lambda: any(line.startswith("Run ID: ") for line in stdout_chunks))
        run_id = next(line for line in stdout_chunks if line.startswith("Run ID: "))[len("Run ID: ") :].strip()
        wait_until(lambda: read(repo, run_id)["commands"][0]["status"] == "running")
        worker = read(repo, run_id)
        os.killpg(worker["runner_pid"], signal.SIGKILL)
        assert watcher.wait(timeout=60) == 1  # the interval is an hour: the watch saw the pid go
        stderr = watcher.stderr.read()  # type: ignore[union-attr]
    finally:
        if watcher.poll() is None:
            os.killpg(watcher.pid, signal.SIGTERM)
            watcher.wait()
        (repo / "go").touch()
    stdout_reader.join(timeout=10)
    assert stderr == (
        f"The worker of run {run_id} is no longer running. "
        f"Resume it with: scripts/mcp-runner-start.sh --resume {run_id}\n"
    )
    assert "".join(stdout_chunks).split(f"\nRun {run_id} status: ")[-1].startswith("in_progress\n")


# -- this repository's own diagnostics ------------------------------------------------


@pytest.mark.slow
def test_this_repositorys_diagnostics_run_succeeds_with_its_guardrail(tmp_path: Path) -> None:
    """What `make diagnostics` runs: the configured commands, in this checkout, on the
    bundled executor; only the records go to a temp dir."""
    env = runner_env(
        CHECKOUT,
        MCP_RUNNER_SERVER="local",
        MCP_RUNNER_DIAGNOSTICS_INTERVAL="0.5",
        MCP_RUNNER_TASK_RUNS_ROOT=str(tmp_path / "runs"),
        MCP_RUNNER_LEGACY_ROOT=str(tmp_path / "legacy"),
        MCP_RUNNER_METRICS_ROOT=str(tmp_path / "metrics"),
    )
    result = run_script("run-mcp-diagnostics.sh", repo=CHECKOUT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    run_id = re.search(rf"Run ID: ({RUN_ID})\n", result.stdout).group(1)  # type: ignore[union-attr]
    record = json.loads((tmp_path / "runs" / run_id / "manifest.json").read_text())
    assert record["status"] == "succeeded", result.stdout
    assert record["commands"][-1]["command"] == "bash scripts/spec-guard.sh --dry-run"
    # The watch returned: the run's ending is fully recorded, its metrics line included.
    [metrics] = read_metrics(tmp_path / "metrics" / "metrics.json")
    assert metrics["status"] == "succeeded" and metrics["guardrails_present"] is True
    assert "Guardrail" not in (record.get("summary") or "")
