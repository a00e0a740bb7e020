"""Resume (scripts/mcp-runner-start.sh --resume <id>) as callers run it: real processes.

Refusals are checked on manifests written here (no worker needed); accepted
resumes on real runs with the worker and the bundled local executor.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CHECKOUT, run_script, runner_env, snapshot
from runs import repo_metrics

from mcp_core import manifest, process, store, tokens
from mcp_core.jsfmt import iso_now
from mcp_core.paths import locate

RUN_ID = "2025-10-18T18-26-16-688Z-39463"
WAIT_FOR_GO = "while [ ! -f go ]; do sleep 0.05; done"


def env_for(repo: Path, **extra: str) -> dict[str, str]:
    return runner_env(repo, MCP_RUNNER_SERVER="local", **extra)


def wait_until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def manifest_path(repo: Path, run_id: str = RUN_ID) -> Path:
    return repo / ".runs/0001/mcp" / run_id / "manifest.json"


def read(repo: Path, run_id: str = RUN_ID) -> dict[str, Any]:
    data = json.loads(manifest_path(repo, run_id).read_text())
    assert isinstance(data, dict)
    return data


def make_run(repo: Path, *, token_file: str | None = "same", **fields: Any) -> dict[str, Any]:
    """A run as start leaves it, with ``fields`` changed; its worker is long gone."""
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    run_dir = loc.run_dir(RUN_ID)
    run_dir.mkdir(parents=True)
    token = tokens.new_token()
    record = manifest.new_manifest(
        loc, RUN_ID, ["echo one", "echo two"], approval_policy="never", timeout_seconds=60,
        now=iso_now(), resume_token=token,
    )  # fmt: skip
    record.update(status="in_progress", runner_pid=None)
    record.update(fields)
    store.write_json(run_dir / "manifest.json", record)
    if token_file is not None:
        tokens.write_token_file(run_dir, token if token_file == "same" else token_file)
    return record


def resume(repo: Path, *args: str, run_id: str = RUN_ID) -> subprocess.CompletedProcess[str]:
    return run_script("mcp-runner-start.sh", "--resume", run_id, *args, repo=repo, env=env_for(repo))


def wait_ended(repo: Path, run_id: str) -> dict[str, Any]:
    wait_until(lambda: read(repo, run_id)["status"] in ("succeeded", "failed", "cancelled"))
    record = read(repo, run_id)
    wait_until(lambda: not process.is_alive(record["runner_pid"], record.get("runner_start_ticks")))
    return read(repo, run_id)


# -- the command line -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--bogus"], "Unknown option for resume: --bogus"),
        (["--run-id"], "--run-id requires a value"),
        (["--resume-token"], "--resume-token requires a value"),
        (["--actor"], "--actor requires a value"),
        (["--reason", ""], "--reason requires a value"),
        (["--format"], "--format requires a value"),
        (["--format", "xml"], 'Unsupported format: xml. Expected "text" or "json".'),
        (["--retry-failed=yes"], "Unknown option for resume: --retry-failed=yes"),
    ],
)
def test_flag_errors_exit_1_and_record_nothing(repo: Path, args: list[str], error: str) -> None:
    make_run(repo, status="succeeded")
    before = snapshot(repo)
    result = resume(repo, *args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", error + "\n")
    assert snapshot(repo) == before


def test_resume_requires_a_run_id(repo: Path) -> None:
    for args in ([], ["--actor", "me"]):
        result = subprocess.run(
            [sys.executable, str(CHECKOUT / "bin/mcp-runner-resume"), *args],
            env=env_for(repo), capture_output=True, text=True, cwd=repo, timeout=60,
        )  # fmt: skip
        assert (result.returncode, result.stdout, result.stderr) == (1, "", "Resume requires --run-id <id>.\n")


def test_help(repo: Path) -> None:
    result = resume(repo, "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("Usage: scripts/mcp-runner-start.sh --resume <run-id> [options]\n")
    assert "--retry-failed" in result.stdout


def test_a_missing_manifest_is_one_line_and_nothing_is_recorded(repo: Path) -> None:
    result = resume(repo, run_id="nope")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "Manifest for run nope not found: .runs/0001/mcp/nope/manifest.json\n"
    assert snapshot(repo) == {}


def test_only_the_task_scoped_manifest_is_read_not_the_pointer(repo: Path) -> None:
    legacy = repo / ".runs/local-mcp" / RUN_ID
    legacy.mkdir(parents=True)
    (legacy / "manifest.json").write_text(json.dumps({"run_id": RUN_ID, "status": "in_progress"}))
    before = snapshot(repo)
    result = resume(repo)
    assert result.returncode == 1 and "not found" in result.stderr
    assert snapshot(repo) == before


def test_a_run_id_that_is_not_a_plain_segment_is_refused(repo: Path) -> None:
    result = resume(repo, run_id="../../../victim")
    assert result.returncode == 1 and result.stderr.startswith("Invalid run id: ")
    assert snapshot(repo) == {}


# -- refusals and their events -------------------------------------------------


def assert_blocked(repo: Path, result: subprocess.CompletedProcess[str], error: str, detail: str) -> None:
    assert (result.returncode, result.stdout, result.stderr) == (1, "", error + "\n")
    events = read(repo)["resume_events"]
    assert len(events) == 1
    assert list(events[0]) == ["timestamp", "actor", "reason", "outcome", "detail"]
    assert events[0]["outcome"] == "blocked" and events[0]["detail"] == detail
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", events[0]["timestamp"])


def without_event_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("resume_events", "updated_at")}


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_terminal_run_is_refused(repo: Path, status: str) -> None:
    made = make_run(repo, status=status, metrics_recorded=True, completed_at=iso_now())
    result = resume(repo, "--actor", "bot", "--reason", "why not")
    assert_blocked(repo, result, f"Run {RUN_ID} is already {status}; cannot resume.", f"terminal-status:{status}")
    event = read(repo)["resume_events"][0]
    assert (event["actor"], event["reason"]) == ("bot", "why not")
    assert without_event_fields(read(repo)) == without_event_fields(made)
    assert repo_metrics(repo) == []


def test_a_terminal_run_without_its_metrics_line_gets_it_before_the_refusal(repo: Path) -> None:
    make_run(repo, status="failed", metrics_recorded=False, completed_at=iso_now())
    result = resume(repo)
    assert_blocked(repo, result, f"Run {RUN_ID} is already failed; cannot resume.", "terminal-status:failed")
    assert [line["status"] for line in repo_metrics(repo)] == ["failed"]
    assert read(repo)["metrics_recorded"] is True
    resume(repo)
    assert len(repo_metrics(repo)) == 1


def test_a_live_runner_is_refused(repo: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        make_run(repo, runner_pid=sleeper.pid, runner_start_ticks=process.start_ticks(sleeper.pid))
        result = resume(repo)
        error = f"Run {RUN_ID} still has active PID {sleeper.pid}."
        assert_blocked(repo, result, error, f"runner-active:{sleeper.pid}")
    finally:
        sleeper.kill()
        sleeper.wait(timeout=30)


def test_a_reused_pid_is_not_the_runner(repo: Path) -> None:
    """A live process whose start time differs is not the run's worker: the next check decides."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        ticks = process.start_ticks(sleeper.pid)
        assert ticks is not None
        make_run(repo, runner_pid=sleeper.pid, runner_start_ticks=ticks - 1, resume_token=None, token_file=None)
        result = resume(repo)
        assert_blocked(repo, result, f"Resume token not found for run {RUN_ID}.", "resume-token-read-error:ENOENT")
    finally:
        sleeper.kill()
        sleeper.wait(timeout=30)


