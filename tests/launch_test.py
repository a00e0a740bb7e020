"""The launch contract the worker relies on, checked on a real spawned probe process."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from mcp_core import launch, process
from mcp_core.paths import locate

PROBE = r"""
import json, os, sys, time
run_dir = sys.argv[-1]
fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
report = {
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "pid": os.getpid(),
    "sid": os.getsid(0),
    "pgid": os.getpgrp(),
    "stdin": os.readlink("/proc/self/fd/0"),
    "stdout": os.readlink("/proc/self/fd/1"),
    "stderr": os.readlink("/proc/self/fd/2"),
    "fds": fds,
    "env": {k: v for k, v in os.environ.items() if k.startswith(("MCP_RUNNER_", "PROBE_"))},
}
with open(os.path.join(run_dir, "probe.tmp"), "w") as handle:
    json.dump(report, handle)
os.replace(os.path.join(run_dir, "probe.tmp"), os.path.join(run_dir, "probe.json"))
print("probe stdout line", flush=True)
print("probe stderr line", file=sys.stderr, flush=True)
deadline = time.time() + 30
while not os.path.exists(os.path.join(run_dir, "go")) and time.time() < deadline:
    time.sleep(0.02)
"""


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.fixture
def probe(tmp_path: Path) -> list[str]:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    return [sys.executable, str(script)]


def test_worker_command_is_the_worker_module_of_this_interpreter() -> None:
    assert launch.worker_command() == [sys.executable, "-m", "mcp_core.worker"]


def test_worker_env_is_the_whole_environment_plus_absolute_locations(repo: Path) -> None:
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo), "MCP_RUNNER_TASK_RUNS_ROOT": "rel/runs"}, cwd=repo)
    env = launch.worker_env(loc, {"HOME": "/h", "OPENAI_API_KEY": "k", "MCP_RUNNER_TASK_RUNS_ROOT": "rel/runs"})
    assert env["HOME"] == "/h" and env["OPENAI_API_KEY"] == "k"
    assert env["MCP_RUNNER_REPO_ROOT"] == str(repo)
    assert env["MCP_RUNNER_TASK_ID"] == "0001"
    assert env["MCP_RUNNER_TASK_RUNS_ROOT"] == str(repo / "rel" / "runs")
    assert env["MCP_RUNNER_LEGACY_ROOT"] == str(repo / ".runs" / "local-mcp")
    assert env["MCP_RUNNER_METRICS_ROOT"] == str(repo / ".runs" / "0001")
    for name in ("REPO_ROOT", "TASK_RUNS_ROOT", "LEGACY_ROOT", "METRICS_ROOT"):
        assert os.path.isabs(env[f"MCP_RUNNER_{name}"])


def test_worker_env_makes_the_package_importable_from_any_repo(repo: Path) -> None:
    """Wherever the repo is, `python -m mcp_core...` started there finds this package."""
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    env = launch.worker_env(loc, {k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    import subprocess

    found = subprocess.run(
        [sys.executable, "-c", "import mcp_core, os; print(os.path.realpath(mcp_core.__file__))"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert found == os.path.realpath(launch.__file__).replace("launch.py", "__init__.py")


def test_spawn_is_detached_logged_and_not_waited_for(repo: Path, probe: list[str]) -> None:
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    run_dir = loc.run_dir("r1")
    run_dir.mkdir(parents=True)
    launched = launch.launch_worker(loc, run_dir, {"PROBE_MARK": "yes", "PATH": os.environ["PATH"]}, program=probe)

    # launch returned while the probe still waits for its go file
    assert launched.start_ticks == process.start_ticks(launched.pid)
    assert process.is_alive(launched.pid, launched.start_ticks)
    assert (run_dir / "runner.log").exists()
    wait_for((run_dir / "probe.json").exists)
    report = json.loads((run_dir / "probe.json").read_text())
    (run_dir / "go").touch()

    assert report["argv"][1:] == [str(run_dir)]
    assert report["cwd"] == str(repo)
    assert report["pid"] == launched.pid
    assert report["sid"] == launched.pid == report["pgid"]  # a session of its own
    assert report["stdin"] == "/dev/null"
    assert report["stdout"] == report["stderr"] == str(run_dir / "runner.log")
    assert report["fds"] == [0, 1, 2, 3]  # nothing inherited but the three (3: listdir's own)
    assert report["env"]["PROBE_MARK"] == "yes"
    assert report["env"]["MCP_RUNNER_REPO_ROOT"] == str(repo)
    assert report["env"]["MCP_RUNNER_TASK_RUNS_ROOT"] == str(loc.runs_root)

    # reaped by launch's thread: no zombie stays behind in a long-lived caller
    wait_for(lambda: not os.path.exists(f"/proc/{launched.pid}"))
    assert not process.is_alive(launched.pid, launched.start_ticks)


def test_runner_log_is_appended_across_launches(repo: Path, probe: list[str]) -> None:
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    run_dir = loc.run_dir("r2")
    run_dir.mkdir(parents=True)
    (run_dir / "go").touch()
    (run_dir / "runner.log").write_text("earlier\n")
    for _ in range(2):
        launched = launch.launch_worker(loc, run_dir, program=probe)
        wait_for(lambda pid=launched.pid: not os.path.exists(f"/proc/{pid}"))
    log = (run_dir / "runner.log").read_text()
    assert log.startswith("earlier\n")
    assert log.count("probe stdout line\n") == 2
    assert log.count("probe stderr line\n") == 2


def test_spawn_failure_raises_oserror(repo: Path) -> None:
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    run_dir = loc.run_dir("r3")
    run_dir.mkdir(parents=True)
    with pytest.raises(OSError):
        launch.launch_worker(loc, run_dir, program=[str(repo / "no-such-program")])
    assert (run_dir / "runner.log").exists()
