"""Test helper: make a run directory the way start does and launch the real worker.

``create_run`` writes what start writes, in its order (manifest, ``.resume-token``,
``.heartbeat``, compatibility pointer); ``launch_worker`` spawns
``python -m mcp_core.worker <run dir>`` as start does (repo root as cwd, new
session, stdin from /dev/null, stdout+stderr appended to ``runner.log``, the
``MCP_RUNNER_*`` roots absolute) and saves ``runner_pid``/``in_progress``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonlines
from conftest import runner_env

from mcp_core import manifest as manifest_mod
from mcp_core import pointers, run_record, store
from mcp_core.jsfmt import iso_now, stamp
from mcp_core.launch import worker_env
from mcp_core.paths import Locations, locate

HERE = Path(__file__).resolve().parent
MISBEHAVING = HERE / "servers" / "misbehaving"


@dataclass
class Run:
    loc: Locations
    run_id: str
    env: dict[str, str]

    @property
    def run_dir(self) -> Path:
        return self.loc.run_dir(self.run_id)

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / manifest_mod.MANIFEST_NAME

    def manifest(self) -> dict[str, Any]:
        data = store.read_json(self.manifest_path)
        assert isinstance(data, dict)
        return data

    def log_text(self) -> str:
        return (self.run_dir / "runner.log").read_text(encoding="utf-8", errors="replace")

    def metrics_lines(self) -> list[str]:
        path = self.loc.metrics_file
        if not path.exists():
            return []
        return [line for line in path.read_text(encoding="utf-8").splitlines() if self.run_id in line]


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The entries of a metrics.json (JSON Lines); none before a run has ended."""
    if not path.exists():
        return []
    with jsonlines.open(path) as reader:
        return list(reader)


def repo_metrics(repo: Path, task: str = "0001") -> list[dict[str, Any]]:
    """The entries of a repository's metrics.json at its default place."""
    return read_metrics(repo / ".runs" / task / "metrics.json")


def misbehaving_server(mode: str, *extra: str) -> str:
    """An MCP_RUNNER_SERVER value for the raw misbehaving test server."""
    return " ".join([sys.executable, str(MISBEHAVING / "rawserver.py"), mode, *extra])


def create_run(
    repo: Path,
    commands: list[str],
    *,
    timeout: float = 60,
    approval_policy: str = "never",
    server: str = "local",
    **extra_env: str,
) -> Run:
    env = runner_env(repo, MCP_RUNNER_SERVER=server, **extra_env)
    loc = locate(env)
    now = iso_now()
    run_id = f"{stamp(now)}-{os.getpid()}{secrets.token_hex(2)}"
    run_dir = loc.run_dir(run_id)
    run_dir.mkdir(parents=True)
    token = secrets.token_hex(32)
    manifest = manifest_mod.new_manifest(
        loc, run_id, commands, approval_policy=approval_policy, timeout_seconds=timeout, now=now, resume_token=token
    )
    store.write_json(run_dir / manifest_mod.MANIFEST_NAME, manifest)
    store.atomic_write_text(run_dir / ".resume-token", token + "\n", 0o600)
    store.atomic_write_text(run_dir / ".heartbeat", now + "\n")
    pointers.create_pointer(loc, run_id, now)
    return Run(loc, run_id, env)


def launch_worker(run: Run) -> subprocess.Popen[bytes]:
    env = worker_env(run.loc, run.env)
    log_fd = os.open(run.run_dir / "runner.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "mcp_core.worker", str(run.run_dir)],
            cwd=run.loc.repo_root,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            env=env,
        )
    finally:
        os.close(log_fd)

    def started(manifest: dict[str, Any]) -> bool:
        if manifest_mod.is_terminal(manifest):
            return False  # start and resume never launch a worker for an ended run
        manifest["runner_pid"] = worker.pid
        manifest["status"] = "in_progress"
        return True

    run_record.update(run.manifest_path, started)
    return worker


def run_worker(run: Run, timeout: float = 60) -> int:
    """Launch the worker and wait for it; its exit status."""
    worker = launch_worker(run)
    try:
        return worker.wait(timeout=timeout)
    finally:
        stop_worker(worker)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """A test's last word on a worker it launched: its group killed if it still runs."""
    if worker.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (from /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry))
    return members