def test_no_token_anywhere_is_refused_with_the_read_error(repo: Path) -> None:
    make_run(repo, resume_token=None, token_file=None)
    result = resume(repo)
    assert_blocked(repo, result, f"Resume token not found for run {RUN_ID}.", "resume-token-read-error:ENOENT")


def test_an_empty_token_file_is_a_missing_token(repo: Path) -> None:
    make_run(repo, resume_token=None, token_file="")
    result = resume(repo)
    assert_blocked(repo, result, f"Resume token not found for run {RUN_ID}.", "missing-resume-token")


def test_a_wrong_resume_token_is_refused(repo: Path) -> None:
    make_run(repo)
    result = resume(repo, "--resume-token", "0" * 64)
    assert_blocked(repo, result, "Resume token mismatch.", "resume-token-mismatch")


def test_manifest_and_file_tokens_that_differ_are_refused(repo: Path) -> None:
    made = make_run(repo, token_file="f" * 64)
    result = resume(repo, "--resume-token", made["resume_token"])
    assert_blocked(repo, result, "Resume token mismatch.", "resume-token-mismatch")


def test_a_token_file_others_can_read_gets_a_warning(repo: Path) -> None:
    make_run(repo)
    (repo / ".runs/0001/mcp" / RUN_ID / ".resume-token").chmod(0o644)
    result = resume(repo, "--resume-token", "0" * 64)
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"Warning: .runs/0001/mcp/{RUN_ID}/.resume-token is readable by other users; restrict it with chmod 600."
    )
    assert lines[1:] == ["Resume token mismatch."]


HAMMER = r"""
import sys, time
from pathlib import Path
from mcp_core import run_record
path, stop = Path(sys.argv[1]), Path(sys.argv[2])
count = 0
def bump(record):
    record["hammer"] = record.get("hammer", 0) + 1
while not stop.exists():
    run_record.update(path, bump)
    count += 1
print(count)
"""


