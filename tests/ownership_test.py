"""Who may change a run, and when (mcp_core/run_record.py), each fault of issue 10 as a
deterministic test: real workers, real servers, real signals, fault points instead of sleeps."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CHECKOUT, SCRIPTS, run_script, runner_env
from runs import Run, create_run, group_members, pid_alive, wait_for

from mcp_core import launch, run_record
from mcp_core.jsfmt import iso_from_ms, now_ms


def _unshare_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


UNSHARE = _unshare_works()
needs_unshare = pytest.mark.skipif(not UNSHARE, reason="unshare --pid needs root")


def waiting(repo: Path, index: int) -> str:
    """A command that says it started, then waits for its go file."""
    return (
        f"echo {index} >> {repo}/started; echo $$ > {repo}/pgid{index}; "
        f"while [ ! -e {repo}/go{index} ]; do sleep 0.05; done"
    )


def started(repo: Path) -> list[str]:
    path = repo / "started"
    return path.read_text().split() if path.exists() else []


def tune(run: Run, **fields: Any) -> None:
    run_record.update(run.manifest_path, lambda record: record.update(fields))


def launch_bare(run: Run, **extra_env: str) -> subprocess.Popen[bytes]:
    """The worker as start launches it, without saving anything itself (the
    worker takes a run whose runner_pid is null when it connects)."""
    env = launch.worker_env(run.loc, {**run.env, **extra_env})
    log_fd = os.open(run.run_dir / "runner.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        return subprocess.Popen(
            [*launch.worker_command(), str(run.run_dir)],
            cwd=run.loc.repo_root, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
            start_new_session=True, env=env,
        )  # fmt: skip
    finally:
        os.close(log_fd)


def process_state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    return raw[raw.rfind(b")") + 2 :].split()[0].decode()


def pending_signals(pid: int) -> tuple[int, int]:
    """(thread-pending, process-pending) signal masks from /proc/<pid>/status."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    return int(fields["SigPnd"], 16), int(fields["ShdPnd"], 16)


@pytest.fixture
def cleanup() -> Iterator[list[subprocess.Popen[Any]]]:
    """Processes a test started: none outlives it."""
    started_procs: list[subprocess.Popen[Any]] = []
    yield started_procs
    for proc in started_procs:
        if proc.poll() is None:
            for signum in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, signum)
                except (ProcessLookupError, PermissionError):
                    os.kill(proc.pid, signum)
            proc.wait()


def cancel_out_of_sight(run: Run) -> subprocess.CompletedProcess[str]:
    """The cancel wrapper in a PID namespace of its own: the worker's pid is not visible there."""
    return subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", str(SCRIPTS / "mcp-runner-cancel.sh"), run.run_id],
        cwd=run.loc.repo_root, env=run.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def assert_cancelled_once(run: Run) -> dict[str, Any]:
    record = run.manifest()
    assert record["status"] == "cancelled" and record["metrics_recorded"] is True
    assert len(run.metrics_lines()) == 1
    return record


# -- 1. a cancel the worker cannot be signalled for ---------------------------------------


@needs_unshare
def test_a_cancel_out_of_sight_stops_the_worker_at_its_next_command_boundary(
    repo: Path, cleanup: list[subprocess.Popen[Any]]
) -> None:
    run = create_run(repo, [waiting(repo, n) for n in range(1, 7)])
    tune(run, heartbeat_interval_seconds=3600)  # only the boundary can tell the worker
    worker = launch_bare(run)
    cleanup.append(worker)
    wait_for(lambda: started(repo) == ["1"])

    result = cancel_out_of_sight(run)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Cancelled run {run.run_id}.\n")
    (repo / "go1").touch()  # the command in flight ends: the worker is at a boundary
    assert worker.wait(timeout=60) == 1
    for n in range(2, 7):
        (repo / f"go{n}").touch()
    assert started(repo) == ["1"]  # no command started after the cancel returned
    record = assert_cancelled_once(run)
    assert [c["status"] for c in record["commands"]] == ["failed"] + ["pending"] * 5
    assert "no longer this worker's (the run is cancelled)" in run.log_text()
    wait_for(lambda: not pid_alive(record["mcp_server"]["pid"]))


