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


# --- 2. a FIFO hangs nothing ------------------------------------------------------------------

# Runs as start leaves them, their workers long gone (pointer, token, heartbeat).
from hostile_test import RUN_ID, env_of, make_run  # noqa: E402


def second_run(repo: Path, run_id: str = "2026-01-02T03-04-06-000Z-4243", **fields: Any) -> Path:
    return make_run(repo, run_id, **fields)


def test_a_fifo_as_a_manifest_is_skipped_by_every_overview_and_refused_for_one_run(repo: Path) -> None:
    path = make_run(repo)
    second_run(repo, status="succeeded")
    path.unlink()
    os.mkfifo(path)
    env = local_env(repo)
    warning = f"Warning: skipping .runs/0001/mcp/{RUN_ID}/manifest.json: not a regular file\n"
    listed = run_script("mcp-runner-list.sh", "--format", "json", repo=repo, env=env, timeout=30)
    assert listed.returncode == 0 and listed.stderr == warning
    assert [run["run_id"] for run in json.loads(listed.stdout)["runs"]] == ["2026-01-02T03-04-06-000Z-4243"]
    report = run_script("mcp-runner-report.sh", repo=repo, env=env, timeout=30)
    assert report.returncode == 0 and report.stderr == warning, report.stderr
    pruned = run_script("mcp-runner-prune.sh", "--dry-run", "--keep", "5", repo=repo, env=env, timeout=30)
    assert "Traceback" not in pruned.stderr and RUN_ID in pruned.stdout, (pruned.stdout, pruned.stderr)
    resumed = run_script("mcp-runner-start.sh", "--resume", RUN_ID, repo=repo, env=env, timeout=30)
    assert resumed.returncode == 1 and resumed.stdout == ""
    assert resumed.stderr == (
        f"Manifest for run {RUN_ID} cannot be read: .runs/0001/mcp/{RUN_ID}/manifest.json: not a regular file\n"
    )
    polled = run_script("mcp-runner-poll.sh", RUN_ID, repo=repo, env=env, timeout=30)
    assert polled.returncode == 1 and polled.stdout == ""
    assert polled.stderr == (
        f"Manifest for run {RUN_ID} could not be read: .runs/0001/mcp/{RUN_ID}/manifest.json: not a regular file\n"
    )
    cancelled = run_script("mcp-runner-cancel.sh", RUN_ID, repo=repo, env=env, timeout=30)
    assert cancelled.returncode == 1 and cancelled.stderr.count("\n") == 1 and "Traceback" not in cancelled.stderr
    assert path.is_fifo()


@pytest.mark.parametrize("name", [".resume-token", "runner.log"])
def test_a_fifo_among_a_runs_files_hangs_no_resume_or_cancel(repo: Path, name: str) -> None:
    path = make_run(repo)
    (path.parent / name).unlink()
    os.mkfifo(path.parent / name)
    env = env_of(repo)  # a server that cannot start: a resume that goes through ends at once
    for args in (("mcp-runner-start.sh", "--resume", RUN_ID), ("mcp-runner-cancel.sh", RUN_ID)):
        # Answers (within the timeout), in one line when it cannot go on.
        result = run_script(*args, repo=repo, env=env, timeout=30)
        assert "Traceback" not in result.stderr, result.stderr
        if result.returncode != 0:
            assert result.stderr.endswith(": not a regular file\n"), result.stderr
    assert (path.parent / name).is_fifo()


# --- 4. nothing is written through a link out of the runs root ------------------------------


