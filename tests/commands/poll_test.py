"""scripts/mcp-runner-poll.sh as callers run it: real processes against temp repositories.

The clock is not frozen. Outputs are compared byte for byte with expectations
written by hand from docs/interface.md section 6; the only clock-dependent pieces are
``polled_at`` and the heartbeat age. In JSON both come from one clock read, so
the age is checked exactly against ``polled_at - heartbeat_at`` and then both
are put into the expected text. In text output the age line is checked to lie
between the clock read before the process started and after it ended, then
replaced by the expected line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import SCRIPTS, run_script, runner_env, snapshot

from mcp_core import run_record
from mcp_core.jsfmt import iso_now

POLL = "mcp-runner-poll.sh"
USAGE_LINE = "Usage: scripts/mcp-runner-poll.sh <run-id> [--watch] [--interval N] [--format text|json]"

RUN_55446 = "2025-10-19T06-30-08-316Z-55446"
RUN_39463 = "2025-10-18T18-26-16-688Z-39463"
RUN_41083 = "2025-10-18T18-30-06-976Z-41083"
RUN_DIAG = "2025-10-19T06-54-01-535Z-diagnostics"
RUN_LEGACY = "2025-10-18T13-37-27Z"
BEAT_55446_MS = 1760855408429  # Date.parse("2025-10-19T06:30:08.429Z"), from node
BEAT_39463_MS = 1760812026832  # Date.parse("2025-10-18T18:27:06.832Z")

JSON_KEYS = [
    "run_id", "status", "status_detail", "started_at", "completed_at", "manifest",
    "artifact_root", "compat_path", "polled_at", "heartbeat", "commands",
]
HEARTBEAT_KEYS = ["updated_at", "age_seconds", "stale", "interval_seconds", "stale_after_seconds"]
COMMAND_KEYS = [
    "index", "command", "status", "summary", "exit_code", "started_at", "completed_at",
    "response_file", "error_file",
]
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# --- helpers ---------------------------------------------------------------------


def clock_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms // 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def ms_of(text: str) -> int:
    moment = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return round(moment.timestamp() * 1000)


def seconds_text(age_ms: int) -> str:
    """How JavaScript prints age_ms / 1000 (at most three decimals, no trailing zeros)."""
    return f"{age_ms // 1000}.{age_ms % 1000:03d}".rstrip("0").rstrip(".")


def poll(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_script(POLL, *args, repo=repo, env=env)


def timed_poll(
    repo: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, subprocess.CompletedProcess[str], int]:
    before = clock_ms()
    result = poll(repo, *args, env=env)
    return before, result, clock_ms()


def check_text_age(stdout: str, beat_ms: int, before: int, after: int, stale: bool) -> str:
    """Check the age line against the clock bounds; return stdout with it replaced by AGE."""
    suffix = r" \(STALE\)" if stale else ""
    found = re.findall(rf"^Heartbeat age: (\d+\.\d)s{suffix}$", stdout, re.M)
    assert len(found) == 1, stdout
    age = float(found[0])
    # toFixed(1) moves the value by at most 0.05
    assert (before - beat_ms) / 1000 - 0.051 <= age <= (after - beat_ms) / 1000 + 0.051
    return stdout.replace(f"Heartbeat age: {found[0]}s", "Heartbeat age: AGEs")


def check_json_clock(stdout: str, beat_ms: int | None, before: int, after: int) -> tuple[str, str, str | None]:
    """polled_at is the poll's clock; the age is exactly polled_at - heartbeat_at."""
    data = json.loads(stdout)
    polled_at = data["polled_at"]
    assert ISO.match(polled_at)
    polled_ms = ms_of(polled_at)
    assert before <= polled_ms <= after
    if beat_ms is None:
        assert data["heartbeat"]["age_seconds"] is None
        return stdout, polled_at, None
    age = seconds_text(polled_ms - beat_ms)
    assert f'"age_seconds": {age},' in stdout
    return stdout, polled_at, age


def manifest_of(repo: Path, run_id: str) -> dict[str, Any]:
    return json.loads((repo / ".runs/0001/mcp" / run_id / "manifest.json").read_text())


def write_manifest(repo: Path, run_id: str, content: Any, *, raw: str | None = None) -> Path:
    run_dir = repo / ".runs/0001/mcp" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "manifest.json"
    path.write_text(raw if raw is not None else json.dumps(content, indent=2) + "\n")
    return path


def live_manifest(run_id: str, heartbeat_ms: int, **extra: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "runner": "mcp-runner-py",
        "status": "in_progress",
        "status_detail": None,
        "commands": [
            {"index": 1, "command": "sleep 1", "status": "running", "started_at": iso(heartbeat_ms),
             "completed_at": None, "exit_code": None, "manifest_path": None, "response_file": None,
             "summary": None, "error_file": None},
        ],
        "started_at": iso(heartbeat_ms),
        "updated_at": iso(heartbeat_ms),
        "completed_at": None,
        "run_id": run_id,
        "artifact_root": f".runs/0001/mcp/{run_id}",
        "compat_path": f".runs/local-mcp/{run_id}",
        "heartbeat_at": iso(heartbeat_ms),
        "heartbeat_interval_seconds": 10,
        "heartbeat_stale_after_seconds": 30,
        "resume_events": [],
    }
    manifest.update(extra)
    return manifest