@needs_unshare
def test_a_cancel_out_of_sight_stops_the_command_in_flight_within_a_heartbeat(
    repo: Path, cleanup: list[subprocess.Popen[Any]]
) -> None:
    run = create_run(repo, [waiting(repo, 1), waiting(repo, 2)])
    tune(run, heartbeat_interval_seconds=0.2)
    worker = launch_bare(run)
    cleanup.append(worker)
    wait_for(lambda: started(repo) == ["1"] and (repo / "pgid1").read_text().strip())
    command_group = int((repo / "pgid1").read_text())

    assert cancel_out_of_sight(run).returncode == 0
    assert worker.wait(timeout=60) == 1  # nobody touches go1: the heartbeat noticed
    wait_for(lambda: group_members(command_group) == [])
    assert started(repo) == ["1"]
    assert_cancelled_once(run)


def test_a_worker_whose_run_was_taken_stops_without_writing(repo: Path, cleanup: list[subprocess.Popen[Any]]) -> None:
    """Another live process is the run's runner now: the worker's next change is refused."""
    run = create_run(repo, [waiting(repo, 1), waiting(repo, 2)])
    worker = launch_bare(run)
    cleanup.append(worker)
    wait_for(lambda: started(repo) == ["1"])
    other = subprocess.Popen(["sleep", "600"], start_new_session=True)
    cleanup.append(other)
    tune(run, runner_pid=other.pid, runner_start_ticks=None)
    before = run.manifest()
    (repo / "go1").touch()
    assert worker.wait(timeout=60) == 1
    (repo / "go2").touch()
    assert started(repo) == ["1"]
    after = run.manifest()
    assert after == before  # nothing written by the worker that lost the run
    assert "no longer this worker's (the run was taken by PID" in run.log_text()


