"""What every benchmark shares: timing whole processes, their peak RSS, the floors, the report.

A benchmark times whole processes, as callers run them: each sample is one
process spawned with stdin from /dev/null and stdout/stderr into temporary
files, timed from just before the spawn to the moment ``wait4`` reaps it. The
peak RSS of a sample is ``ru_maxrss`` from that ``wait4`` (the child's own
peak across every ``exec`` of the chain, and the peak of any child it reaped),
in KiB on Linux.

Subjects and their floors (``.venv/bin/python -c pass``, ``bash -c true``) are
sampled in turn, round-robin, after the warm-up rounds, so that all of them see
the same load on a shared machine; the figures are the median, min and max of
each.

The scripts print a human-readable block; ``--json PATH`` also writes their
figures as JSON (what BENCHMARKS.md is made from). ``--smoke`` runs a tiny size
with one sample: CI runs that to keep the scripts working, and nothing in it
judges the timings.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent
SCRIPTS = CHECKOUT / "scripts"
_VENV_PYTHON = CHECKOUT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable
BASH = shutil.which("bash") or "/bin/bash"
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
MIB = 1024 * 1024

if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))


# --- one process ---------------------------------------------------------------


@dataclass
class Sample:
    wall: float  # seconds, spawn to reaped
    max_rss_kib: int
    cpu: float  # user + system seconds of the process and the children it reaped
    status: int  # exit code, or -signal
    stdout: bytes
    stderr: bytes


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 600,
    measure_rss: bool = False,
) -> Sample:
    """Spawn ``argv``, wait for it with ``wait4`` and return its wall time (and peak RSS).

    The wall time is exact only without ``measure_rss``. ``ru_maxrss`` of a child
    we spawn ourselves is useless: at its first ``exec`` the kernel records the
    high-water mark of the (v)forked copy of *this* process, so every child would
    report at least our own peak. With ``measure_rss`` the command runs under
    ``/usr/bin/time -f %M``, a small C program whose child starts from its own
    small image, and the figure is that child's peak (KiB); without /usr/bin/time
    the peak is reported as 0 (unknown).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(prefix="mcp-bench-rss-") as rss_file:
        command = list(argv)
        if measure_rss and GNU_TIME:
            command = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *command]
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, close_fds=True,
            env=clean_env() if env is None else env,
        )
        pid, status, usage = _wait4(process.pid, timeout)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not reap it again
        out.seek(0)
        err.seek(0)
        peak = 0
        if measure_rss and GNU_TIME:
            text = Path(rss_file.name).read_text().strip().splitlines()
            # time prints "Command exited with non-zero status N" before the figure
            peak = int(text[-1]) if text and text[-1].isdigit() else 0
        cpu = usage.ru_utime + usage.ru_stime
        return Sample(wall, peak, cpu, process.returncode, out.read(), err.read())


def _proc_kib(path: str, key: str) -> int:
    """The figure ``key`` of a /proc file in KiB; 0 when the process is gone."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def status_kib(pid: int, key: str) -> int:
    """A figure of /proc/PID/status in KiB (VmRSS, VmHWM)."""
    return _proc_kib(f"/proc/{pid}/status", key)


def pss_kib(pid: int) -> int:
    """The process's proportional set size in KiB (shared pages split between their users)."""
    return _proc_kib(f"/proc/{pid}/smaps_rollup", "Pss")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def tree_peaks(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None
) -> tuple[float, float]:
    """Run ``argv`` and sample it and its children every ~2 ms: the peaks (MiB) of
    their summed RSS (shared pages counted in each process: an upper bound) and of
    their summed PSS. For a command that forks helpers, where one process's figure says too little."""
    process = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd,
        env=clean_env() if env is None else env,
    )
    peak_rss = peak_pss = 0
    while process.poll() is None:
        pids = [process.pid, *children(process.pid)]
        peak_rss = max(peak_rss, sum(status_kib(pid, "VmRSS") for pid in pids))
        peak_pss = max(peak_pss, sum(pss_kib(pid) for pid in pids))
        time.sleep(0.002)
    if process.returncode:
        raise SystemExit(f"{argv[0]}: exit status {process.returncode}")
    return peak_rss / 1024, peak_pss / 1024