def fixture_run_ids(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / ".runs/0001/mcp").iterdir() if p.is_dir())


def pointer_ids(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / ".runs/local-mcp").iterdir() if p.is_dir())


def run_all(commands: list[tuple[list[str], dict[str, str]]], cwd: Path) -> list[tuple[int, str, str]]:
    """Run many polls at once (real processes), results in order."""
    procs = [
        subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True)
        for argv, env in commands
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, out, err))
    return results


# --- usage -------------------------------------------------------------------------


def test_no_arguments_prints_the_usage_line_and_exits_2(repo: Path) -> None:
    result = poll(repo)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", USAGE_LINE + "\n")


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_as_first_argument_prints_usage_and_exits_0(repo: Path, flag: str) -> None:
    result = poll(repo, flag)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.startswith(USAGE_LINE + "\n\n")
    assert "--interval N" in result.stdout and "poll.json" in result.stdout


def test_help_after_the_run_id_prints_usage(repo: Path) -> None:
    result = poll(repo, "some-run", "-h")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(USAGE_LINE + "\n")


# --- exact outputs of fixture runs ---------------------------------------------------------


def test_text_of_a_failed_run_exact(fixture_repo: Path) -> None:
    before = snapshot(fixture_repo / ".runs")
    start, result, end = timed_poll(fixture_repo, RUN_55446)
    assert (result.returncode, result.stderr) == (0, "")
    text = check_text_age(result.stdout, BEAT_55446_MS, start, end, stale=True)
    assert text == (
        "\n"
        "Run 2025-10-19T06-30-08-316Z-55446 status: failed\n"
        "Status detail: command-failed\n"
        "Started: 2025-10-19T06:30:08.317Z\n"
        "Completed: 2025-10-19T06:30:15.601Z\n"
        "Heartbeat age: AGEs (STALE)\n"
        "Commands:\n"
        "  1. bash -lc 'exit 2' -> failed\n"
        "     summary: Command exited with status 2\n"
        "     response: .runs/0001/mcp/2025-10-19T06-30-08-316Z-55446/01-bash-lc-exit-2.json\n"
        "     error: .runs/0001/mcp/2025-10-19T06-30-08-316Z-55446/errors/01-bash-lc-exit-2.json\n"
    )
    # terminal: a stale heartbeat is shown, never recorded; text writes nothing
    assert snapshot(fixture_repo / ".runs") == before


EXPECTED_JSON_39463 = """\
{
  "run_id": "2025-10-18T18-26-16-688Z-39463",
  "status": "succeeded",
  "status_detail": null,
  "started_at": "2025-10-18T18:26:16.689Z",
  "completed_at": "2025-10-18T18:27:10.396Z",
  "manifest": ".runs/0001/mcp/2025-10-18T18-26-16-688Z-39463/manifest.json",
  "artifact_root": ".runs/0001/mcp/2025-10-18T18-26-16-688Z-39463",
  "compat_path": ".runs/local-mcp/2025-10-18T18-26-16-688Z-39463",
  "polled_at": "POLLED_AT",
  "heartbeat": {
    "updated_at": "2025-10-18T18:27:06.832Z",
    "age_seconds": AGE,
    "stale": true,
    "interval_seconds": 10,
    "stale_after_seconds": 30
  },
  "commands": [
    {
      "index": 1,
      "command": "npm run build",
      "status": "succeeded",
      "summary": "Completed npm run build.",
      "exit_code": 0,
      "started_at": "2025-10-18T18:26:16.821Z",
      "completed_at": "2025-10-18T18:26:28.265Z",
      "response_file": ".runs/0001/mcp/2025-10-18T18-26-16-688Z-39463/01-npm-run-build.json",
      "error_file": null
    },
    {
      "index": 2,
      "command": "npm run lint",
      "status": "succeeded",
      "summary": "npm run lint completed successfully (build:patterns then eslint).",
      "exit_code": 0,
      "started_at": "2025-10-18T18:26:28.266Z",
      "completed_at": "2025-10-18T18:26:41.326Z",
      "response_file": ".runs/0001/mcp/2025-10-18T18-26-16-688Z-39463/02-npm-run-lint.json",
      "error_file": null
    },
    {
      "index": 3,
      "command": "npm run test",
      "status": "succeeded",
      "summary": "npm run test completed successfully (10 files, 37 tests).",
      "exit_code": 0,
      "started_at": "2025-10-18T18:26:41.327Z",
      "completed_at": "2025-10-18T18:26:55.350Z",
      "response_file": ".runs/0001/mcp/2025-10-18T18-26-16-688Z-39463/03-npm-run-test.json",
      "error_file": null
    },
    {
      "index": 4,
      "command": "bash scripts/spec-guard.sh --dry-run",
      "status": "succeeded",
      "summary": "Spec guard dry run succeeded.",
      "exit_code": 0,
      "started_at": "2025-10-18T18:26:55.351Z",
      "completed_at": "2025-10-18T18:27:10.395Z",
      "response_file": ".runs/0001/mcp/2025-10-18T18-26-16-688Z-39463/04-bash-scripts-spec-guard-sh-dry-run.json",
      "error_file": null
    }
  ]
}
"""