def test_still_owned_trusts_its_own_last_save_only_until_someone_else_saves(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a command boundary the worker asks whether the run is still its own: after
    its own save it answers without reading the manifest, after anyone else's it reads."""
    run = create_run(repo, ["true", "true"])
    me = run_record.Identity.me()
    tune(run, status="in_progress", runner_pid=me.pid, runner_start_ticks=me.ticks)
    run_record.command_running(run.manifest_path, me, 0, iso_from_ms(now_ms()))
    reads: list[object] = []
    real_read_json = run_record.store.read_json

    def read_json(path: Path, **options: Any) -> Any:
        reads.append(path)
        return real_read_json(path, **options)

    monkeypatch.setattr(run_record.store, "read_json", read_json)
    run_record.still_owned(run.manifest_path, me)
    assert reads == []
    # another process takes the run (its own save: not noted here)
    other = subprocess.run(
        [sys.executable, "-c", "import sys, pathlib; from mcp_core import run_record; run_record.update("
         "pathlib.Path(sys.argv[1]), lambda r: r.update(runner_pid=1, runner_start_ticks=None))",
         str(run.manifest_path)],
        cwd=CHECKOUT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    with pytest.raises(run_record.NotOwner, match="taken by PID 1"):
        run_record.still_owned(run.manifest_path, me)
    assert reads == [run.manifest_path]


# -- 2. cancel never signals a resume ------------------------------------------------------


def dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def test_cancel_while_resume_holds_the_run_never_signals_it_and_the_audit_stays_true(
    repo: Path, cleanup: list[subprocess.Popen[Any]]
) -> None:
    run = create_run(repo, ["true"])
    tune(run, status="in_progress", runner_pid=dead_pid(), runner_start_ticks=1)
    resume = subprocess.Popen(
        [str(SCRIPTS / "mcp-runner-start.sh"), "--resume", run.run_id],
        cwd=repo, env={**run.env, "MCP_RUNNER_TEST_PAUSE": "resume-claimed"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    cleanup.append(resume)
    wait_for(lambda: process_state(resume.pid) == "T")  # stopped, holding its claim
    claim = run.manifest()["resume_claim"]
    assert claim["pid"] == resume.pid and run.manifest()["runner_pid"] != resume.pid

    cancelled = run_script("mcp-runner-cancel.sh", run.run_id, repo=repo, env=run.env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert pending_signals(resume.pid) == (0, 0)  # cancel sent it nothing
    os.kill(resume.pid, signal.SIGCONT)
    out, err = resume.communicate(timeout=60)
    assert (resume.returncode, out, err) == (1, "", f"Run {run.run_id} is already cancelled; cannot resume.\n")
    record = assert_cancelled_once(run)
    assert [(e["outcome"], e["detail"]) for e in record["resume_events"]] == [("blocked", "terminal-status:cancelled")]
    assert record["resume_claim"] is None


# -- 3. start never launches a worker for a run that has ended ------------------------------


def test_a_cancel_between_creation_and_launch_is_never_undone(repo: Path, cleanup: list[subprocess.Popen[Any]]) -> None:
    env = runner_env(repo, MCP_RUNNER_SERVER="local")
    start = subprocess.Popen(
        [str(SCRIPTS / "mcp-runner-start.sh"), "--command", f"touch {repo}/ran"],
        cwd=repo, env={**env, "MCP_RUNNER_TEST_PAUSE": "run-created"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    cleanup.append(start)
    wait_for(lambda: process_state(start.pid) == "T")
    (run_id,) = os.listdir(repo / ".runs/0001/mcp")
    cancelled = run_script("mcp-runner-cancel.sh", run_id, repo=repo, env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    os.kill(start.pid, signal.SIGCONT)
    out, err = start.communicate(timeout=60)
    assert (start.returncode, out, err) == (1, "", f"Run {run_id} ended before its worker was launched.\n")
    record = json.loads((repo / ".runs/0001/mcp" / run_id / "manifest.json").read_text())
    assert (record["status"], record["runner_pid"]) == ("cancelled", None)
    assert not (repo / "ran").exists()


# -- 4. watching a dead run ends ----------------------------------------------------------


def watch(run: Run, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SCRIPTS / "mcp-runner-poll.sh"), run.run_id, "--watch", "--interval", "3600", *args],
        cwd=run.loc.repo_root, env=run.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def test_a_watch_ends_as_soon_as_the_run_ends_whatever_the_interval(
    repo: Path, cleanup: list[subprocess.Popen[Any]]
) -> None:
    run = create_run(repo, [waiting(repo, 1)])
    worker = launch_bare(run)
    cleanup.append(worker)
    wait_for(lambda: started(repo) == ["1"])
    watcher = watch(run)
    cleanup.append(watcher)
    (repo / "go1").touch()
    out, err = watcher.communicate(timeout=60)  # an hour's interval: the watch saw the file change
    assert (watcher.returncode, err) == (0, "")
    assert out.split(f"\nRun {run.run_id} status: ")[-1].startswith("succeeded\n")
    assert worker.wait(timeout=60) == 0


def test_a_watch_of_a_killed_worker_ends_with_how_to_resume(repo: Path, cleanup: list[subprocess.Popen[Any]]) -> None:
    run = create_run(repo, [waiting(repo, 1)])
    worker = launch_bare(run)
    cleanup.append(worker)
    wait_for(lambda: started(repo) == ["1"])
    watcher = watch(run, "--format", "json")
    cleanup.append(watcher)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0
    assert err == (
        f"The worker of run {run.run_id} is no longer running. "
        f"Resume it with: scripts/mcp-runner-start.sh --resume {run.run_id}\n"
    )
    last = json.loads("{" + out.split("\n{")[-1] if out.count("\n{") else out)
    assert last["status"] == "in_progress"
    (repo / "go1").touch()


# -- 5. a frozen lock holder hangs nobody -----------------------------------------------------


def test_a_worker_frozen_with_the_lock_held_blocks_no_reader_and_writers_name_it(
    repo: Path, cleanup: list[subprocess.Popen[Any]]
) -> None:
    run = create_run(repo, [waiting(repo, 1)])
    tune(run, heartbeat_at=iso_from_ms(now_ms() - 120_000))  # stale: poll would mark it
    worker = launch_bare(run, MCP_RUNNER_TEST_PAUSE="in-manifest-save:1")
    cleanup.append(worker)
    wait_for(lambda: process_state(worker.pid) == "T")  # stopped inside its first save
    before = run.manifest_path.read_bytes()

    polled = run_script("mcp-runner-poll.sh", run.run_id, repo=repo, env=run.env)
    assert (polled.returncode, polled.stderr) == (0, "")
    assert "Status detail: stale-heartbeat\n" in polled.stdout and "(STALE)" in polled.stdout
    listed = run_script("mcp-runner-list.sh", "--format", "json", repo=repo, env=run.env)
    assert listed.returncode == 0, listed.stderr

    quick = {**run.env, "MCP_RUNNER_LOCK_WAIT_SECONDS": "0.5"}
    resumed = run_script("mcp-runner-start.sh", "--resume", run.run_id, repo=repo, env=quick)
    assert resumed.returncode == 1 and resumed.stdout == ""
    assert resumed.stderr.count("\n") == 1 and "Traceback" not in resumed.stderr
    assert f"is locked by process {worker.pid} (waited 0.5s)" in resumed.stderr
    assert run.manifest_path.read_bytes() == before

    os.kill(worker.pid, signal.SIGCONT)
    wait_for(lambda: started(repo) == ["1"])
    (repo / "go1").touch()
    assert worker.wait(timeout=60) == 0


# -- 6. no traceback reaches the terminal ------------------------------------------------------


@pytest.mark.parametrize("command", [("mcp-runner-poll.sh", "RUN"), ("mcp-runner-cancel.sh", "RUN"),
                                     ("mcp-runner-start.sh", "--resume", "RUN"), ("mcp-runner-list.sh",)])  # fmt: skip
def test_a_runs_root_whose_name_is_too_long_is_one_line(repo: Path, command: tuple[str, ...]) -> None:
    env = runner_env(repo, MCP_RUNNER_TASK_RUNS_ROOT=str(repo / ("x" * 300) / "mcp"))
    run_id = "2025-10-18T18-26-16-688Z-39463"
    result = run_script(*(run_id if part == "RUN" else part for part in command), repo=repo, env=env)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


WITHOUT_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
@pytest.mark.parametrize("command", [("mcp-runner-poll.sh", "RUN"), ("mcp-runner-cancel.sh", "RUN"),
                                     ("mcp-runner-start.sh", "--resume", "RUN")])  # fmt: skip
def test_a_directory_it_may_not_read_is_one_line(repo: Path, command: tuple[str, ...]) -> None:
    """A run directory the command may not enter (EACCES): root without its
    capability to bypass file permissions, as any other user would be."""
    run = create_run(repo, ["true"])
    run.run_dir.chmod(0)
    try:
        args = [run.run_id if part == "RUN" else part for part in command]
        result = subprocess.run(
            [*WITHOUT_DAC, str(SCRIPTS / args[0]), *args[1:]],
            cwd=repo, env=run.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        run.run_dir.chmod(0o755)
    assert result.returncode == 1 and result.stdout == "", result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    if command[0] != "mcp-runner-poll.sh":  # poll looks the run up where it may not look: "not found"
        assert "Permission denied" in result.stderr


def test_an_unexpected_error_is_one_line_with_its_traceback_in_a_log(tmp_path: Path, repo: Path) -> None:
    code = (
        "import sys; sys.argv[0] = 'mcp-runner-poll'\n"
        "from mcp_core.output import run_cli\n"
        "def body():\n    raise KeyError('boom')\n"
        "sys.exit(run_cli(body))\n"
    )
    logs = tmp_path / "logs"
    env = {**os.environ, "MCP_RUNNER_ERROR_LOG_DIR": str(logs), "PYTHONPATH": str(CHECKOUT)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (log,) = logs.iterdir()
    assert result.stderr == f"mcp-runner-poll failed: KeyError: 'boom' (traceback in {log})\n"
    assert "Traceback (most recent call last)" in log.read_text() and "KeyError: 'boom'" in log.read_text()


# -- 7. a full disk (issue 14, point 7) and a read-only one ---------------------------------------


def test_a_full_disk_does_not_kill_the_worker_silently(repo: Path, cleanup: list[subprocess.Popen[Any]]) -> None:
    """A command printing 2 MB into a 1 MB .runs: the worker cannot record the
    command, says so in .heartbeat, waits for space, and the run ends visibly
    (failed, with the reason) once there is space again."""
    from hostile_test import mounted

    runs = repo / ".runs"
    runs.mkdir()
    with mounted(runs, "-t", "tmpfs", "-o", "size=1m", "tmpfs"):
        run = create_run(repo, ["head -c 2000000 /dev/zero | tr '\\0' x; echo; echo done", "echo second"])
        worker = launch_bare(run)
        cleanup.append(worker)
        note = "cannot record the run: No space left on device; retrying until there is space"
        wait_for(lambda: note in (run.run_dir / ".heartbeat").read_text(), timeout=60)
        assert worker.poll() is None  # alive, not dead of a failed write
        assert run.manifest()["status"] == "in_progress"
        os.truncate(run.run_dir / "runner.log", 0)  # space returns
        assert worker.wait(timeout=60) == 1
        record = run.manifest()
        assert (record["status"], record["status_detail"]) == ("failed", "tool-invocation-error")
        first, second = record["commands"]
        assert first["status"] == "failed" and "No space left on device" in first["summary"]
        assert second["status"] == "pending"
        assert record["metrics_recorded"] is True and len(run.metrics_lines()) == 1


def test_cancel_on_a_read_only_runs_says_what_it_did(repo: Path, cleanup: list[subprocess.Popen[Any]]) -> None:
    """The worker is stopped but the run cannot be written: cancel says exactly that,
    and a cancel once the directory is writable again records the run cancelled."""
    from hostile_test import read_only

    run = create_run(repo, [waiting(repo, 1)])
    worker = launch_bare(run)
    cleanup.append(worker)
    wait_for(lambda: started(repo) == ["1"])
    with read_only(repo / ".runs"):
        result = run_script("mcp-runner-cancel.sh", run.run_id, repo=repo, env=run.env)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith(
            f"Cancel failed: the worker of run {run.run_id} (PID {worker.pid}) was stopped, but the run cannot be "
            "recorded as cancelled: Read-only file system: .runs/0001/mcp/"
        )
        assert result.stderr.endswith(". Run cancel again once it can be written.\n")
        assert worker.wait(timeout=60) == 1
        assert run.manifest()["status"] == "in_progress"
    again = run_script("mcp-runner-cancel.sh", run.run_id, repo=repo, env=run.env)
    assert again.returncode == 0, again.stderr
    assert_cancelled_once(run)


def manifest_writes_outside_run_record() -> list[str]:
    """Calls in mcp_core that write a file named by a manifest's name or path, other
    than in run_record (the one owner) and store (the writing itself)."""
    import ast

    writers = {"write_json", "update_json", "atomic_write_text"}
    found = []
    for path in sorted((CHECKOUT / "mcp_core").rglob("*.py")):
        if path.name in ("run_record.py", "store.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            target = ast.unparse(node.args[0])
            if name in writers and ("MANIFEST_NAME" in target or "manifest" in target.lower()):
                found.append(f"{path.relative_to(CHECKOUT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_only_run_record_writes_a_runs_manifest() -> None:
    assert manifest_writes_outside_run_record() == []
