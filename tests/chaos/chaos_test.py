"""Fault injection: SIGKILL at random moments and in the narrow windows, then
resume until every run has ended, checking after every kill that nothing is
torn, lost, duplicated or left running.

The tests:

- ``test_kills_during_manifest_saves``: two processes save one manifest in a
  tight loop through ``run_record.update``; one is SIGKILLed at a random moment,
  again and again (CHAOS_SAVE_KILLS). The file always parses and no save that
  returned is ever lost.
- ``test_kills_during_metrics_appends``: the same for ``metrics.record_run``:
  every line whole, never one ending twice, none lost.
- ``test_runs_survive_kills``: real runs (scripts/mcp-runner-start.sh, the
  worker, and per driver the bundled local executor or tests/chaos/tiny_server.py,
  CHAOS_SERVERS) of commands that each append a line to a counter file of their
  own. CHAOS_DRIVERS drivers share one repository and deal out CHAOS_KILLS
  faults (every kind at least once): SIGKILL of the worker at a random moment, of the
  MCP server mid-call, of a command's process group, and of the worker stopped
  (``MCP_RUNNER_TEST_PAUSE``, see mcp_core/faults.fault_point) inside a
  manifest save, between a command's end and its manifest update, and before
  and after the metrics append. Then it resumes (``--retry-failed`` for a
  failed run) until the run ends.
- ``test_a_killed_server_or_worker_leaves_no_command_behind``: the same kills
  with a command that would run for a minute, so that a leaked process shows.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chaoslib import (
    HERE,
    check_tree,
    counter_lines,
    env_int,
    figures,
    metrics_entries,
    processes,
    sigkill,
    tiny_server,
    wait_process,
    wait_quiet,
    wait_stopped,
)
from conftest import CHECKOUT, SCRIPTS, run_script, runner_env

from mcp_core import store

pytestmark = pytest.mark.slow

SEED = env_int("CHAOS_SEED", int(time.time()))
WRITER = HERE / "writer.py"


def _writer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(CHECKOUT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _spawn_writer(mode: str, target: Path, writer: str, acks: Path) -> subprocess.Popen[bytes]:
    with open(acks.with_suffix(".log"), "ab") as log:
        return subprocess.Popen(
            [sys.executable, str(WRITER), mode, str(target), writer, str(acks)],
            env=_writer_env(),
            stdin=subprocess.DEVNULL,
            stderr=log,
        )


def _acked(path: Path) -> int:
    return max((int(v) for v in path.read_text().split()), default=-1) if path.exists() else -1


def _wait_for_progress(acks: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until the writer has acknowledged one more write since now."""
    size = acks.stat().st_size if acks.exists() else 0
    deadline = time.monotonic() + 60
    while (acks.stat().st_size if acks.exists() else 0) == size:
        assert proc.poll() is None, acks.with_suffix(".log").read_text()
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0.005)


def _kill_loop(mode: str, target: Path, tmp_path: Path, kills: int, check: Any) -> tuple[int, float]:
    """Two writers; SIGKILL one at random moments ``kills`` times, check after each."""
    rng = random.Random(SEED)
    acks = {w: tmp_path / f"acks-{w}" for w in ("a", "b")}
    writers = {w: _spawn_writer(mode, target, w, acks[w]) for w in acks}
    started = time.monotonic()
    survived = 0
    try:
        # Let both writers get past their imports before the first kill.
        deadline = time.monotonic() + 60
        while not all(path.exists() for path in acks.values()):
            for writer, proc in writers.items():
                assert proc.poll() is None, acks[writer].with_suffix(".log").read_text()
            assert time.monotonic() < deadline, "the writers never wrote"
            time.sleep(0.01)
        for _ in range(kills):
            victim = rng.choice(sorted(writers))
            _wait_for_progress(acks[victim], writers[victim])  # killed in its loop, not in its imports
            time.sleep(rng.uniform(0.0, 0.03))
            writers[victim].kill()
            writers[victim].wait(timeout=30)
            check(acks)
            survived += 1
            writers[victim] = _spawn_writer(mode, target, victim, acks[victim])
    finally:
        for proc in writers.values():
            proc.kill()
            proc.wait(timeout=30)
    check(acks)
    return survived, time.monotonic() - started