def test_json_of_a_succeeded_run_exact_and_written_to_poll_json(fixture_repo: Path) -> None:
    run_dir = fixture_repo / ".runs/0001/mcp" / RUN_39463
    manifest_before = (run_dir / "manifest.json").read_bytes()
    start, result, end = timed_poll(fixture_repo, RUN_39463, "--format", "json")
    assert (result.returncode, result.stderr) == (0, "")
    _, polled_at, age = check_json_clock(result.stdout, BEAT_39463_MS, start, end)
    assert age is not None
    expected = EXPECTED_JSON_39463.replace("POLLED_AT", polled_at).replace("AGE", age)
    assert result.stdout == expected
    assert (run_dir / "poll.json").read_text() == expected  # replaces the old runner's snapshot
    assert (run_dir / "manifest.json").read_bytes() == manifest_before
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


EXPECTED_TEXT_DIAG = (
    "\n"
    "Run 2025-10-19T06-54-01-535Z-diagnostics status: failed\n"
    "Status detail: command-failed\n"
    "Summary: Guardrail command failed; re-run scripts/run-mcp-diagnostics.sh --no-watch to gather failure artifacts.\n"
    "Started: 2025-10-19T06:54:01.536Z\n"
    "Completed: 2025-10-19T06:54:01.536Z\n"
    "Commands:\n"
    "  1. bash scripts/spec-guard.sh --dry-run -> failed\n"
    "     summary: Spec guard validation failed in sample generation.\n"
)


def test_text_of_the_diagnostics_run_exact(fixture_repo: Path) -> None:
    before = snapshot(fixture_repo / ".runs")
    result = poll(fixture_repo, RUN_DIAG)
    assert (result.returncode, result.stdout, result.stderr) == (0, EXPECTED_TEXT_DIAG, "")
    assert snapshot(fixture_repo / ".runs") == before


def test_json_of_the_diagnostics_run_exact_missing_values_are_null(fixture_repo: Path) -> None:
    start, result, end = timed_poll(fixture_repo, RUN_DIAG, "--format", "json")
    assert (result.returncode, result.stderr) == (0, "")
    _, polled_at, _ = check_json_clock(result.stdout, None, start, end)
    assert result.stdout == f"""\
{{
  "run_id": "2025-10-19T06-54-01-535Z-diagnostics",
  "status": "failed",
  "status_detail": "command-failed",
  "started_at": "2025-10-19T06:54:01.536Z",
  "completed_at": "2025-10-19T06:54:01.536Z",
  "manifest": ".runs/0001/mcp/2025-10-19T06-54-01-535Z-diagnostics/manifest.json",
  "artifact_root": ".runs/0001/mcp/2025-10-19T06-54-01-535Z-diagnostics",
  "compat_path": ".runs/local-mcp/2025-10-19T06-54-01-535Z-diagnostics",
  "polled_at": "{polled_at}",
  "heartbeat": {{
    "updated_at": null,
    "age_seconds": null,
    "stale": false,
    "interval_seconds": 10,
    "stale_after_seconds": 30
  }},
  "commands": [
    {{
      "index": 1,
      "command": "bash scripts/spec-guard.sh --dry-run",
      "status": "failed",
      "summary": "Spec guard validation failed in sample generation.",
      "exit_code": 1,
      "started_at": null,
      "completed_at": null,
      "response_file": null,
      "error_file": null
    }}
  ]
}}
"""


def test_legacy_manifest_without_run_id_text_and_json_exact(fixture_repo: Path) -> None:
    text = poll(fixture_repo, RUN_LEGACY)
    assert (text.returncode, text.stderr) == (0, "")
    assert text.stdout == "\nRun undefined status: undefined\nStarted: 2025-10-18T13-37-27Z\nCommands:\n"
    start, result, end = timed_poll(fixture_repo, RUN_LEGACY, "--format", "json")
    assert (result.returncode, result.stderr) == (0, "")
    _, polled_at, _ = check_json_clock(result.stdout, None, start, end)
    # run_id and status are left out; artifact_root falls back to the manifest's directory
    assert result.stdout == f"""\
{{
  "status_detail": null,
  "started_at": "2025-10-18T13-37-27Z",
  "completed_at": null,
  "manifest": ".runs/local-mcp/2025-10-18T13-37-27Z/manifest.json",
  "artifact_root": ".runs/local-mcp/2025-10-18T13-37-27Z",
  "compat_path": null,
  "polled_at": "{polled_at}",
  "heartbeat": {{
    "updated_at": null,
    "age_seconds": null,
    "stale": false,
    "interval_seconds": 10,
    "stale_after_seconds": 30
  }},
  "commands": []
}}
"""
    assert (fixture_repo / ".runs/local-mcp" / RUN_LEGACY / "poll.json").read_text() == result.stdout


