"""Concurrency soak: many runs at once in one repository while pollers, the
metrics summary and blocked resumes hammer it; and run ids started in the same
millisecond.

``test_soak``: SOAK_RUNS runs (at least 8 workers at once) are started in
parallel; their MCP servers (tests/chaos/tiny_server.py) wait on a gate file so
that the test can first give half of the runs a 0.2 s heartbeat (many locked
saves) and the other half no heartbeat and a stale threshold of 1 ms (every poll
marks them stale while their workers save command results). For SOAK_SECONDS,
SOAK_POLLERS threads poll (``poll --format json``, once and ``--watch --interval
0.05`` by turns), half as many try to resume live runs (each attempt blocked and
recorded with a reason of its own), one runs the metrics summary, and a watcher
reads every manifest without a lock (metrics.json under the shared lock that
readers take) the whole time. Nothing may be torn or lost:

- every read of every manifest parses (a reader never sees a partial file);
- a manifest never loses what was written: ``resume_events`` only grows, a
  command's status only moves forward, and a stale mark stays until a
  heartbeat (new ``heartbeat_at``) or the end of the run clears it;
- at the end every blocked resume is recorded exactly once, every command ran
  exactly once, and metrics.json has exactly one line per run.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from chaoslib import (
    check_tree,
    counter_lines,
    env_float,
    env_int,
    figures,
    metrics_entries,
    tiny_server,
    wait_quiet,
)
from conftest import CHECKOUT, SCRIPTS, run_script, runner_env, snapshot

from mcp_core import new_run, run_record
from mcp_core.errors import RunnerError
from mcp_core.jsfmt import iso_from_ms, now_ms, stamp
from mcp_core.paths import locate

pytestmark = pytest.mark.slow

COMMANDS_PER_RUN = 4
STATUS_RANK = {"pending": 0, "running": 1, "succeeded": 2, "failed": 2}
TERMINAL = ("succeeded", "failed", "cancelled")


class Watcher:
    """Reads every manifest (no lock) over and over and checks it never goes back."""

    def __init__(self, repo: Path, run_ids: list[str], stale_runs: set[str]) -> None:
        self.runs_root = repo / ".runs" / "0001" / "mcp"
        self.metrics_file = repo / ".runs" / "0001" / "metrics.json"
        self.run_ids = run_ids
        self.stale_runs = stale_runs
        self.last: dict[str, dict[str, Any]] = {}
        self.reads = 0
        self.stale_seen: set[str] = set()
        self.stop = threading.Event()

    def observe(self, run_id: str) -> None:
        raw = (self.runs_root / run_id / "manifest.json").read_bytes()
        try:
            record = json.loads(raw)
        except ValueError as exc:
            raise AssertionError(f"a reader saw a torn manifest of {run_id}: {exc}: {raw[:200]!r}") from None
        self.reads += 1
        before = self.last.get(run_id)
        self.last[run_id] = record
        if record["status_detail"] == "stale-heartbeat":
            self.stale_seen.add(run_id)
        if before is None:
            return
        events_before = before["resume_events"]
        assert record["resume_events"][: len(events_before)] == events_before, f"{run_id}: a resume event was lost"
        for old, new in zip(before["commands"], record["commands"], strict=True):
            assert STATUS_RANK[new["status"]] >= STATUS_RANK[old["status"]], f"{run_id}: a command result was lost"
            if old["status"] == "succeeded":
                assert new == old, f"{run_id}: a command's result changed after it succeeded"
        if (
            before["status_detail"] == "stale-heartbeat"
            and record["heartbeat_at"] == before["heartbeat_at"]
            and record["status"] not in TERMINAL
        ):
            assert record["status_detail"] == "stale-heartbeat", f"{run_id}: a stale mark was lost"

    def run(self) -> None:
        while not self.stop.is_set():
            for run_id in self.run_ids:
                self.observe(run_id)
            metrics_entries(self.metrics_file)  # every line whole at every moment
            self.reads += 1


def _start_runs(repo: Path, env: dict[str, str], count: int, seconds: float) -> list[str]:
    """Start ``count`` runs at once (one start process each); their run ids."""
    rng = random.Random(count)
    ids: list[str | None] = [None] * count
    errors: list[str] = []

    def start_one(number: int) -> None:
        args = []
        for index in range(1, COMMANDS_PER_RUN + 1):
            pause = rng.uniform(0.2, 1.0) * seconds / (2 * COMMANDS_PER_RUN)
            args += ["--command", f"sleep {pause:.2f}; printf '%s\\n' $$ >> counters/s{number}-c{index}"]
        result = run_script("mcp-runner-start.sh", *args, "--format", "json", repo=repo, env=env, timeout=120)
        if result.returncode != 0:
            errors.append(result.stderr)
            return
        ids[number] = json.loads(result.stdout)["run_id"]

    threads = [threading.Thread(target=start_one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert all(ids)
    return [run_id for run_id in ids if run_id]


def test_soak(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "counters").mkdir(parents=True)
    gate = tmp_path / "gate"
    runs = max(8, env_int("SOAK_RUNS", 8))
    seconds = env_float("SOAK_SECONDS", 6)
    pollers = env_int("SOAK_POLLERS", 2)  # and half as many threads trying to resume
    env = runner_env(repo, MCP_RUNNER_SERVER=tiny_server(gate))
    began = time.monotonic()

    run_ids = _start_runs(repo, env, runs, seconds)
    assert len(set(run_ids)) == runs, f"run ids collided: {run_ids}"
    same_ms = max(Counter(run_id.rsplit("-", 1)[0] for run_id in run_ids).values())
    # Before any worker connects (the gate): half beat every 0.2 s, half never and are stale after 1 ms.
    stale_runs = set(run_ids[::2])
    loc = locate(env)
    for run_id in run_ids:
        stale = run_id in stale_runs

        def tune(record: dict[str, Any], stale: bool = stale) -> None:
            record["heartbeat_interval_seconds"] = 3600 if stale else 0.2
            record["heartbeat_stale_after_seconds"] = 0.001 if stale else 30

        run_record.update(loc.run_dir(run_id) / "manifest.json", tune)
    gate.touch()

    watcher = Watcher(repo, run_ids, stale_runs)
    counts: Counter[str] = Counter()
    attempted: dict[str, list[str]] = defaultdict(list)
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def guarded(body: Any) -> Any:
        def loop() -> None:
            try:
                body()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
                stop.set()
                watcher.stop.set()

        return loop

    def poller(seed: int) -> None:
        """One poll, then a `poll --watch` every 50 ms of a run for up to 2 s, by turns;
        mostly runs that are still going, and of those mostly the ones to mark stale."""
        rng = random.Random(seed)
        watch = False
        while not stop.is_set():
            live = [r for r in run_ids if watcher.last.get(r, {}).get("status") not in TERMINAL]
            live_stale = [r for r in live if r in stale_runs]
            run_id = rng.choice(live_stale if live_stale and rng.random() < 0.6 else live or run_ids)
            watch = not watch
            if not watch:
                result = run_script("mcp-runner-poll.sh", run_id, "--format", "json", repo=repo, env=env)
                assert result.returncode == 0, result.stderr
                assert json.loads(result.stdout)["run_id"] == run_id
                with lock:
                    counts["polls"] += 1
                continue
            blocks, interrupted = watch_until_stop(run_id, rng.uniform(0.5, 2.0))
            assert blocks and all(block["run_id"] == run_id for block in blocks)
            with lock:
                counts["polls"] += len(blocks)
                counts["watches"] += 1

    def watch_until_stop(run_id: str, seconds: float) -> tuple[list[dict[str, Any]], bool]:
        """``poll --watch`` of one run until it ends, or Ctrl-C once it has shown
        something and ``seconds`` have passed (or the soak is over)."""
        proc = subprocess.Popen(
            [str(SCRIPTS / "mcp-runner-poll.sh"), run_id, "--watch", "--interval", "0.05", "--format", "json"],
            cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        chunks: list[bytes] = []
        interrupted = False
        until = time.monotonic() + 120  # from its first block on: ``seconds``
        while True:
            if select.select([proc.stdout], [], [], 0.1)[0]:
                data = os.read(proc.stdout.fileno(), 1 << 16)
                if not data:
                    break
                if not chunks:
                    until = time.monotonic() + seconds
                chunks.append(data)
            if chunks and not interrupted and (stop.is_set() or time.monotonic() > until):
                proc.send_signal(signal.SIGINT)
                interrupted = True
            assert chunks or time.monotonic() < until, "poll --watch showed nothing"
        err = proc.stderr.read().decode(errors="replace")
        # Ctrl-C: 130; or -SIGINT, silently, when it came as poll was exiting after the run had ended.
        assert proc.wait(timeout=60) in ((0, 130, -signal.SIGINT) if interrupted else (0,)), err
        assert "Traceback" not in err, err
        out = b"".join(chunks).decode()
        decoder = json.JSONDecoder()
        blocks, position = [], 0
        while position < len(out):
            try:
                block, position = decoder.raw_decode(out, position)
            except ValueError:
                assert interrupted, f"poll --watch printed a torn block: {out[position:position + 200]!r}"
                break
            blocks.append(block)
            position += len(out) - position - len(out[position:].lstrip())
        return blocks, interrupted

    def summarizer() -> None:
        while not stop.is_set():
            result = run_script("mcp-runner-metrics.js", repo=repo, env=env)
            assert result.returncode == 0, result.stderr
            summary = json.loads((repo / ".runs" / "0001" / "metrics-summary.json").read_bytes())
            assert summary["parse_errors"] == [] and summary["entries_total"] <= runs
            with lock:
                counts["summaries"] += 1

    def resumer(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            run_id = rng.choice(run_ids)
            with lock:
                counts["resume_attempts"] += 1
                reason = f"soak-{counts['resume_attempts']}"
            result = run_script("mcp-runner-start.sh", "--resume", run_id, "--reason", reason, repo=repo, env=env)
            assert result.returncode == 1, (result.stdout, result.stderr)
            assert "still has active PID" in result.stderr or "cannot resume" in result.stderr, result.stderr
            with lock:
                attempted[run_id].append(reason)
                counts["resumes"] += 1

    threads = [threading.Thread(target=guarded(watcher.run))]
    threads += [threading.Thread(target=guarded(lambda n=n: poller(n))) for n in range(pollers)]
    threads += [threading.Thread(target=guarded(lambda n=n: resumer(n))) for n in range(max(1, pollers // 2))]
    threads += [threading.Thread(target=guarded(summarizer))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.1)
    stop.set()
    # The watcher goes on until every run has ended.
    ended_by = time.monotonic() + 180
    while not stop.is_set() or not watcher.stop.is_set():
        if all(watcher.last.get(r, {}).get("status") in TERMINAL for r in run_ids) or time.monotonic() > ended_by:
            watcher.stop.set()
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    wait_quiet(f"MCP_RUNNER_REPO_ROOT={repo}")
    duration = time.monotonic() - began

    report = check_tree(repo)
    assert len(report.metrics) == runs, "metrics.json must hold exactly one line per run ended"
    assert sorted(e["run_id"] for e in report.metrics) == sorted(run_ids)
    for number, run_id in enumerate(run_ids):
        record = report.manifests[run_id]
        assert record["status"] == "succeeded", (run_id, record["status_detail"])
        assert record["metrics_recorded"] is True
        for index in range(1, COMMANDS_PER_RUN + 1):
            assert counter_lines(repo / "counters" / f"s{number}-c{index}") == 1
        recorded = [e["reason"] for e in record["resume_events"] if e["outcome"] == "blocked"]
        assert sorted(recorded) == sorted(attempted[run_id]), f"{run_id}: blocked resume events lost or doubled"
        assert all(e["outcome"] == "blocked" for e in record["resume_events"])
    figures(
        "soak",
        runs=runs,
        workers_at_once=runs,
        polls=counts["polls"],
        of_them_in_watches=counts["watches"],
        metrics_summaries=counts["summaries"],
        blocked_resumes=counts["resumes"],
        watcher_reads=watcher.reads,
        stale_marked_runs=len(watcher.stale_seen & stale_runs),
        run_ids_in_one_ms=same_ms,
        temp_files_left=len(report.temp_files),
        duration=f"{duration:.1f}s",
        corruptions=0,
    )
    assert counts["polls"] > 0 and counts["resumes"] > 0 and counts["summaries"] > 0


# --- run ids ------------------------------------------------------------------------

_SAME_INSTANT = """
import json, os, sys
from mcp_core.new_run import create_run
from mcp_core.paths import locate
loc = locate()
print("ready", flush=True)
sys.stdin.buffer.read(1)  # all are released at once
run_id, path, _ = create_run(loc, ["true"], "never", 60)
print(json.dumps({"run_id": run_id, "pid": os.getpid()}), flush=True)
"""


def test_run_ids_created_in_the_same_millisecond_differ(tmp_path: Path) -> None:
    """Processes that wait on one pipe write each create a run the moment they are
    released: the stamps collide, the pid part keeps the ids (and directories) apart."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = runner_env(repo)
    env["PYTHONPATH"] = str(CHECKOUT)
    processes = env_int("SOAK_SAME_MS_PROCESSES", 8)
    created: list[dict[str, Any]] = []
    shared = 0
    for _round in range(10):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _SAME_INSTANT],
                env=env, cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            for _ in range(processes)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go")
            proc.stdin.close()
        batch = []
        for proc in procs:
            assert proc.stdout is not None
            out = proc.stdout.read()
            assert proc.wait(timeout=120) == 0
            batch.append(json.loads(out))
        created += batch
        shared += sum(c - 1 for c in Counter(b["run_id"].rsplit("-", 1)[0] for b in batch).values() if c > 1)
        if shared:
            break
    ids = [c["run_id"] for c in created]
    assert len(set(ids)) == len(ids)
    loc = locate(env)
    for item in created:
        assert item["run_id"].endswith(f"-{item['pid']}")
        record = json.loads((loc.run_dir(item["run_id"]) / "manifest.json").read_bytes())
        assert record["run_id"] == item["run_id"]
    figures("same-millisecond run ids", processes=len(ids), ids_sharing_a_millisecond=shared, collisions=0)
    assert shared > 0, "no two runs were created in the same millisecond (the machine was too slow to show it)"


