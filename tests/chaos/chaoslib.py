"""Helpers of the fault-injection and soak tests: the processes of a repository
(from /proc), waiting for them to end, and the invariants of a ``.runs`` tree.

Sizes come from the environment so that ``make chaos`` can run bigger than CI:
CHAOS_DRIVERS, CHAOS_KILLS, CHAOS_SAVE_KILLS, CHAOS_SERVERS, CHAOS_SEED,
SOAK_RUNS, SOAK_SECONDS, SOAK_POLLERS (see the README, "Guarantees");
CHAOS_SETTLE_SECONDS bounds every wait for processes to end (default 120). Every test prints its
figures (kills survived, runs, polls, duration, corruptions) on one
``CHAOS-FIGURES`` line; ``pytest -s`` shows them.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_core.jsfmt import dumps_compact

HERE = Path(__file__).resolve().parent
TINY_SERVER = HERE / "tiny_server.py"
SETTLE_SECONDS = float(os.environ.get("CHAOS_SETTLE_SECONDS", "120"))


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def tiny_server(gate: Path | None = None) -> str:
    """An MCP_RUNNER_SERVER value for tiny_server.py (optionally gated on a file)."""
    words = [sys.executable, str(TINY_SERVER)]
    if gate is not None:
        words += ["--gate", str(gate)]
    return " ".join(words)


def figures(name: str, **values: Any) -> str:
    line = f"CHAOS-FIGURES {name}: " + ", ".join(f"{k}={v}" for k, v in values.items())
    print(line)
    sys.stdout.flush()
    return line


# --- processes ----------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str
    argv: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{self.pid} [{self.state}] {' '.join(self.argv)[:160]}"

    def is_worker(self) -> bool:
        return "mcp_core.worker" in self.argv

    def is_server(self) -> bool:
        return "mcp_core.servers.local" in self.argv or any(a.endswith("tiny_server.py") for a in self.argv)

    def is_command(self) -> bool:
        return len(self.argv) >= 2 and self.argv[0] == "bash" and self.argv[1] == "-c"


def _stat(pid: str) -> tuple[str, int, int] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[2])


def processes(marker: str) -> list[Proc]:
    """Live (not zombie) processes whose environment holds the entry ``marker``
    (e.g. ``MCP_RUNNER_REPO_ROOT=/tmp/...``): every CLI, worker, MCP server
    and command of a test repository inherits it."""
    needle = b"\0" + marker.encode() + b"\0"
    found = []
    own = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = b"\0" + handle.read()
        except OSError:
            continue
        if needle not in environ + b"\0":
            continue
        stat = _stat(entry)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = tuple(a.decode(errors="replace") for a in handle.read().split(b"\0") if a)
        except OSError:
            continue
        found.append(Proc(int(entry), stat[1], stat[2], stat[0], argv))
    return found


# A process is invisible for a moment while it execs (its environ reads empty):
# "none left" counts only when it holds over this many scans, 50 ms apart.
_EMPTY_SCANS = 4


def wait_quiet(marker: str, timeout: float = SETTLE_SECONDS) -> float:
    """Wait until no process carries ``marker``; fail naming the orphans. Returns the wait."""
    started = time.monotonic()
    empty = 0
    while True:
        left = processes(marker)
        empty = 0 if left else empty + 1
        if empty >= _EMPTY_SCANS:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(
                f"orphan processes {timeout:g}s after the run should have stopped:\n"
                + "\n".join(p.text for p in left)
            )
        time.sleep(0.05)


def wait_process(marker: str, pick: Callable[[Proc], bool], timeout: float = SETTLE_SECONDS) -> Proc | None:
    """The first process carrying ``marker`` that ``pick`` accepts; None when every
    process of the marker has ended first (the moment has passed)."""
    deadline = time.monotonic() + timeout
    empty = 0
    while time.monotonic() < deadline:
        procs = processes(marker)
        for proc in procs:
            if pick(proc):
                return proc
        empty = 0 if procs else empty + 1
        if empty >= _EMPTY_SCANS:
            return None
        time.sleep(0.05 if empty else 0.02)
    raise AssertionError(f"no matching process within {timeout:g}s: " + "; ".join(p.text for p in processes(marker)))


def wait_stopped(process: subprocess.Popen[bytes], timeout: float = SETTLE_SECONDS) -> bool:
    """Wait until ``process`` has stopped itself at a fault point (True) or exited (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stat = _stat(str(process.pid))
        if stat is not None and stat[0] == "T":
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    raise AssertionError(f"process {process.pid} neither stopped nor ended within {timeout:g}s")


def sigkill(pid: int, group: bool = False) -> bool:
    try:
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


# --- the .runs tree -------------------------------------------------------------


@dataclass
class TreeReport:
    json_files: int = 0
    temp_files: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    cut_metrics_lines: list[bytes] = field(default_factory=list)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)


def metrics_entries(path: Path, cut: list[bytes] | None = None) -> list[dict[str, Any]]:
    """Every line of metrics.json, each required to be one whole JSON object, no
    ending twice. Read under a shared lock, as the summary reads it: appends
    hold the exclusive one, and a line crossing a page boundary is visible half
    written to a reader without the lock.

    The one exception, collected in ``cut``: a line a SIGKILL cut short in the
    middle of its append, provided the same line was then written whole."""
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        raw = handle.read()
    entries, broken = [], []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line:
            continue
        try:
            value = json.loads(line)
        except ValueError:
            broken.append((number, line))
            continue
        assert isinstance(value, dict), f"{path} line {number} is not an object: {line[:200]!r}"
        entries.append(value)
    # A whole line up to its recorded_at (a line written again differs only there).
    heads = [dumps_compact(e).encode()[: dumps_compact(e).find('"recorded_at"')] for e in entries]
    for number, line in broken:
        if not any(line[: len(head)] == head[: len(line)] for head in heads):
            raise AssertionError(f"{path} line {number} is not JSON: {line[:200]!r}")
        if cut is not None:
            cut.append(line)
    endings = Counter((e.get("run_id"), e.get("completed_at")) for e in entries)
    repeated = [key for key, count in endings.items() if count > 1]
    assert not repeated, f"metrics lines recorded twice for one ending: {repeated}"
    return entries


def check_tree(repo: Path, task: str = "0001") -> TreeReport:
    """Every JSON file under .runs parses (symlinks followed), every
    ``.resume-token`` is owner-only, metrics.json holds whole, distinct lines.
    Temporary files left by a killed writer are listed, not failed."""
    report = TreeReport()
    runs = repo / ".runs"
    metrics_file = runs / task / "metrics.json"
    for path in sorted(runs.rglob("*")):
        if path == metrics_file:
            continue
        if path.name.endswith(".tmp"):
            report.temp_files.append(str(path.relative_to(repo)))
            continue
        if path.name == ".resume-token":
            mode = path.stat().st_mode & 0o777
            assert mode == 0o600, f"{path} has mode {mode:o}, not 600"
            continue
        if path.suffix != ".json" or not path.exists():
            continue
        try:
            value = json.loads(path.read_bytes())
        except ValueError as exc:
            raise AssertionError(f"torn or invalid JSON file {path}: {exc}") from None
        report.json_files += 1
        if path.name == "manifest.json" and path.parent.parent.name == "mcp" and isinstance(value, dict):
            report.manifests[path.parent.name] = value
    report.metrics = metrics_entries(metrics_file, report.cut_metrics_lines)
    return report


def counter_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0