# --- every fixture run ------------------------------------------------------------------------


def _check_json_shape(stdout: str, repo: Path) -> dict[str, Any]:
    data = json.loads(stdout)
    keys = list(data)
    assert keys == [k for k in JSON_KEYS if k in keys]
    assert set(JSON_KEYS) - set(keys) <= {"run_id", "status"}
    assert list(data["heartbeat"]) == HEARTBEAT_KEYS
    for command in data["commands"]:
        assert list(command) == [k for k in COMMAND_KEYS if k in command]
    assert (repo / data["manifest"]).is_file()
    assert ISO.match(data["polled_at"])
    assert stdout == json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return data


@pytest.mark.slow
def test_every_fixture_run_and_pointer_polls_in_text_and_json(fixture_repo: Path) -> None:
    runs = fixture_run_ids(fixture_repo)
    pointers = pointer_ids(fixture_repo)
    assert len(runs) == 6 and len(pointers) == 21
    direct = runner_env(fixture_repo)
    # With an empty runs root every local-mcp entry is found through its pointer
    # (symlinks to ../../0001/mcp/<id>/manifest.json, legacy manifests).
    via_pointer = runner_env(fixture_repo, MCP_RUNNER_TASK_RUNS_ROOT=str(fixture_repo / ".runs/9999/mcp"))
    cases = [(run_id, direct) for run_id in runs] + [(run_id, via_pointer) for run_id in pointers]
    script = str(SCRIPTS / POLL)

    before = snapshot(fixture_repo / ".runs")
    texts = run_all([([script, run_id], env) for run_id, env in cases], fixture_repo)
    for (run_id, _), (code, out, err) in zip(cases, texts, strict=True):
        assert (code, err) == (0, ""), run_id
        assert out.startswith("\nRun ") and "\nStarted: " in out and "\nCommands:\n" in out, run_id
    assert snapshot(fixture_repo / ".runs") == before  # every fixture run is terminal or has no heartbeat

    # A run and its pointer write the same poll.json: the direct polls (first in
    # ``cases``) finish before the pointer polls start, so the file a pointer poll
    # is checked against below is that poll's own.
    json_args = [([script, run_id, "--format", "json"], env) for run_id, env in cases]
    jsons = run_all(json_args[: len(runs)], fixture_repo) + run_all(json_args[len(runs) :], fixture_repo)
    for (run_id, env), (code, out, err) in zip(cases, jsons, strict=True):
        assert (code, err) == (0, ""), run_id
        data = _check_json_shape(out, fixture_repo)
        pointer = fixture_repo / ".runs/local-mcp" / run_id / "manifest.json"
        if env is via_pointer and pointer.is_symlink():
            # The symlink is read in place: the path read is the pointer's, the rest is the run's.
            assert data["manifest"] == f".runs/local-mcp/{run_id}/manifest.json"
            assert data["artifact_root"] == f".runs/0001/mcp/{run_id}"
            assert (fixture_repo / ".runs/0001/mcp" / run_id / "poll.json").read_text() == out
            assert not (pointer.parent / "poll.json").exists()
    links = [fixture_repo / ".runs/local-mcp" / run_id / "manifest.json" for run_id in pointers]
    assert sum(link.is_symlink() for link in links) == 6  # the recorded tree's pointers are real symlinks
    after = snapshot(fixture_repo / ".runs")
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed and all(k.endswith("/poll.json") for k in changed)


def test_pointer_output_equals_direct_output_except_the_manifest_path(fixture_repo: Path) -> None:
    via_pointer = runner_env(fixture_repo, MCP_RUNNER_TASK_RUNS_ROOT=str(fixture_repo / ".runs/9999/mcp"))
    direct = poll(fixture_repo, RUN_41083)
    pointed = poll(fixture_repo, RUN_41083, env=via_pointer)
    assert (pointed.returncode, pointed.stderr) == (0, "")
    direct_text = re.sub(r"Heartbeat age: [\d.]+s", "AGE", direct.stdout)
    assert re.sub(r"Heartbeat age: [\d.]+s", "AGE", pointed.stdout) == direct_text
    assert direct_text.startswith(f"\nRun {RUN_41083} status: failed\nStatus detail: command-failed\n")


# --- pointers --------------------------------------------------------------------------------


def _pointer(repo: Path, run_id: str) -> Path:
    directory = repo / ".runs/local-mcp" / run_id
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "manifest.json"


def _target(repo: Path, where: str, run_id: str) -> Path:
    path = repo / where / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run_id": run_id, "status": "succeeded", "commands": []}))
    return path