def _wait4(pid: int, timeout: float) -> tuple[int, int, Any]:
    """``wait4`` for our child, killing it after ``timeout`` seconds (a pidfd wakes us exactly)."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return os.wait4(pid, 0)


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until a process that is not our child has exited; False on timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


# --- many samples ----------------------------------------------------------------


@dataclass
class Subject:
    """One thing to time: a command line, with optional untimed set-up before each sample."""

    label: str
    argv: Sequence[str] | Callable[[], Sequence[str]]
    env: Mapping[str, str] | None = None
    cwd: str | Path | None = None
    before: Callable[[], None] | None = None  # untimed, before every sample
    after: Callable[[Sample], None] | None = None  # untimed, after every sample (checks, clean-up)
    expect_status: int | None = 0
    samples: list[Sample] = field(default_factory=list)

    rss_samples: list[Sample] = field(default_factory=list)

    def sample(self, measure_rss: bool = False) -> Sample:
        if self.before is not None:
            self.before()
        argv = self.argv() if callable(self.argv) else self.argv
        result = run_process(argv, env=self.env, cwd=self.cwd, measure_rss=measure_rss)
        if self.expect_status is not None and result.status != self.expect_status:
            raise SystemExit(
                f"{self.label}: exit status {result.status}, expected {self.expect_status}\n"
                f"stderr: {result.stderr.decode(errors='replace')[-2000:]}"
            )
        if self.after is not None:
            self.after(result)
        return result

    @property
    def walls(self) -> list[float]:
        return [s.wall for s in self.samples]

    def stats(self) -> Stats:
        return Stats.of(
            self.label,
            self.walls,
            [s.max_rss_kib for s in self.rss_samples if s.max_rss_kib],
            [s.cpu for s in self.samples],
        )


@dataclass
class Stats:
    label: str
    median: float
    min: float
    max: float
    peak_rss_mib: float | None
    runs: int
    cpu: float | None = None  # median user+system seconds

    @classmethod
    def of(
        cls, label: str, walls: Sequence[float], rss_kib: Sequence[int] = (), cpus: Sequence[float] = ()
    ) -> Stats:
        return cls(
            label,
            statistics.median(walls),
            min(walls),
            max(walls),
            max(rss_kib) / 1024 if rss_kib else None,
            len(walls),
            statistics.median(cpus) if cpus else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "median_s": self.median,
            "min_s": self.min,
            "max_s": self.max,
            "peak_rss_mib": self.peak_rss_mib,
            "runs": self.runs,
            "cpu_median_s": self.cpu,
        }


def round_robin(subjects: Sequence[Subject], runs: int, warmup: int, rss_runs: int = 3) -> list[Stats]:
    """Sample every subject in turn, ``warmup`` rounds discarded, then ``runs`` rounds kept;
    then ``rss_runs`` more rounds under /usr/bin/time for the peak RSS (not timed)."""
    for round_number in range(warmup + runs):
        for subject in subjects:
            result = subject.sample()
            if round_number >= warmup:
                subject.samples.append(result)
    for _ in range(min(rss_runs, runs)):
        for subject in subjects:
            subject.rss_samples.append(subject.sample(measure_rss=True))
    return [subject.stats() for subject in subjects]


def python_floor(env: Mapping[str, str] | None = None) -> Subject:
    return Subject("floor: .venv/bin/python -c pass", [PYTHON, "-c", "pass"], env=env or clean_env())


def bash_floor(env: Mapping[str, str] | None = None) -> Subject:
    return Subject("floor: bash -c true", [BASH, "-c", "true"], env=env or clean_env())


# --- inputs ----------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """Our environment without runner settings and without PYTHON* variables: a
    PYTHONDONTWRITEBYTECODE left in a developer's shell would make every run compile
    the changed modules again, PYTHONUNBUFFERED would slow large outputs."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MCP_RUNNER_", "PYTHON"))}


def runner_env(repo: Path, **extra: str) -> dict[str, str]:
    """The environment of a runner command against ``repo``, no inherited runner settings."""
    env = clean_env()
    env["MCP_RUNNER_REPO_ROOT"] = str(repo)
    env.update(extra)
    return env


