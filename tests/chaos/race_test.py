"""start, cancel, resume, poll and kill racing on one run, round after round.

Each round starts a run of a few short commands (each appends a line to its
round's ``starts`` file when it begins), then lets go at random moments of one
cancel, two resumes, a poller and a SIGKILL of whatever worker is live. At the
end of the round (a last cancel ends a run nobody ended) it asserts what
``mcp_core/run_record.py`` promises:

- no command started after a cancel returned "Cancelled run";
- at most one metrics line per ending (exactly one for each run that ended);
- no process of the run left;
- every manifest whole;
- every ``resume_events`` entry true: as many ``accepted`` as resumes that
  returned 0, as many ``blocked`` as resumes that returned 1.

RACE_ROUNDS (default 4) and CHAOS_SEED size and seed it.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslib import check_tree, env_int, figures, processes, sigkill, wait_quiet
from conftest import SCRIPTS, runner_env

COMMANDS = 4
SEED = env_int("CHAOS_SEED", 20251018)


@dataclass
class Round:
    number: int
    run_id: str = ""
    cancel: tuple[int, int] | None = None  # (exit status, starts seen when it returned)
    resumes: list[int] = field(default_factory=list)
    polls: int = 0
    killed: bool = False


def cli(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPTS / args[0]), *args[1:]], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def read(repo: Path, run_id: str) -> dict[str, Any]:
    data = json.loads((repo / ".runs/0001/mcp" / run_id / "manifest.json").read_bytes())
    assert isinstance(data, dict)
    return data


def starts(repo: Path, number: int) -> int:
    path = repo / f"starts-{number}"
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def play(repo: Path, env: dict[str, str], rng: random.Random, state: Round) -> None:
    commands: list[str] = []
    for index in range(1, COMMANDS + 1):
        commands += ["--command", f"echo {index} >> starts-{state.number}; sleep {rng.uniform(0.05, 0.4):.2f}"]
    started = cli(repo, env, "mcp-runner-start.sh", *commands, "--format", "json")
    assert started.returncode == 0, started.stderr
    state.run_id = json.loads(started.stdout)["run_id"]
    done = threading.Event()
    errors: list[BaseException] = []

    def guarded(action: Any, delay: float = 0.0) -> threading.Thread:
        def body() -> None:
            try:
                time.sleep(delay)  # a random moment of the race, not a wait for a condition
                action()
            except BaseException as exc:  # reported by the round
                errors.append(exc)

        return threading.Thread(target=body)

    def later(action: Any) -> threading.Thread:
        return guarded(action, rng.uniform(0, 2.0))

    def cancel() -> None:
        result = cli(repo, env, "mcp-runner-cancel.sh", state.run_id, "--wait", "30")
        state.cancel = (result.returncode, starts(repo, state.number))
        assert result.returncode in (0, 1), result.stderr
        assert result.stderr.count("\n") <= 1, result.stderr

    def resume() -> None:
        result = cli(repo, env, "mcp-runner-start.sh", "--resume", state.run_id)
        assert result.returncode in (0, 1), result.stderr
        assert result.stderr.count("\n") == (0 if result.returncode == 0 else 1), result.stderr
        state.resumes.append(result.returncode)

    def kill() -> None:
        pid = read(repo, state.run_id).get("runner_pid")
        if isinstance(pid, int) and any(p.pid == pid and p.is_worker() for p in processes(tag)):
            state.killed = sigkill(pid, group=True)

    def poll() -> None:
        while not done.is_set():
            result = cli(repo, env, "mcp-runner-poll.sh", state.run_id, "--format", "json")
            assert result.returncode == 0, result.stderr
            json.loads(result.stdout)
            state.polls += 1

    tag = f"MCP_RUNNER_REPO_ROOT={repo}"
    threads = [later(cancel), later(resume), later(resume), later(kill)]
    poller = guarded(poll)
    for thread in [*threads, poller]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    poller.join()
    if errors:
        raise errors[0]
    record = read(repo, state.run_id)
    if record["status"] not in ("succeeded", "failed", "cancelled") or record["metrics_recorded"] is not True:
        # Nobody ended it (its worker was killed), or a kill hid its metrics line:
        # cancel ends it, or completes the line.
        cli(repo, env, "mcp-runner-cancel.sh", state.run_id, "--wait", "30")
    wait_quiet(tag)


def test_start_cancel_resume_poll_and_kill_race_on_one_run(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = runner_env(repo, MCP_RUNNER_SERVER="local")
    rng = random.Random(SEED)
    rounds = [Round(n) for n in range(env_int("RACE_ROUNDS", 4))]
    began = time.monotonic()
    for state in rounds:
        play(repo, env, rng, state)

    report = check_tree(repo)  # every JSON file whole, no metrics line twice
    for state in rounds:
        record = report.manifests[state.run_id]
        assert record["status"] in ("succeeded", "failed", "cancelled"), record["status"]
        if state.cancel is not None and state.cancel[0] == 0:
            assert record["status"] == "cancelled"
            assert starts(repo, state.number) == state.cancel[1], "a command started after the cancel returned"
        events = [e["outcome"] for e in record["resume_events"]]
        assert events.count("accepted") == state.resumes.count(0), (events, state.resumes)
        assert events.count("blocked") == state.resumes.count(1), (events, state.resumes)
        lines = [m for m in report.metrics if m["run_id"] == state.run_id]
        assert len(lines) == 1 and lines[0]["completed_at"] == record["completed_at"], lines
        assert record["metrics_recorded"] is True and record.get("resume_claim") is None
    figures(
        "race",
        rounds=len(rounds),
        cancels_returned_0=sum(1 for s in rounds if s.cancel and s.cancel[0] == 0),
        resumes=sum(len(s.resumes) for s in rounds),
        resumes_accepted=sum(s.resumes.count(0) for s in rounds),
        kills=sum(s.killed for s in rounds),
        polls=sum(s.polls for s in rounds),
        seconds=round(time.monotonic() - began, 1),
    )