def test_blocked_events_are_never_lost_to_concurrent_saves(repo: Path, tmp_path: Path) -> None:
    """A process saving the manifest in a loop (as a live worker's heartbeat does)
    while resumes are refused: every event and every one of its saves is kept."""
    make_run(repo, status="succeeded", metrics_recorded=True)
    stop = tmp_path / "stop"
    hammer = subprocess.Popen(
        [sys.executable, "-c", HAMMER, str(manifest_path(repo)), str(stop)],
        stdout=subprocess.PIPE, text=True, cwd=CHECKOUT,
    )  # fmt: skip
    try:
        wait_until(lambda: "hammer" in read(repo))
        for n in range(5):
            assert resume(repo, "--reason", f"attempt {n}").returncode == 1
    finally:
        stop.touch()
        saves = int(hammer.communicate(timeout=30)[0])
    record = read(repo)
    assert [e["reason"] for e in record["resume_events"]] == [f"attempt {n}" for n in range(5)]
    assert record["hammer"] == saves


# -- accepted resumes on real runs ----------------------------------------------


def start(repo: Path, *commands: str) -> str:
    args = [part for command in commands for part in ("--command", command)]
    result = run_script("mcp-runner-start.sh", *args, "--format", "json", repo=repo, env=env_for(repo))
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["run_id"])


def lines_in(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_a_killed_worker_is_resumed_from_the_first_command_not_succeeded(repo: Path) -> None:
    run_id = start(repo, "echo x >> c1", f"echo x >> c2; {WAIT_FOR_GO}", "echo x >> c3")
    wait_until(lambda: (repo / "c2").exists())  # command 2 is running
    before = read(repo, run_id)
    assert [c["status"] for c in before["commands"]] == ["succeeded", "running", "pending"]
    os.kill(before["runner_pid"], signal.SIGKILL)
    wait_until(lambda: not process.is_alive(before["runner_pid"], before["runner_start_ticks"]))

    result = resume(repo, run_id=run_id)
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(
        rf"Resumed run {run_id}\.\n"
        rf"Artifact root: \.runs/0001/mcp/{run_id}\n"
        rf"Compatibility path: \.runs/local-mcp/{run_id}\n"
        rf"Manifest: \.runs/0001/mcp/{run_id}/manifest\.json\n"
        r"Runner PID: (\d+)\n",
        result.stdout,
    )
    assert match, result.stdout
    resumed = read(repo, run_id)
    assert resumed["runner_pid"] == int(match.group(1)) != before["runner_pid"]
    assert resumed["status"] == "in_progress" and resumed["completed_at"] is None
    assert resumed["resume_token"] == before["resume_token"]
    event = resumed["resume_events"][-1]
    assert (event["actor"], event["reason"], event["outcome"], event["detail"]) == (
        "cli", "manual-resume", "accepted", "resume-started",
    )  # fmt: skip
    (repo / "go").touch()
    ended = wait_ended(repo, run_id)
    assert ended["status"] == "succeeded" and ended["status_detail"] is None
    assert [c["status"] for c in ended["commands"]] == ["succeeded"] * 3
    assert (lines_in(repo / "c1"), lines_in(repo / "c2"), lines_in(repo / "c3")) == (1, 2, 1)
    assert [(m["run_id"], m["status"]) for m in repo_metrics(repo)] == [(run_id, "succeeded")]
    assert "runner.log" in os.listdir(repo / ".runs/0001/mcp" / run_id)


@pytest.mark.slow
def test_retry_failed_continues_a_failed_run_from_its_failed_command(repo: Path) -> None:
    guardrail = "echo x >> r3  # stands in for scripts/spec-guard.sh"
    run_id = start(repo, "echo x >> r1", "test -f fixed", guardrail)
    failed = wait_ended(repo, run_id)
    assert failed["status"] == "failed" and failed["status_detail"] == "command-failed"
    assert failed["metrics_recorded"] is True
    assert failed["summary"] == manifest.GUARDRAIL_MISSING  # it never ran

    refused = resume(repo, run_id=run_id)
    assert (refused.returncode, refused.stderr) == (1, f"Run {run_id} is already failed; cannot resume.\n")

    (repo / "fixed").touch()
    result = resume(repo, "--retry-failed", "--format", "json", "--actor", "ci", run_id=run_id)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert list(printed) == ["run_id", "artifact_root", "compat_path", "manifest", "runner_pid", "resume_token"]
    assert printed["resume_token"] == failed["resume_token"]
    ended = wait_ended(repo, run_id)
    assert ended["status"] == "succeeded" and ended["completed_at"] != failed["completed_at"]
    assert ended["summary"] is None  # the failed ending's summary is not carried over
    assert ended["commands"][1]["status"] == "succeeded" and ended["commands"][1]["error_file"] is None
    assert [e["outcome"] for e in ended["resume_events"]] == ["blocked", "accepted"]
    assert (lines_in(repo / "r1"), lines_in(repo / "r3")) == (1, 1)
    assert [(m["run_id"], m["status"]) for m in repo_metrics(repo)] == [(run_id, "failed"), (run_id, "succeeded")]