def test_kills_during_manifest_saves(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    target = run_dir / "manifest.json"
    store.write_json(target, {"run_id": "kill-loop", "counts": {}})

    def check(acks: dict[str, Path]) -> None:
        # The acks first: the other writer goes on, and what it acked before we read must be there.
        acked = {writer: _acked(path) for writer, path in acks.items()}
        record = json.loads(target.read_bytes())  # whole, whatever moment the kill hit
        for writer, count in acked.items():
            assert record["counts"].get(writer, 0) >= count, f"a committed save of {writer} was lost"

    kills = env_int("CHAOS_SAVE_KILLS", 15)
    survived, seconds = _kill_loop("manifest", target, tmp_path, kills, check)
    record = json.loads(target.read_bytes())
    temp_left = [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    figures(
        "manifest-save kills",
        kills_survived=survived,
        saves_committed=sum(record["counts"].values()),
        killed_mid_write=len(temp_left),
        duration=f"{seconds:.1f}s",
        corruptions=0,
        seed=SEED,
    )
    assert survived == kills


def test_kills_during_metrics_appends(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    metrics_file = repo / ".runs" / "0001" / "metrics.json"

    cut: list[bytes] = []

    def check(acks: dict[str, Path]) -> None:
        acked = {writer: _acked(path) for writer, path in acks.items()}  # before the file: see above
        cut.clear()
        entries = metrics_entries(metrics_file, cut)  # every line whole (or cut and rewritten), none twice
        for writer, last in acked.items():
            ks = sorted(int(e["run_id"].split("-")[1]) for e in entries if e["run_id"].startswith(f"w{writer}-"))
            assert ks == list(range(len(ks))), f"writer {writer}: a line is missing"
            assert len(ks) - 1 >= last, f"writer {writer}: an acknowledged line was lost"

    kills = env_int("CHAOS_SAVE_KILLS", 15)
    survived, seconds = _kill_loop("metrics", repo, tmp_path, kills, check)
    figures(
        "metrics-append kills",
        kills_survived=survived,
        lines=len(metrics_entries(metrics_file)),
        cut_by_a_kill_then_rewritten=len(cut),
        duration=f"{seconds:.1f}s",
        corruptions=0,
        seed=SEED,
    )
    assert survived == kills


# --- real runs ------------------------------------------------------------------

# Faults that stop the worker at a fault point (MCP_RUNNER_TEST_PAUSE) to kill it there.
PAUSE_FAULTS = ["in-manifest-save", "after-tool-call", "before-metrics-append", "after-metrics-append"]
# "metrics": the worker is killed before its metrics append, then the resume that
# completes the metrics is killed after the append, before metrics_recorded is saved.
KILL_FAULTS = ["worker", "server", "command", "metrics"]
# Every kind once, in an order that gives the first driver (the bundled local
# executor) the server and command kills at the CI size.
EVERY_FAULT = ["server", "after-tool-call", "command", "worker", "in-manifest-save", "worker", "metrics"]
COMMANDS_PER_RUN = 3


@dataclass
class Book:
    """What a driver knows about one run, to judge the counter files."""

    slot: str
    run_id: str = ""
    # Per command: in how many worker lifetimes it was started (its started_at changed).
    starts: list[int] = field(default_factory=lambda: [0] * COMMANDS_PER_RUN)
    started_at: list[Any] = field(default_factory=lambda: [None] * COMMANDS_PER_RUN)
    lines_at_success: dict[int, int] = field(default_factory=dict)
    endings: set[str] = field(default_factory=set)
    done: bool = False


@dataclass
class Tally:
    kills: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    episodes: int = 0
    resumes: int = 0
    polls: int = 0
    reran: int = 0  # commands that ran twice because a kill hid their end (allowed)
    once: int = 0  # commands that succeeded having run exactly once
    server_kill_to_failed: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, fault: str, landed: bool) -> None:
        with self.lock:
            (self.kills if landed else self.missed)[fault] += 1


def _is_terminal(record: dict[str, Any]) -> bool:
    return record.get("status") in ("succeeded", "failed", "cancelled")


class Driver:
    """One sequence of runs in the shared repository, with its own faults."""

    def __init__(
        self, repo: Path, number: int, server: str, faults: list[str], tally: Tally, rng: random.Random
    ) -> None:
        self.repo = repo
        self.tag = f"CHAOS_DRIVER=d{number}-{os.getpid()}"
        self.number = number
        self.server = tiny_server() if server == "tiny" else server
        self.faults = faults
        self.tally = tally
        self.rng = rng
        self.books: list[Book] = []

    # -- running the CLIs -------------------------------------------------------

    def env(self, pause: str | None = None) -> dict[str, str]:
        name, _, value = self.tag.partition("=")
        extra = {"MCP_RUNNER_SERVER": self.server, name: value}
        if pause:
            extra["MCP_RUNNER_TEST_PAUSE"] = pause
        return runner_env(self.repo, **extra)

    def counter(self, book: Book, index: int) -> Path:
        return self.repo / "counters" / f"{book.slot}-c{index}"

    def start(self, book: Book, pause: str | None) -> None:
        args: list[str] = []
        for index in range(1, COMMANDS_PER_RUN + 1):
            before, after = self.rng.uniform(0, 0.2), self.rng.uniform(0, 0.2)
            path = self.counter(book, index).relative_to(self.repo)
            args += ["--command", f"sleep {before:.2f}; printf '%s\\n' $$ >> {path}; sleep {after:.2f}"]
        result = run_script("mcp-runner-start.sh", *args, "--format", "json", repo=self.repo, env=self.env(pause))
        assert result.returncode == 0, result.stderr
        book.run_id = json.loads(result.stdout)["run_id"]
        with self.tally.lock:
            self.tally.runs += 1

    def resume_args(self, book: Book, *flags: str) -> list[str]:
        with self.tally.lock:
            self.tally.resumes += 1
        return ["--resume", book.run_id, "--format", "json", "--reason", f"chaos-{self.tally.resumes}", *flags]

    def resume(self, book: Book, *flags: str, pause: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_script("mcp-runner-start.sh", *self.resume_args(book, *flags), repo=self.repo, env=self.env(pause))

    def manifest(self, book: Book) -> dict[str, Any]:
        path = self.repo / ".runs" / "0001" / "mcp" / book.run_id / "manifest.json"
        data = store.read_json(path)
        assert isinstance(data, dict)
        return data

    # -- faults -------------------------------------------------------------------

    def kill_stopped(self) -> bool:
        stopped = wait_process(self.tag, lambda p: p.state == "T")
        return stopped is not None and sigkill(stopped.pid)

    def inflict(self, fault: str, book: Book) -> bool:
        """Deliver one fault to the episode just launched; True when a SIGKILL landed."""
        if fault in PAUSE_FAULTS or fault == "metrics":
            return self.kill_stopped()
        if fault == "worker":
            time.sleep(self.rng.uniform(0, 2.0))
            worker = next((p for p in processes(self.tag) if p.is_worker()), None)
            return worker is not None and sigkill(worker.pid)
        command = wait_process(self.tag, lambda p: p.is_command() and p.state != "Z")
        if command is None:
            return False
        if fault == "command":
            return sigkill(command.pgid, group=True)
        server = next((p for p in processes(self.tag) if p.is_server()), None)
        if server is None or not sigkill(server.pid):
            return False
        # Killed mid-call: the run must end failed at once (the worker sees the connection close).
        killed_at = time.monotonic()
        while not _is_terminal(self.manifest(book)):
            assert time.monotonic() - killed_at < 60, "the run did not end after its MCP server was killed"
            time.sleep(0.02)
        record = self.manifest(book)
        if record["status"] == "failed":
            assert record["status_detail"] == "tool-invocation-error", record["status_detail"]
            with self.tally.lock:
                self.tally.server_kill_to_failed.append(time.monotonic() - killed_at)
        return True

    # -- checks ---------------------------------------------------------------------

    def check(self, book: Book) -> dict[str, Any]:
        """After an episode has settled (no process of this driver left)."""
        report = check_tree(self.repo)
        record = self.manifest(book)
        assert record["run_id"] == book.run_id
        for position, command in enumerate(record["commands"]):
            if command["started_at"] is not None and command["started_at"] != book.started_at[position]:
                book.starts[position] += 1
                book.started_at[position] = command["started_at"]
            lines = counter_lines(self.counter(book, position + 1))
            assert lines <= book.starts[position], (
                f"{book.run_id} command {position + 1} ran {lines} times in {book.starts[position]} worker lifetimes"
            )
            if command["status"] == "succeeded":
                if position in book.lines_at_success:
                    assert lines == book.lines_at_success[position], (
                        f"{book.run_id} command {position + 1} ran again after it had succeeded"
                    )
                else:
                    assert lines >= 1, f"{book.run_id} command {position + 1} succeeded without running"
                    book.lines_at_success[position] = lines
        if _is_terminal(record):
            book.endings.add(record["completed_at"])
        mine = [e for e in report.metrics if e["run_id"] == book.run_id]
        stray = [e["completed_at"] for e in mine if e["completed_at"] not in book.endings]
        assert not stray, f"metrics lines for endings of {book.run_id} that never happened: {stray}"
        if record.get("metrics_recorded") is True and _is_terminal(record):
            assert any(e["completed_at"] == record["completed_at"] for e in mine), "metrics_recorded without its line"
        # A reader after every kill: poll must show the run and write poll.json whole.
        polled = run_script("mcp-runner-poll.sh", book.run_id, "--format", "json", repo=self.repo, env=self.env())
        assert polled.returncode == 0, polled.stderr
        assert json.loads(polled.stdout)["run_id"] == book.run_id
        with self.tally.lock:
            self.tally.polls += 1
        return self.manifest(book)

    def complete_metrics(self, book: Book, record: dict[str, Any], pause: str | None = None) -> dict[str, Any]:
        """A run that ended without its metrics line: resume completes it (and refuses).
        With ``pause`` that resume is itself killed at the fault point first."""
        if not _is_terminal(record) or record.get("metrics_recorded") is True:
            return record
        if pause is not None:
            resume = subprocess.Popen(
                [str(SCRIPTS / "mcp-runner-start.sh"), *self.resume_args(book)],
                cwd=self.repo, env=self.env(pause),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.tally.count("resume-" + pause, wait_stopped(resume) and sigkill(resume.pid))
            resume.wait(timeout=120)
            wait_quiet(self.tag)
            record = self.check(book)
        refused = self.resume(book)
        assert refused.returncode == 1 and "cannot resume" in refused.stderr, refused.stderr
        record = self.check(book)
        assert record["metrics_recorded"] is True
        return record

    # -- the sequence -------------------------------------------------------------------

    def episode(self, book: Book, fault: str | None) -> None:
        pause = None
        if fault == "in-manifest-save":
            # The worker's saves: connected, the first command running, each command
            # finished (with the next one running, in the same save), the end.
            pause = f"{fault}:{self.rng.randint(1, COMMANDS_PER_RUN + 2)}"
        elif fault == "after-tool-call":
            pause = f"{fault}:{self.rng.randint(1, COMMANDS_PER_RUN)}"
        elif fault == "metrics":
            pause = "before-metrics-append"
        elif fault in PAUSE_FAULTS:
            pause = fault
        if not book.run_id:
            self.start(book, pause)
        else:
            flags = ("--retry-failed",) if self.manifest(book)["status"] == "failed" else ()
            result = self.resume(book, *flags, pause=pause)
            assert result.returncode == 0, result.stderr
        with self.tally.lock:
            self.tally.episodes += 1
        if fault is not None:
            self.tally.count(fault, self.inflict(fault, book))
        wait_quiet(self.tag)  # no orphan: everything of the run stops
        record = self.check(book)
        record = self.complete_metrics(book, record, "after-metrics-append" if fault == "metrics" else None)
        book.done = record["status"] == "succeeded"

    def run(self) -> None:
        faults = list(self.faults)
        book: Book | None = None
        episodes = 0
        while faults or (book is not None and not book.done):
            if book is None or book.done:
                book = Book(slot=f"d{self.number}r{len(self.books) + 1}")
                self.books.append(book)
            self.episode(book, faults.pop(0) if faults else None)
            episodes += 1
            assert episodes < 10 * (len(self.faults) + 2), "the runs never finished"


def _faults(drivers: int, total: int, rng: random.Random) -> list[list[str]]:
    """Each driver's faults, dealt round-robin: every kind once, the rest random."""
    kinds = PAUSE_FAULTS + KILL_FAULTS
    sequence = EVERY_FAULT + [rng.choice(kinds) for _ in range(max(0, total - len(EVERY_FAULT)))]
    plan: list[list[str]] = [[] for _ in range(drivers)]
    for position, fault in enumerate(sequence):
        plan[position % drivers].append(fault)
    return plan


def test_runs_survive_kills(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "counters").mkdir(parents=True)
    rng = random.Random(SEED)
    drivers_count = env_int("CHAOS_DRIVERS", 2)
    servers = os.environ.get("CHAOS_SERVERS", "local,tiny").split(",")
    plan = _faults(drivers_count, env_int("CHAOS_KILLS", len(EVERY_FAULT)), rng)
    tally = Tally()
    drivers = [
        Driver(repo, n + 1, servers[n % len(servers)], faults, tally, random.Random(rng.random()))
        for n, faults in enumerate(plan)
    ]
    errors: list[BaseException] = []

    def drive(driver: Driver) -> None:
        try:
            driver.run()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=drive, args=(d,)) for d in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    duration = time.monotonic() - started

    # The end: every run succeeded, each ending has exactly one metrics line.
    wait_quiet(f"MCP_RUNNER_REPO_ROOT={repo}")
    report = check_tree(repo)
    books = [book for driver in drivers for book in driver.books]
    endings = {(b.run_id, e) for b in books for e in b.endings}
    lines = {(e["run_id"], e["completed_at"]) for e in report.metrics}
    assert lines == endings, f"lines without ending {lines - endings}, endings without line {endings - lines}"
    assert len(report.metrics) == len(endings)
    for book in books:
        record = report.manifests[book.run_id]
        assert record["status"] == "succeeded" and record["metrics_recorded"] is True, book.run_id
        for position in range(COMMANDS_PER_RUN):
            lines_now = counter_lines(repo / "counters" / f"{book.slot}-c{position + 1}")
            assert lines_now == book.lines_at_success[position]
            if book.starts[position] == 1:
                assert lines_now == 1
                tally.once += 1
            elif lines_now > 1:
                tally.reran += 1
    killed = sum(tally.kills.values())
    figures(
        "runs under SIGKILL",
        kills_survived=killed,
        by_fault=dict(sorted(tally.kills.items())),
        moments_passed=dict(sorted(tally.missed.items())),
        runs=tally.runs,
        worker_lifetimes=tally.episodes,
        resumes=tally.resumes,
        polls=tally.polls,
        metrics_lines=len(report.metrics),
        commands_run_exactly_once=tally.once,
        commands_rerun_after_hidden_end=tally.reran,
        temp_files_left=len(report.temp_files),
        metrics_lines_cut_by_a_kill=len(report.cut_metrics_lines),
        server_kill_to_failed_max=f"{max(tally.server_kill_to_failed, default=0):.2f}s",
        servers=",".join(servers[: len(drivers)]),
        duration=f"{duration:.1f}s",
        corruptions=0,
        seed=SEED,
    )
    assert killed >= len(EVERY_FAULT) // 2


def test_a_killed_server_or_worker_leaves_no_command_behind(tmp_path: Path) -> None:
    """The commands of the bundled executor run in sessions of their own, out of
    reach of a signal to the server's or the worker's group. One run, a command that
    would run for a minute, killed with SIGKILL mid-call three times:
    the executor as a stdio server of its own (the worker adopts and stops the
    command, the run fails at once); resumed so, the worker (the server gets its
    parent-death signal and stops the command); resumed with the executor in the
    worker's process (MCP_RUNNER_SERVER=local), the worker again (its command guard
    stops the command). Nothing may be left running."""
    repo = tmp_path / "repo"
    repo.mkdir()
    tag = f"CHAOS_ORPHANS={os.getpid()}"
    own_server = f"{sys.executable} -m mcp_core.servers.local"
    stdio = runner_env(repo, MCP_RUNNER_SERVER=own_server, CHAOS_ORPHANS=str(os.getpid()))
    in_process = {**stdio, "MCP_RUNNER_SERVER": "local"}
    started = run_script("mcp-runner-start.sh", "--command", "sleep 60; echo late >> late", "--format", "json",
                         repo=repo, env=stdio)
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    manifest_path = repo / ".runs" / "0001" / "mcp" / run_id / "manifest.json"
    steps = [("server", stdio, ["--retry-failed"]), ("worker", stdio, []), ("worker", in_process, [])]
    for number, (victim, env, resume_flags) in enumerate(steps):
        command = wait_process(tag, lambda p: p.is_command())
        assert command is not None, "the command never started"
        target = next(p for p in processes(tag) if (p.is_server() if victim == "server" else p.is_worker()))
        assert sigkill(target.pid)
        waited = wait_quiet(tag, timeout=30)  # a leaked `sleep 60` would still be there
        record = json.loads(manifest_path.read_bytes())
        if victim == "server":
            assert record["status"] == "failed" and record["status_detail"] == "tool-invocation-error"
        else:
            assert record["status"] == "in_progress" and record["commands"][0]["status"] == "running"
        where = "in process" if env is in_process else "stdio"
        figures(f"{victim} killed mid-call ({where})", processes_left=0, stopped_within=f"{waited:.2f}s")
        if number + 1 < len(steps):
            resumed = run_script("mcp-runner-start.sh", "--resume", run_id, *resume_flags, repo=repo,
                                 env=steps[number + 1][1])
            assert resumed.returncode == 0, resumed.stderr
    assert not (repo / "late").exists()