@contextlib.contextmanager
def temp_repo(keep: bool = False) -> Iterator[Path]:
    """An empty repository root in a fresh temporary directory (removed afterwards)."""
    base = Path(tempfile.mkdtemp(prefix="mcp-bench-"))
    repo = base / "repo"
    repo.mkdir()
    try:
        yield repo
    finally:
        if keep:
            print(f"(kept {base})")
        else:
            shutil.rmtree(base, ignore_errors=True)


def script(name: str) -> str:
    return str(SCRIPTS / name)


def require_script(name: str) -> str | None:
    """The path of ``scripts/<name>``, or None (with a note) when it does not exist yet."""
    path = SCRIPTS / name
    if not path.exists():
        print(f"skipped: scripts/{name} does not exist in this checkout yet")
        return None
    return str(path)


def start_run(repo: Path, commands: Sequence[str], env: Mapping[str, str]) -> tuple[str, int, float]:
    """Start a run through the real wrapper; returns its id, its worker pid and start's wall time."""
    argv = [script("mcp-runner-start.sh"), "--format", "json"]
    for command in commands:
        argv += ["--command", command]
    result = run_process(argv, env=env, cwd=repo)
    if result.status != 0:
        raise SystemExit(f"start failed ({result.status}): {result.stderr.decode(errors='replace')}")
    printed = json.loads(result.stdout)
    return printed["run_id"], int(printed["runner_pid"]), result.wall


def manifest_path(repo: Path, run_id: str, task: str = "0001") -> Path:
    return repo / ".runs" / task / "mcp" / run_id / "manifest.json"


TERMINAL = ("succeeded", "failed", "cancelled")


def wait_for_terminal(path: Path, timeout: float = 300) -> float:
    """Wait until the manifest at ``path`` holds a terminal status (what a poll would
    see); returns ``time.perf_counter()`` at that moment. Checks the file's mtime
    every millisecond and reads it only when it changed."""
    deadline = time.perf_counter() + timeout
    seen = None
    while time.perf_counter() < deadline:
        try:
            stamp = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != seen:
            seen = stamp
            with contextlib.suppress(OSError, ValueError):
                if json.loads(path.read_text()).get("status") in TERMINAL:
                    return time.perf_counter()
        time.sleep(0.001)
    raise SystemExit(f"{path}: no terminal status within {timeout:.0f}s")


def wait_for_run(repo: Path, run_id: str, worker_pid: int, timeout: float = 300) -> dict[str, Any]:
    """Wait for a run's worker to exit; returns the final manifest (which must be terminal)."""
    if not wait_for_exit(worker_pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker_pid, signal.SIGKILL)
        raise SystemExit(f"run {run_id}: its worker {worker_pid} did not finish within {timeout:.0f}s")
    manifest = json.loads(manifest_path(repo, run_id).read_text())
    if manifest.get("status") not in TERMINAL:
        raise SystemExit(f"run {run_id}: worker gone but status is {manifest.get('status')!r}")
    return manifest


# --- reporting -------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = subprocess.run([PYTHON, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=False).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": model, "python": version, "kernel": platform.release()}


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms" if abs(seconds) < 1 else f"{seconds:.2f} s"


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MiB"


def print_table(stats: Sequence[Stats]) -> None:
    width = max(len(s.label) for s in stats)
    print(f"  {'':{width}}  {'median':>10} {'min':>10} {'max':>10} {'peak RSS':>10} {'CPU':>10}  runs")
    for s in stats:
        print(
            f"  {s.label:{width}}  {ms(s.median):>10} {ms(s.min):>10} {ms(s.max):>10}"
            f" {mib(s.peak_rss_mib):>10} {ms(s.cpu):>10}  {s.runs}"
        )


# The old Node runner's figures, measured on this machine beside this project
# (issue 11's table; BENCHMARKS.md): seconds, or MiB for the *_rss ones.
OLD_RUNNER: dict[str, float] = {
    "poll": 0.190,
    "poll_rss": 62.0,
    "start": 10.5,
    "start_to_finished": 0.58,
    "per_command": 0.0024,
    "metrics_100k": 0.651,
    "metrics_100k_rss": 177.0,
    "metrics_1m": 3.36,
    "metrics_1m_rss": 1228.8,
    "migrate_dry_10k": 1.55,
    "migrate_10k": 14.3,
    "worker_rss": 86.0,
    "heartbeat_gap": 10.0,
}