def outside_copy(repo: Path, path: Path, name: str) -> Path:
    """Move the run's file ``path`` outside .runs and leave a symlink to it in its place."""
    outside = repo.parent / "elsewhere" / name
    outside.parent.mkdir(exist_ok=True)
    os.replace(path, outside)
    path.symlink_to(outside)
    return outside


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("script", ["mcp-runner-poll.sh", "mcp-runner-cancel.sh", "resume"])
def test_a_manifest_linked_out_of_the_runs_root_is_neither_followed_nor_written(repo: Path, script: str) -> None:
    path = make_run(repo)
    outside = outside_copy(repo, path, "manifest.json")
    before = tree(outside.parent)
    args = ("mcp-runner-start.sh", "--resume", RUN_ID) if script == "resume" else (script, RUN_ID)
    for extra in ((), ("--format", "json")):
        result = run_script(*args, *extra, repo=repo, env=env_of(repo), timeout=30)
        assert result.returncode == 1 and result.stdout == "", (result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert tree(outside.parent) == before  # not rewritten, no poll.json or errors/ beside it
    assert path.is_symlink()


def test_a_run_directory_linked_out_of_the_runs_root_is_not_written(repo: Path) -> None:
    path = make_run(repo)
    run_dir = path.parent
    outside = repo.parent / "elsewhere-run"
    os.replace(run_dir, outside)
    run_dir.symlink_to(outside)
    before = tree(outside)
    for args in (
        ("mcp-runner-poll.sh", RUN_ID, "--format", "json"),
        ("mcp-runner-cancel.sh", RUN_ID),
        ("mcp-runner-start.sh", "--resume", RUN_ID),
    ):
        result = run_script(*args, repo=repo, env=env_of(repo), timeout=30)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, (args, result.stderr)
    assert tree(outside) == before


@pytest.mark.parametrize("name", ["errors", "runner.log"])
def test_a_runs_errors_or_log_linked_out_is_not_written_through(repo: Path, name: str) -> None:
    path = make_run(repo)
    record = json.loads(path.read_bytes())
    record["commands"][0]["status"] = "running"  # cancel writes its error artifact
    store.write_json(path, record)
    outside = repo.parent / "elsewhere" / name
    outside.parent.mkdir()
    if name == "errors":
        outside.mkdir()
    else:
        outside.write_text("")
        (path.parent / name).unlink()
    (path.parent / name).symlink_to(outside)
    result = run_script("mcp-runner-cancel.sh", RUN_ID, repo=repo, env=env_of(repo), timeout=30)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, (result.stdout, result.stderr)
    assert result.stderr == f"Cancel failed: {name} is a symbolic link; refused to write through it\n"
    assert tree(outside.parent) == ({} if name == "errors" else {"runner.log": b""})


def test_poll_marks_a_run_stale_through_its_compatibility_pointer(repo: Path) -> None:
    # The legitimate link: .runs/local-mcp/<id>/manifest.json -> the run's manifest.
    path = make_run(repo)
    os.replace(path, path.parent / "moved.json")  # poll must come through the pointer
    pointer = repo / ".runs" / "local-mcp" / RUN_ID / "manifest.json"
    pointer.unlink()
    pointer.symlink_to(os.path.relpath(path.parent / "moved.json", pointer.parent))
    shown = run_script("mcp-runner-poll.sh", RUN_ID, "--format", "json", repo=repo, env=env_of(repo))
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert json.loads(shown.stdout)["manifest"] == f".runs/local-mcp/{RUN_ID}/manifest.json"
    assert json.loads((path.parent / "moved.json").read_bytes())["status_detail"] == "stale-heartbeat"
    assert (path.parent / "poll.json").is_file() and pointer.is_symlink()


# --- 6. bounded: manifests, logs, views --------------------------------------------------------


def test_a_manifest_over_the_size_limit_is_refused_in_one_line(repo: Path) -> None:
    path = make_run(repo)
    second_run(repo, status="succeeded")
    record = json.loads(path.read_bytes())
    record["summary"] = "s" * store.MAX_RUN_FILE_BYTES
    store.write_json(path, record)
    before = path.read_bytes()
    env = env_of(repo)
    shown = f".runs/0001/mcp/{RUN_ID}/manifest.json"
    refused = "larger than 16 MiB, refused\n"
    for args in (("mcp-runner-poll.sh", RUN_ID), ("mcp-runner-start.sh", "--resume", RUN_ID)):
        result = run_script(*args, repo=repo, env=env, timeout=60)
        assert result.returncode == 1 and result.stdout == "", result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.endswith(f"{shown}: {refused}"), result.stderr
    cancelled = run_script("mcp-runner-cancel.sh", RUN_ID, repo=repo, env=env, timeout=60)
    assert cancelled.returncode == 1 and cancelled.stderr.count("\n") == 1, cancelled.stderr
    for args in (("mcp-runner-list.sh",), ("mcp-runner-report.sh",)):
        result = run_script(*args, repo=repo, env=env, timeout=60)
        assert result.returncode == 0 and result.stderr == f"Warning: skipping {shown}: {refused}", result.stderr
    assert path.read_bytes() == before


def test_runner_log_of_a_run_is_capped(repo: Path) -> None:
    env = local_env(repo, MCP_RUNNER_LOG_MAX_BYTES=str(1024 * 1024))
    run_id = start(repo, "head -c 5000000 /dev/zero | tr '\\0' x; echo; echo LAST-LINE", env=env)
    assert finished(repo, run_id)["status"] == "succeeded"
    log = (manifest_path(repo, run_id).parent / "runner.log").read_bytes()
    assert len(log) < 1024 * 1024 + 16 * 1024, len(log)
    assert b"left out of runner.log" in log and b"\nLAST-LINE\n" in log


def test_error_artifact_cuts_a_long_command(repo: Path) -> None:
    command = "exit 3 # " + "c" * 20_000
    run = create_run(repo, [command])
    assert run_worker(run) == 1
    [entry] = run.manifest()["commands"]
    artifact = json.loads((repo / entry["error_file"]).read_bytes())
    assert artifact["command"].startswith(command[:8192])
    assert artifact["command"].endswith(f"\n[truncated: {len(command)} bytes, first 8192 kept]")


# --- 3. terminal escapes from a run reach no terminal ---------------------------------------

HOSTILE_OUTPUT = "printf '\\033[2J\\033[H\\033]0;owned\\007Run X status: succeeded\\033[8m\\r\\342\\200\\256'; exit 1"


def test_text_views_show_a_runs_control_characters_escaped(repo: Path) -> None:
    run_id = start(repo, HOSTILE_OUTPUT)
    record = finished(repo, run_id)
    assert record["status"] == "failed"
    assert "\x1b[2J" in record["commands"][0]["summary"]  # the manifest keeps what was said
    env = local_env(repo)
    text = run_script("mcp-runner-poll.sh", run_id, repo=repo, env=env)
    assert text.returncode == 0
    # (the executor's summary turns the carriage return into a line break: " | ")
    assert "\\x1b[2J\\x1b[H\\x1b]0;owned\\x07Run X status: succeeded\\x1b[8m | \\u202e" in text.stdout
    for shown in (text.stdout, run_script("mcp-runner-list.sh", repo=repo, env=env).stdout):
        assert not any(ch in shown for ch in "\x1b\x07\r\u202e"), shown
    as_json = run_script("mcp-runner-poll.sh", run_id, "--format", "json", repo=repo, env=env)
    assert json.loads(as_json.stdout)["commands"][0]["summary"] == record["commands"][0]["summary"]
    assert "\\u001b[2J" in as_json.stdout  # JSON escapes them itself


def test_the_metrics_table_escapes_a_status_from_metrics_json(repo: Path) -> None:
    metrics_file = repo / ".runs" / "0001" / "metrics.json"
    metrics_file.parent.mkdir(parents=True)
    line = {"run_id": "r", "task_id": "0001", "status": "\x1b[2Jgone", "started_at": None, "completed_at": None}
    metrics_file.write_text(json.dumps(line) + "\n")
    table = run_script("mcp-runner-metrics.js", "--format", "table", repo=repo, env=local_env(repo))
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout and "Status \\x1b[2Jgone" in table.stdout


def test_views_cut_a_huge_field(repo: Path) -> None:
    path = make_run(repo, status="failed", completed_at="2026-01-02T03:04:06.000Z")
    record = json.loads(path.read_bytes())
    record["summary"] = "s" * 10_000_000
    record["commands"][0]["command"] = "c" * 5_000_000
    store.write_json(path, record)
    env = env_of(repo)
    cut_note = "… (cut: 10000000 characters in all)"
    text = run_script("mcp-runner-poll.sh", RUN_ID, repo=repo, env=env)
    assert text.returncode == 0 and len(text.stdout) < 200_000
    assert cut_note in text.stdout and "… (cut: 5000000 characters in all)" in text.stdout
    listed = run_script("mcp-runner-list.sh", "--format", "json", repo=repo, env=env)
    assert listed.returncode == 0 and len(listed.stdout) < 100_000
    assert json.loads(listed.stdout)["runs"][0]["summary"].endswith(cut_note)
    report = run_script("mcp-runner-report.sh", repo=repo, env=env)
    assert report.returncode == 0, report.stderr
    assert (repo / ".runs" / "0001" / "report.html").stat().st_size < 500_000
    # JSON output keeps the value whole (it is for programs, and safe).
    shown = run_script("mcp-runner-poll.sh", RUN_ID, "--format", "json", repo=repo, env=env)
    assert json.loads(shown.stdout)["commands"][0]["command"] == record["commands"][0]["command"]