@pytest.mark.parametrize(
    "kind",
    ["stub-manifest", "stub-redirect-only", "stub-target-missing", "symlink", "flattened-symlink"],
)
def test_poll_finds_a_run_only_through_its_pointer(repo: Path, kind: str) -> None:
    run_id = "pointed-run"
    link = _pointer(repo, run_id)
    expected_manifest = f".runs/0001/mcp/{run_id}/manifest.json"
    stub: dict[str, Any] = {"redirect_to": f".runs/0001/mcp/{run_id}", "created_at": "2025-10-18T00:00:00.000Z"}
    if kind == "stub-manifest":
        _target(repo, f".runs/0001/mcp/{run_id}", run_id)
        # the manifest field wins over redirect_to
        link.write_text(json.dumps({**stub, "redirect_to": ".runs/nowhere", "manifest": expected_manifest}))
    elif kind == "stub-redirect-only":
        _target(repo, f".runs/0001/mcp/{run_id}", run_id)
        link.write_text(json.dumps(stub))
    elif kind == "stub-target-missing":
        link.write_text(json.dumps({**stub, "manifest": expected_manifest}))
        expected_manifest = f".runs/local-mcp/{run_id}/manifest.json"  # the old poll read the stub itself
    elif kind == "symlink":
        _target(repo, f".runs/0001/mcp/{run_id}", run_id)
        os.symlink(f"../../0001/mcp/{run_id}/manifest.json", link)
        expected_manifest = f".runs/local-mcp/{run_id}/manifest.json"  # the path actually read
    else:
        _target(repo, f".runs/0001/mcp/{run_id}", run_id)
        link.write_text(f"../../0001/mcp/{run_id}/manifest.json")
    # the direct place is looked at first, so hide it from the runs root
    env = runner_env(repo, MCP_RUNNER_TASK_RUNS_ROOT=str(repo / ".runs/other/mcp"))
    text = poll(repo, run_id, env=env)
    assert (text.returncode, text.stderr) == (0, "")
    if kind == "stub-target-missing":
        assert text.stdout == "\nRun undefined status: undefined\nStarted: undefined\nCommands:\n"
    else:
        assert text.stdout == f"\nRun {run_id} status: succeeded\nStarted: undefined\nCommands:\n"
    result = poll(repo, run_id, "--format", "json", env=env)
    assert (result.returncode, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert data["manifest"] == expected_manifest
    real_dir = (repo / expected_manifest).resolve().parent
    assert (real_dir / "poll.json").read_text() == result.stdout  # the real manifest's directory
    if kind == "symlink":
        assert data["artifact_root"] == f".runs/local-mcp/{run_id}"  # manifest has none: its directory
        assert link.is_symlink() and not (link.parent / "poll.json").exists()


@pytest.mark.parametrize("kind", ["symlink", "stub-relative", "stub-absolute", "flattened", "linked-dir"])
def test_pointers_aimed_outside_runs_are_not_found(repo: Path, kind: str) -> None:
    run_id = "escape"
    victim = repo / "victim"
    victim.mkdir()
    victim_manifest = victim / "manifest.json"
    victim_manifest.write_text(json.dumps(live_manifest(run_id, clock_ms() - 3_600_000)))
    if kind == "linked-dir":
        (repo / ".runs/local-mcp").mkdir(parents=True)
        os.symlink(victim, repo / ".runs/local-mcp" / run_id)
    else:
        link = _pointer(repo, run_id)
        if kind == "symlink":
            os.symlink("../../../victim/manifest.json", link)
        elif kind == "stub-relative":
            link.write_text(json.dumps({"redirect_to": "victim", "manifest": "victim/manifest.json"}))
        elif kind == "stub-absolute":
            link.write_text(json.dumps({"redirect_to": str(victim), "manifest": str(victim_manifest)}))
        else:
            link.write_text("../../../victim/manifest.json\n")
    before = snapshot(repo)
    for args in ([run_id], [run_id, "--format", "json"]):
        result = poll(repo, *args)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == f"Manifest for run {run_id} not found.\n"
    assert snapshot(repo) == before


def test_a_dangling_pointer_is_not_found(repo: Path) -> None:
    os.symlink("../../0001/mcp/gone/manifest.json", _pointer(repo, "gone"))
    _pointer(repo, "gone-flat").write_text("../../0001/mcp/gone-flat/manifest.json")
    for run_id in ("gone", "gone-flat"):
        result = poll(repo, run_id)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", f"Manifest for run {run_id} not found.\n")


# --- stale marking ---------------------------------------------------------------------------


def test_a_live_run_with_an_old_heartbeat_is_marked_stale_once(repo: Path) -> None:
    beat = clock_ms() - 3_600_000
    path = write_manifest(repo, "live-run", live_manifest("live-run", beat))
    original = json.loads(path.read_text())
    start, result, end = timed_poll(repo, "live-run")
    assert (result.returncode, result.stderr) == (0, "")
    text = check_text_age(result.stdout, beat, start, end, stale=True)
    assert text == (
        "\nRun live-run status: in_progress\n"
        "Status detail: stale-heartbeat\n"
        f"Started: {iso(beat)}\n"
        "Heartbeat age: AGEs (STALE)\n"
        "Commands:\n"
        "  1. sleep 1 -> running\n"
    )
    marked = json.loads(path.read_text())
    assert marked["status_detail"] == "stale-heartbeat"
    assert start <= ms_of(marked["updated_at"]) <= end  # a save sets updated_at
    assert list(marked) == list(original)  # keys keep their places
    assert {k: v for k, v in marked.items() if k not in ("status_detail", "updated_at")} == {
        k: v for k, v in original.items() if k not in ("status_detail", "updated_at")
    }
    saved = path.read_bytes()
    again = poll(repo, "live-run", "--format", "json")
    assert json.loads(again.stdout)["status_detail"] == "stale-heartbeat"
    assert path.read_bytes() == saved  # already marked: not saved again


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_terminal_run_is_never_marked(repo: Path, status: str) -> None:
    path = write_manifest(repo, "ended", live_manifest("ended", clock_ms() - 3_600_000, status=status))
    before = snapshot(repo / ".runs")
    result = poll(repo, "ended")
    assert result.returncode == 0 and "(STALE)" in result.stdout
    assert "Status detail" not in result.stdout
    assert snapshot(repo / ".runs") == before
    assert json.loads(path.read_text())["status_detail"] is None


@pytest.mark.parametrize(
    ("age_seconds", "stale_after", "stale"),
    [
        (100, 3600, False),  # the manifest's own threshold, not a constant 30 s
        (100, 50, True),
        (100, None, True),  # missing: 30 s
        (10, None, False),
        (100, 0, True),  # not a positive number: 30 s
    ],
)
def test_the_manifest_stale_threshold_is_honoured(repo: Path, age_seconds: int, stale_after: int | None,
                                                  stale: bool) -> None:
    beat = clock_ms() - age_seconds * 1000
    manifest = live_manifest("threshold", beat)
    if stale_after is None:
        del manifest["heartbeat_stale_after_seconds"]
    else:
        manifest["heartbeat_stale_after_seconds"] = stale_after
    path = write_manifest(repo, "threshold", manifest)
    start, result, end = timed_poll(repo, "threshold", "--format", "json")
    assert (result.returncode, result.stderr) == (0, "")
    check_json_clock(result.stdout, beat, start, end)
    data = json.loads(result.stdout)
    assert data["heartbeat"]["stale"] is stale
    assert data["heartbeat"]["stale_after_seconds"] == (30 if stale_after is None else stale_after)
    assert data["status_detail"] == ("stale-heartbeat" if stale else None)
    assert json.loads(path.read_text())["status_detail"] == ("stale-heartbeat" if stale else None)


def test_marking_goes_through_a_symlink_pointer_to_the_real_file(repo: Path) -> None:
    real = write_manifest(repo, "linked", live_manifest("linked", clock_ms() - 3_600_000))
    link = _pointer(repo, "linked")
    os.symlink("../../0001/mcp/linked/manifest.json", link)
    env = runner_env(repo, MCP_RUNNER_TASK_RUNS_ROOT=str(repo / ".runs/other/mcp"))
    result = poll(repo, "linked", env=env)
    assert (result.returncode, result.stderr) == (0, "")
    assert "Status detail: stale-heartbeat\n" in result.stdout
    assert link.is_symlink() and os.readlink(link) == "../../0001/mcp/linked/manifest.json"
    assert json.loads(real.read_text())["status_detail"] == "stale-heartbeat"


def test_when_nothing_can_be_written_poll_still_prints_and_warns(repo: Path) -> None:
    # RLIMIT_FSIZE 0: every write of a byte to a file fails (EFBIG) even for root,
    # while stdout and stderr (pipes) still work.
    path = write_manifest(repo, "frozen", live_manifest("frozen", clock_ms() - 3_600_000))
    before = snapshot(repo / ".runs")
    for fmt, warnings in (("text", 1), ("json", 2)):
        result = subprocess.run(
            ["bash", "-c", 'ulimit -f 0; exec "$0" "$@"', str(SCRIPTS / POLL), "frozen", "--format", fmt],
            cwd=repo, env=runner_env(repo), capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0
        lines = result.stderr.splitlines()
        assert len(lines) == warnings, result.stderr
        assert lines[0] == (
            "Warning: could not mark run frozen stale in .runs/0001/mcp/frozen/manifest.json: File too large"
        )
        if fmt == "json":
            assert lines[1] == "Warning: could not write .runs/0001/mcp/frozen/poll.json: File too large"
            assert json.loads(result.stdout)["status_detail"] == "stale-heartbeat"
        else:
            assert "Status detail: stale-heartbeat\n" in result.stdout
    assert snapshot(repo / ".runs") == before
    assert json.loads(path.read_text())["status_detail"] is None


_WORKER = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from mcp_core import run_record
path, stop = Path(sys.argv[2]), Path(sys.argv[3])
count = 0
while not stop.exists() or count < 20:
    def change(m, n=count):
        m["resume_events"].append(n)
        m["status_detail"] = None  # the worker clears a stale mark; the heartbeat stays old
    run_record.update(path, change)
    count += 1
print(count)
"""


@pytest.mark.slow
def test_poll_marking_stale_while_another_process_saves_loses_no_update(repo: Path, tmp_path: Path) -> None:
    path = write_manifest(repo, "busy", live_manifest("busy", clock_ms() - 3_600_000))
    stop = tmp_path / "stop"
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(SCRIPTS.parent), str(path), str(stop)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not json.loads(path.read_text())["resume_events"] and time.monotonic() < deadline:
            time.sleep(0.01)
        script = str(SCRIPTS / POLL)
        env = runner_env(repo)
        results = run_all([([script, "busy"], env) for _ in range(6)], repo)
    finally:
        stop.touch()
        out, _ = worker.communicate(timeout=60)
    count = int(out)
    for code, stdout, stderr in results:
        assert (code, stderr) == (0, "")
        assert "Status detail: stale-heartbeat\n" in stdout
    final = json.loads(path.read_text())
    assert final["resume_events"] == list(range(count))


# --- bad input ----------------------------------------------------------------------------------

ID = RUN_55446


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["../../../victim"], "Invalid run id: '../../../victim' (expected a single plain path segment)."),
        (["/etc/passwd"], "Invalid run id: '/etc/passwd' (expected a single plain path segment)."),
        ([f"{ID}/../{ID}"], f"Invalid run id: '{ID}/../{ID}' (expected a single plain path segment)."),
        ([".."], "Invalid run id: '..' (expected a single plain path segment)."),
        (["bad\nid"], "Invalid run id: 'bad\\nid' (expected a single plain path segment)."),
        ([""], "Invalid run id: '' (expected a single plain path segment)."),
        (["../../../victim", "--bogus"], "Invalid run id: '../../../victim' (expected a single plain path segment)."),
        ([ID, "--bogus"], "Unknown option for poll: --bogus"),
        ([ID, "--format=json"], "Unknown option for poll: --format=json"),
        ([ID, "--inter", "5"], "Unknown option for poll: --inter"),
        ([ID, "--watch", "--watc"], "Unknown option for poll: --watc"),
        ([ID, "extra"], "Unknown option for poll: extra"),
        ([ID, "--interval", "abc"], "--interval requires a numeric value"),
        ([ID, "--interval", "0"], "--interval must be a positive number"),
        ([ID, "--interval", "-5"], "--interval must be a positive number"),
        ([ID, "--interval", ""], "--interval requires a numeric value"),
        ([ID, "--interval"], "--interval requires a numeric value"),
        ([ID, "--interval", "--watch"], "--interval requires a numeric value"),
        ([ID, "--format", "xml"], 'Unsupported format: xml. Expected "text" or "json".'),
        ([ID, "--format", "--watch"], 'Unsupported format: --watch. Expected "text" or "json".'),
        ([ID, "--format"], "--format requires a value"),
        ([ID, "--format", ""], "--format requires a value"),
        ([ID, "--bogus", "--interval", "abc"], "Unknown option for poll: --bogus"),
        ([ID, "--interval", "abc", "--bogus"], "--interval requires a numeric value"),
        ([ID, "--format", "xml", "--bogus"], "Unknown option for poll: --bogus"),
        (["no-such-run"], "Manifest for run no-such-run not found."),
        (["--watch"], "Manifest for run --watch not found."),
        (["--format", "json"], "Unknown option for poll: json"),  # the first argument is the run id
    ],
)
def test_bad_input_one_exact_line_exit_1_nothing_touched(fixture_repo: Path, args: list[str], message: str) -> None:
    victim = fixture_repo / "victim"
    victim.mkdir()
    (victim / "manifest.json").write_text(json.dumps(live_manifest("victim", clock_ms() - 3_600_000)))
    before = snapshot(fixture_repo)
    result = poll(fixture_repo, *args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n")
    assert snapshot(fixture_repo) == before


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("", "is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
        ("null", "is not a JSON object"),
        ('"text"', "is not a JSON object"),
    ],
)
def test_a_manifest_that_is_not_a_json_object(repo: Path, raw: str, message: str) -> None:
    write_manifest(repo, "broken", None, raw=raw)
    before = snapshot(repo / ".runs")
    for fmt in ("text", "json"):
        result = poll(repo, "broken", "--format", fmt)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == f"Manifest for run broken {message}: .runs/0001/mcp/broken/manifest.json\n"
    assert snapshot(repo / ".runs") == before


# --- odd values ----------------------------------------------------------------------------------


def test_odd_values_render_clearly(repo: Path) -> None:
    write_manifest(repo, "odd", {
        "run_id": "odd",
        "status": None,
        "status_detail": "",
        "summary": "line one\nline two — é",
        "started_at": None,
        "completed_at": "",
        "heartbeat_at": "not a time",
        "commands": [
            {"index": 1, "command": "echo 1e-7", "status": "succeeded", "summary": "", "response_file": None},
            "not a command",
            {"command": 12.5, "status": ["a", 1], "exit_code": 0},
        ],
    })
    result = poll(repo, "odd")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "\nRun odd status: null\n"
        "Summary: line one\nline two — é\n"
        "Started: null\n"
        "Commands:\n"
        "  1. echo 1e-7 -> succeeded\n"
        '  undefined. 12.5 -> ["a",1]\n'
    )
    data = json.loads(poll(repo, "odd", "--format", "json").stdout)
    assert data["status"] is None and data["heartbeat"]["updated_at"] == "not a time"
    assert data["heartbeat"]["age_seconds"] is None and data["heartbeat"]["stale"] is False
    assert data["commands"][1] == {
        "command": 12.5, "status": ["a", 1], "summary": None, "exit_code": 0, "started_at": None,
        "completed_at": None, "response_file": None, "error_file": None,
    }


# --- watch ----------------------------------------------------------------------------------------


class _Reader(threading.Thread):
    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.chunks: list[str] = []

    def run(self) -> None:
        for line in self.stream:
            self.chunks.append(line)

    def text(self) -> str:
        return "".join(self.chunks)


def _finish(path: Path) -> None:
    def change(m: dict[str, Any]) -> None:
        m["status"] = "succeeded"
        m["commands"][0]["status"] = "succeeded"
        m["completed_at"] = iso_now()

    run_record.update(path, change)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_watch_prints_blocks_until_another_process_ends_the_run(repo: Path, fmt: str) -> None:
    path = write_manifest(repo, "watched", live_manifest("watched", clock_ms(), heartbeat_stale_after_seconds=3600))
    proc = subprocess.Popen(
        [str(SCRIPTS / POLL), "watched", "--watch", "--interval", "0.2", "--format", fmt],
        cwd=repo, env=runner_env(repo), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    reader = _Reader(proc.stdout)
    reader.start()
    marker = "\nRun watched status" if fmt == "text" else '"run_id": "watched"'
    deadline = time.monotonic() + 30
    while reader.text().count(marker) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, "watch stopped before the run ended"
        time.sleep(0.05)
    _finish(path)
    proc.wait(timeout=30)  # not communicate(): the reader thread owns stdout
    reader.join(timeout=5)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    out = reader.text()
    assert (proc.returncode, stderr) == (0, "")
    if fmt == "text":
        blocks = [b for b in re.split(r"(?=\nRun watched status: )", out) if b]
        assert len(blocks) >= 4 and "".join(blocks) == out
        for block in blocks[:-1]:
            assert block.startswith("\nRun watched status: in_progress\nStarted: ")
            assert block.endswith("Commands:\n  1. sleep 1 -> running\n")
        assert blocks[-1].startswith("\nRun watched status: succeeded\n")
        assert blocks[-1].endswith("Commands:\n  1. sleep 1 -> succeeded\n")
    else:
        decoder = json.JSONDecoder()
        objects, position = [], 0
        while position < len(out):
            obj, end = decoder.raw_decode(out, position)
            assert out[end] == "\n"  # one pretty object per tick, not an array
            objects.append(obj)
            position = end + 1
        assert len(objects) >= 4
        assert [o["status"] for o in objects[:-1]] == ["in_progress"] * (len(objects) - 1)
        assert objects[-1]["status"] == "succeeded"
        polled = [o["polled_at"] for o in objects]
        assert polled == sorted(polled)
        assert json.loads((path.parent / "poll.json").read_text()) == objects[-1]


def test_watch_on_an_ended_run_prints_once(fixture_repo: Path) -> None:
    result = poll(fixture_repo, RUN_DIAG, "--watch", "--interval", "5")
    assert (result.returncode, result.stdout, result.stderr) == (0, EXPECTED_TEXT_DIAG, "")


# --- speed -----------------------------------------------------------------------------------------


def test_poll_imports_nothing_heavy(fixture_repo: Path) -> None:
    python = SCRIPTS.parent / ".venv/bin/python"
    env = runner_env(fixture_repo)
    result = subprocess.run(
        [str(python if python.exists() else sys.executable), "-X", "importtime",
         str(SCRIPTS.parent / "bin/mcp-runner-poll"), RUN_39463, "--format", "json"],
        cwd=fixture_repo, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "mcp_core.commands.poll" in modules
    heavy = {m for m in modules if m.split(".")[0] in (
        "mcp", "dateutil", "tabulate", "jsonlines", "anyio", "pydantic",  # the SDK and the packages
        "docopt", "pathlib", "re", "json", "typing", "dataclasses", "decimal", "enum",  # ~1-20 ms each
        "contextlib", "threading", "collections", "functools", "datetime",
    )}
    assert heavy == set()
    # shared libraries and modules only the rarer paths need (a lock, a number, the text view, a live run)
    assert modules.isdisjoint({"math", "fcntl", "mcp_core.termtext", "mcp_core.codex_events"})


def test_age_seconds_text_helper() -> None:
    # the test's own independent formatting of ages
    assert [seconds_text(n) for n in (0, 5, 1000, 1702676, 34803047120)] == [
        "0", "0.005", "1", "1702.676", "34803047.12",
    ]
    assert Decimal(seconds_text(12250)) == Decimal("12.25")