def test_a_run_directory_that_exists_is_refused_not_overwritten(tmp_path: Path) -> None:
    """Same stamp, same pid (possible only within one process): the directory is
    there already. Creating the run must fail and leave it alone."""
    repo = tmp_path / "repo"
    loc = locate(runner_env(repo))
    lead_ms = 2000
    for _attempt in range(10):
        # Every run id this process can get during half a second ahead, made beforehand;
        # then wait for the clock to get there. A loaded machine only moves the window on.
        began = now_ms()
        first = began + lead_ms
        window = range(first, first + 500)
        for ms in window:
            run_dir = loc.run_dir(f"{stamp(iso_from_ms(ms))}-{os.getpid()}")
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "manifest.json").write_text('{"run_id": "someone else"}\n')
        before = snapshot(repo)
        if now_ms() >= first:
            lead_ms = 2 * (now_ms() - began)  # too slow to be ahead of the clock: further ahead
            continue
        while now_ms() < first:  # bounded: the clock reaches ``first`` within lead_ms
            time.sleep(0.001)
        try:
            new_run.create_run(loc, ["true"], "never", 60)
        except RunnerError as refused:
            message = refused.message
            assert "\n" not in message and "cannot write the run directory" in message and "File exists" in message
            assert snapshot(repo) == before, "an existing run directory was changed"
            return
        # Descheduled past the window before start read the clock: its run was made. Again.
    pytest.fail("start never read the clock inside a window of existing run directories")