def comparisons(value: float | None, floor: tuple[str, float] | None, old: str | None) -> str:
    """``1.42 x python -c pass; 0.18 x the old runner (0.19)``, or "" without a value."""
    if value is None:
        return ""
    parts = []
    if floor is not None and floor[1] > 0:
        parts.append(f"{value / floor[1]:.2f} x {floor[0]}")
    if old is not None and OLD_RUNNER.get(old):
        parts.append(f"{value / OLD_RUNNER[old]:.2f} x the old runner ({OLD_RUNNER[old]:g})")
    return "; ".join(parts)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


class Report:
    """Collects one benchmark's figures; prints them as it goes and writes JSON at the end."""

    def __init__(self, name: str, args: argparse.Namespace, description: str) -> None:
        self.name = name
        self.args = args
        self.data: dict[str, Any] = {
            "benchmark": name,
            "description": description,
            "smoke": args.smoke,
            "load_before": load(),
            "stats": [],
            "budgets": [],
            "figures": {},
        }
        print(f"== {name}: {description} ==")
        print(f"  load average before: {self.data['load_before']}")

    def table(self, stats: Sequence[Stats]) -> None:
        print_table(stats)
        self.data["stats"].extend(s.to_json() for s in stats)

    def figure(self, key: str, value: Any, text: str | None = None) -> None:
        self.data["figures"][key] = value
        if text is not None:
            print(f"  {text}")

    def budget(
        self,
        what: str,
        measured: str,
        limit: str,
        met: bool,
        *,
        value: float | None = None,
        floor: tuple[str, float] | None = None,
        old: str | None = None,
    ) -> None:
        """One budget, met or missed. With ``value`` (in the unit of OLD_RUNNER's
        figures), it is also given as a ratio to ``floor`` (``(name, value)``: the
        bare interpreter, bash, the budget's own limit) and to the old runner's
        recorded figure ``OLD_RUNNER[old]``."""
        ratios = comparisons(value, floor, old)
        self.data["budgets"].append(
            {"what": what, "measured": measured, "budget": limit, "met": met, "ratios": ratios}
        )
        judged = "smoke size, not judged" if self.args.smoke else verdict(met)
        print(f"  {what}: {measured} (budget {limit}: {judged})")
        if ratios:
            print(f"    {ratios}")

    def finish(self) -> None:
        self.data["load_after"] = load()
        print(f"  load average after: {self.data['load_after']}")
        if self.args.json:
            path = Path(self.args.json)
            existing: list[Any] = []
            if path.exists():
                with contextlib.suppress(ValueError):
                    loaded = json.loads(path.read_text())
                    existing = loaded if isinstance(loaded, list) else [loaded]
            existing.append(self.data)
            path.write_text(json.dumps(existing, indent=2) + "\n")


def arguments(description: str, runs: int, warmup: int = 2) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="tiny size, one sample (CI keeps the script working)")
    parser.add_argument("--runs", type=int, default=runs, help=f"timed samples of each subject (default {runs})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed rounds first (default {warmup})")
    parser.add_argument("--json", metavar="PATH", help="append the figures as JSON to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the temporary inputs")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs = 1
        args.warmup = 0
    return args


# --- synthetic runs ----------------------------------------------------------------

RUN_COMMANDS = ["npm run build", "npm run lint", "npm run test", "bash scripts/spec-guard.sh --dry-run"]


def _iso(ms_value: int) -> str:
    from mcp_core.jsfmt import iso_from_ms

    return iso_from_ms(ms_value)


def run_id_at(ms_value: int, pid: int) -> str:
    from mcp_core.jsfmt import stamp

    return f"{stamp(_iso(ms_value))}-{pid}"


def _dump(value: Any) -> str:
    # Same bytes as jsfmt.dumps_pretty for these values (strings, ints, bools, null), much faster.
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


@functools.lru_cache(maxsize=8)
def _locations(repo: Path) -> Any:
    from mcp_core.paths import locate

    return locate({"MCP_RUNNER_REPO_ROOT": str(repo)})


def write_run(repo: Path, run_id: str, started_ms: int, status: str = "succeeded",
              commands: Sequence[str] = RUN_COMMANDS) -> dict[str, Any]:
    """A run as the runner leaves it: manifest, .heartbeat, .resume-token, runner.log,
    a response file per command that ran, an error artifact for a failed command, and
    the compatibility pointer (relative symlink + compat.json). Written plainly (no
    fsync): inputs of thousands of runs must be made in seconds.

    ``status``: succeeded, failed (the last command failed), cancelled (the second
    command was running) or in_progress (a worker that is gone, heartbeat old).
    """
    from mcp_core import manifest as mf
    from mcp_core.paths import command_file_name

    loc = _locations(repo)
    run_dir = loc.run_dir(run_id)
    (run_dir / "errors").mkdir(parents=True)
    record = mf.new_manifest(
        loc, run_id, list(commands), approval_policy="never", timeout_seconds=3600,
        now=_iso(started_ms), resume_token="0" * 64,
    )
    ran = len(commands) if status in ("succeeded", "failed") else 1
    at = started_ms + 120
    for position, entry in enumerate(record["commands"], start=1):
        if position > ran:
            if status in ("cancelled", "in_progress") and position == ran + 1:
                entry["status"] = "running"
                entry["started_at"] = _iso(at)
            break
        failed = status == "failed" and position == ran
        name = command_file_name(position, entry["command"])
        code = 1 if failed else 0
        summary = f"{entry['command']} exited {code}"
        answer = {"exit_code": code, "summary": summary, "manifest_path": None}
        response = [{"type": "text", "text": json.dumps(answer)}]
        (run_dir / name).write_text(_dump(response))
        entry.update(
            status="failed" if failed else "succeeded", started_at=_iso(at), completed_at=_iso(at + 2500),
            exit_code=code, response_file=loc.rel(run_dir / name), summary=summary,
        )
        if failed:
            (run_dir / "errors" / name).write_text(_dump({
                "run_id": run_id, "task_id": "0001", "command_index": position, "command": entry["command"],
                "created_at": _iso(at + 2500), "reason": "command-failed",
                "details": {"exit_code": code, "summary": summary, "normalized_response": response},
            }))
            entry["error_file"] = loc.rel(run_dir / "errors" / name)
        at += 2600
    record["status"] = status
    record["runner_pid"] = 999_999_999 if status == "in_progress" else None
    record["heartbeat_at"] = _iso(at)
    record["updated_at"] = _iso(at)
    if status in ("succeeded", "failed", "cancelled"):
        record["completed_at"] = _iso(at)
        record["status_detail"] = {"failed": "command-failed", "cancelled": None}.get(status)
        record["metrics_recorded"] = True
        if status != "succeeded" or not any(mf.is_guardrail(c) for c in commands):
            sentence = mf.guardrail_sentence(record)
            if sentence:
                record["summary"] = sentence
    (run_dir / "manifest.json").write_text(_dump(record))
    (run_dir / ".heartbeat").write_text(_iso(at) + "\n")
    token = run_dir / ".resume-token"
    token.write_text("0" * 64 + "\n")
    token.chmod(0o600)
    (run_dir / "runner.log").write_text(f"worker started for {run_id}\n")
    pointer = loc.pointer_dir(run_id)
    pointer.mkdir(parents=True)
    os.symlink(os.path.relpath(run_dir / "manifest.json", pointer), pointer / "manifest.json")
    (pointer / "compat.json").write_text(_dump({
        "artifact_root": loc.rel(run_dir), "manifest": loc.rel(run_dir / "manifest.json"),
        "pointer": "symlink", "created_at": _iso(started_ms),
    }))
    return record


def status_for(position: int) -> str:
    """A realistic mix: mostly succeeded, some failed, a few cancelled or abandoned."""
    if position % 50 == 7:
        return "cancelled"
    if position % 100 == 3:
        return "in_progress"
    if position % 7 == 2:
        return "failed"
    return "succeeded"


def write_runs(repo: Path, count: int, first_ms: int = 1_760_000_000_000) -> list[str]:
    """``count`` runs a minute apart, the mix of ``status_for``; returns their ids."""
    ids = []
    for position in range(count):
        started = first_ms + position * 60_000
        run_id = run_id_at(started, 10_000 + position)
        write_run(repo, run_id, started, status_for(position))
        ids.append(run_id)
    return ids
