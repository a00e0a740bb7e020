"""mcp_core.prune: which runs go, which stay and why, and that nothing else is touched."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import snapshot
from gen_runs import GeneratedRun, generate

from mcp_core import prune
from mcp_core.errors import RunnerError
from mcp_core.jsfmt import now_ms
from mcp_core.paths import Locations, locate
from mcp_core.process import start_ticks
from mcp_core.runs_index import read_runs

DAY = 86_400.0


def loc_of(repo: Path, **env: str) -> Locations:
    return locate({"MCP_RUNNER_REPO_ROOT": str(repo), **env})


def run_dir(repo: Path, run_id: str) -> Path:
    return repo / ".runs" / "0001" / "mcp" / run_id


def pointer_dir(repo: Path, run_id: str) -> Path:
    return repo / ".runs" / "local-mcp" / run_id


def outcomes_by_id(outcomes: list[prune.Outcome]) -> dict[str, prune.Outcome]:
    return {o.run_id: o for o in outcomes}


def edit_manifest(repo: Path, run_id: str, **changes: object) -> None:
    path = run_dir(repo, run_id) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(changes)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


@pytest.fixture
def daily(repo: Path) -> list[GeneratedRun]:
    """12 runs a day apart, oldest first; the three newest have not ended."""
    return generate(repo, 12, seed=21, spacing_seconds=DAY)


def test_policy_needs_a_limit() -> None:
    with pytest.raises(RunnerError) as caught:
        prune.Policy(keep=None, older_than_days=None)
    assert caught.value.message == "Prune needs --keep N or --older-than DAYS; nothing was pruned."


@pytest.mark.parametrize(
    ("keep", "days", "message"),
    [(-1, None, "--keep requires a numeric value"), (None, -0.5, "--older-than requires a numeric value"),
     (None, float("nan"), "--older-than requires a numeric value"),
     (3, float("inf"), "--older-than requires a numeric value")],
)
def test_policy_rejects_bad_numbers(keep: int | None, days: float | None, message: str) -> None:
    with pytest.raises(RunnerError) as caught:
        prune.Policy(keep=keep, older_than_days=days)
    assert caught.value.message == message


def test_keep_removes_older_terminal_runs_with_their_pointers(repo: Path, daily: list[GeneratedRun]) -> None:
    metrics_before = (repo / ".runs" / "0001" / "metrics.json").read_bytes()
    live, stale, queued = daily[-1], daily[-2], daily[-3]
    untouched_before = {g.run_id: snapshot(run_dir(repo, g.run_id)) for g in (live, stale, queued)}

    outcomes = prune.prune(loc_of(repo), prune.Policy(keep=2, older_than_days=None), dry_run=False, now_ms=now_ms())

    by_id = outcomes_by_id(outcomes)
    assert [o.run_id for o in outcomes] == [g.run_id for g in reversed(daily)]
    assert by_id[live.run_id].reason == "among the 2 newest runs"
    assert by_id[stale.run_id].reason == "among the 2 newest runs"
    assert (by_id[queued.run_id].action, by_id[queued.run_id].reason) == (
        "kept",
        "beyond the 2 newest runs, but not terminal (status queued)",
    )
    for g in daily[:-3]:
        outcome = by_id[g.run_id]
        assert (outcome.action, outcome.status) == ("removed", g.status)
        assert outcome.reason == f"beyond the 2 newest runs; pointer .runs/local-mcp/{g.run_id} removed"
        assert outcome.path == f".runs/0001/mcp/{g.run_id}"
        assert not run_dir(repo, g.run_id).exists()
        assert not pointer_dir(repo, g.run_id).exists()
    for g in (live, stale, queued):
        assert snapshot(run_dir(repo, g.run_id)) == untouched_before[g.run_id]
        assert (pointer_dir(repo, g.run_id) / "manifest.json").is_symlink()
    assert (repo / ".runs" / "0001" / "metrics.json").read_bytes() == metrics_before
    assert sorted(p.name for p in (repo / ".runs" / "0001" / "mcp").iterdir()) == sorted(
        g.run_id for g in (live, stale, queued)
    )  # no hidden leftovers either


def test_older_than(repo: Path, daily: list[GeneratedRun]) -> None:
    # Run k (0 = oldest) started 11-k days (and a minute) ago and ran for minutes at most.
    outcomes = prune.prune(loc_of(repo), prune.Policy(None, 3.5), dry_run=False, now_ms=now_ms())
    by_id = outcomes_by_id(outcomes)
    removed = [g.run_id for g in daily if by_id[g.run_id].action == "removed"]
    assert removed == [g.run_id for g in daily[:8]]  # ended 11 .. 4 days ago
    assert by_id[daily[8].run_id].action == "kept"  # ended about 3 days ago
    assert by_id[daily[0].run_id].reason.startswith("ended 11.0 days ago; pointer ")
    assert by_id[daily[-1].run_id].reason.startswith("started 0.0 days ago, not more than 3.5")  # still running


def test_keep_and_older_than_both_must_select(repo: Path, daily: list[GeneratedRun]) -> None:
    outcomes = prune.prune(loc_of(repo), prune.Policy(9, 1), dry_run=False, now_ms=now_ms())
    by_id = outcomes_by_id(outcomes)
    assert [g.run_id for g in daily if by_id[g.run_id].action == "removed"] == [g.run_id for g in daily[:3]]
    assert by_id[daily[0].run_id].reason.startswith("beyond the 9 newest runs; ended 11.0 days ago; pointer ")


def test_dry_run_changes_nothing(repo: Path, daily: list[GeneratedRun]) -> None:
    before = snapshot(repo)
    outcomes = prune.prune(loc_of(repo), prune.Policy(0, 0), dry_run=True, now_ms=now_ms())
    assert snapshot(repo) == before
    actions = [o.action for o in outcomes]
    assert actions == ["kept"] * 3 + ["would-remove"] * 9
    assert outcomes[-1].reason == (
        f"beyond the 0 newest runs; ended 11.0 days ago; pointer .runs/local-mcp/{daily[0].run_id} would be removed"
    )


def test_runs_that_have_not_ended_are_never_removed(repo: Path, daily: list[GeneratedRun]) -> None:
    before = {g.run_id: snapshot(run_dir(repo, g.run_id)) for g in daily[-3:]}
    prune.prune(loc_of(repo), prune.Policy(0, 0), dry_run=False, now_ms=now_ms() + 100 * DAY * 1000)
    assert sorted(p.name for p in (repo / ".runs" / "0001" / "mcp").iterdir()) == sorted(g.run_id for g in daily[-3:])
    assert {g.run_id: snapshot(run_dir(repo, g.run_id)) for g in daily[-3:]} == before


def test_a_live_worker_keeps_a_terminal_run(repo: Path, daily: list[GeneratedRun]) -> None:
    worker = subprocess.Popen(["sleep", "60"])
    try:
        alive, reused = daily[0], daily[1]
        edit_manifest(repo, alive.run_id, runner_pid=worker.pid, runner_start_ticks=start_ticks(worker.pid))
        # The same pid with another start time is a reused pid: that worker is gone.
        edit_manifest(repo, reused.run_id, runner_pid=worker.pid, runner_start_ticks=1)
        outcomes = outcomes_by_id(prune.prune(loc_of(repo), prune.Policy(0, None), dry_run=False, now_ms=now_ms()))
    finally:
        worker.kill()
        worker.wait(timeout=30)
    assert outcomes[alive.run_id].action == "kept"
    expected = f"beyond the 0 newest runs, but its worker is still alive (pid {worker.pid})"
    assert outcomes[alive.run_id].reason == expected
    assert run_dir(repo, alive.run_id).is_dir()
    assert outcomes[reused.run_id].action == "removed"


def test_a_run_that_changed_since_the_scan_is_refused(repo: Path, daily: list[GeneratedRun]) -> None:
    loc = loc_of(repo)
    record = next(r for r in read_runs(loc.runs_root).runs if r.run_id == daily[0].run_id)
    edit_manifest(repo, daily[0].run_id, status="in_progress")  # e.g. resume --retry-failed meanwhile
    with pytest.raises(prune.Refusal, match=r"^not terminal \(status in_progress\)$"):
        prune._remove(loc, record)
    assert run_dir(repo, daily[0].run_id).is_dir()
    assert pointer_dir(repo, daily[0].run_id).is_dir()


def test_pointers_are_removed_only_when_they_point_at_the_run(repo: Path, daily: list[GeneratedRun]) -> None:
    to_other, crowded, stub, flattened, absent = (g.run_id for g in daily[:5])
    # A pointer that leads to another run's manifest stays.
    link = pointer_dir(repo, to_other) / "manifest.json"
    link.unlink()
    os.symlink(f"../../0001/mcp/{daily[8].run_id}/manifest.json", link)
    # A pointer folder holding more than a pointer stays.
    (pointer_dir(repo, crowded) / "mcp-server.log").write_text("legacy transcript\n", encoding="utf-8")
    # A stub where symlinks are not available, and a symlink checked out as a text file.
    stub_file = pointer_dir(repo, stub) / "manifest.json"
    stub_file.unlink()
    stub_file.write_text(
        json.dumps({"redirect_to": f".runs/0001/mcp/{stub}", "manifest": f".runs/0001/mcp/{stub}/manifest.json"}),
        encoding="utf-8",
    )
    flat_file = pointer_dir(repo, flattened) / "manifest.json"
    flat_file.unlink()
    flat_file.write_text(f"../../0001/mcp/{flattened}/manifest.json", encoding="utf-8")
    for path in pointer_dir(repo, absent).iterdir():
        path.unlink()
    pointer_dir(repo, absent).rmdir()

    outcomes = outcomes_by_id(prune.prune(loc_of(repo), prune.Policy(7, None), dry_run=False, now_ms=now_ms()))

    runs = (to_other, crowded, stub, flattened, absent)
    assert {run_id: outcomes[run_id].action for run_id in runs} == dict.fromkeys(runs, "removed")
    assert outcomes[to_other].reason.endswith(f"pointer .runs/local-mcp/{to_other} left: it does not point at this run")
    assert outcomes[crowded].reason.endswith(f"pointer .runs/local-mcp/{crowded} left: it holds other files")
    assert pointer_dir(repo, to_other).is_dir() and pointer_dir(repo, crowded).is_dir()
    assert not pointer_dir(repo, stub).exists() and not pointer_dir(repo, flattened).exists()
    assert outcomes[absent].reason == "beyond the 7 newest runs"
    assert run_dir(repo, daily[8].run_id).is_dir()


def test_symlinks_are_never_followed(repo: Path, daily: list[GeneratedRun], tmp_path: Path) -> None:
    outside = tmp_path / "outside-run"
    outside.mkdir()
    (outside / "manifest.json").write_text(
        json.dumps({"status": "succeeded", "started_at": "2020-01-01T00:00:00.000Z"}), encoding="utf-8"
    )
    (outside / "precious.txt").write_text("keep me\n", encoding="utf-8")
    os.symlink(outside, repo / ".runs" / "0001" / "mcp" / "2020-01-01T00-00-00-000Z-1")
    # A pointer directory that is a symlink leading outside is not removed either.
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "manifest.json").write_text("{}", encoding="utf-8")
    target = pointer_dir(repo, daily[0].run_id)
    for path in target.iterdir():
        path.unlink()
    target.rmdir()
    os.symlink(victim, target)

    outcomes = outcomes_by_id(prune.prune(loc_of(repo), prune.Policy(0, None), dry_run=False, now_ms=now_ms()))

    assert outcomes["2020-01-01T00-00-00-000Z-1"].action == "kept"
    assert outcomes["2020-01-01T00-00-00-000Z-1"].reason == (
        "manifest unusable: run directory is a symlink, not followed"
    )
    assert (outside / "precious.txt").read_text(encoding="utf-8") == "keep me\n"
    assert outcomes[daily[0].run_id].action == "removed"
    assert outcomes[daily[0].run_id].reason.endswith("left: not a plain directory")
    assert (victim / "manifest.json").read_text(encoding="utf-8") == "{}"


def test_a_run_holding_the_metrics_is_refused(repo: Path, daily: list[GeneratedRun]) -> None:
    holder = run_dir(repo, daily[0].run_id)
    loc = loc_of(repo, MCP_RUNNER_METRICS_ROOT=str(holder / "metrics"))
    outcomes = outcomes_by_id(prune.prune(loc, prune.Policy(0, None), dry_run=False, now_ms=now_ms()))
    assert outcomes[daily[0].run_id].action == "kept"
    assert outcomes[daily[0].run_id].reason == (
        f"beyond the 0 newest runs, but holds .runs/0001/mcp/{daily[0].run_id}/metrics; refused"
    )
    assert holder.is_dir()


def test_unusable_manifests_are_kept(repo: Path, daily: list[GeneratedRun]) -> None:
    (run_dir(repo, daily[0].run_id) / "manifest.json").write_text("{", encoding="utf-8")
    outcomes = prune.prune(loc_of(repo), prune.Policy(0, None), dry_run=False, now_ms=now_ms())
    assert outcomes[-1].run_id == daily[0].run_id
    assert (outcomes[-1].action, outcomes[-1].status) == ("kept", None)
    assert outcomes[-1].reason.startswith("manifest unusable: not valid JSON: ")
    assert run_dir(repo, daily[0].run_id).is_dir()


def test_age_unknown_is_kept(repo: Path) -> None:
    loose = repo / ".runs" / "0001" / "mcp" / "no-dates"
    loose.mkdir(parents=True)
    (loose / "manifest.json").write_text(json.dumps({"status": "failed"}), encoding="utf-8")
    outcomes = prune.prune(loc_of(repo), prune.Policy(None, 1), dry_run=False, now_ms=now_ms())
    assert [(o.action, o.reason) for o in outcomes] == [
        ("kept", "age unknown (no parsable completed_at or started_at)")
    ]


def test_fixture_dry_run(fixture_repo: Path) -> None:
    before = snapshot(fixture_repo)
    outcomes = prune.prune(loc_of(fixture_repo), prune.Policy(2, None), dry_run=True, now_ms=now_ms())
    assert snapshot(fixture_repo) == before
    assert [o.action for o in outcomes][:2] == ["kept", "kept"]
    for outcome in outcomes[2:]:
        # The old runner recorded no start ticks: a pid that happens to be alive here keeps its run.
        assert outcome.action in ("would-remove", "kept")
        if outcome.action == "would-remove":
            assert outcome.reason == (
                f"beyond the 2 newest runs; pointer .runs/local-mcp/{outcome.run_id} would be removed"
            )


def test_write_log(repo: Path, daily: list[GeneratedRun]) -> None:
    loc = loc_of(repo)
    policy = prune.Policy(10, 2.0)
    now = now_ms()
    outcomes = prune.prune(loc, policy, dry_run=True, now_ms=now)
    path = prune.write_log(loc, policy, outcomes, dry_run=True, now_ms=now)
    assert path.parent == repo / ".runs" / "0001" / "prunes"
    assert path.name.endswith("-dry-run.log")
    log = json.loads(path.read_text(encoding="utf-8"))
    assert list(log) == ["generated_at", "dry_run", "repo_root", "task_runs_root", "keep", "older_than_days", "runs"]
    assert path.name == log["generated_at"].replace(":", "-").replace(".", "-") + "-dry-run.log"
    assert (log["dry_run"], log["repo_root"], log["task_runs_root"]) == (True, str(repo), ".runs/0001/mcp")
    assert (log["keep"], log["older_than_days"]) == (10, 2)
    assert log["runs"] == [o.as_json() for o in outcomes]
    assert list(log["runs"][0]) == ["run_id", "path", "status", "action", "reason"]
    second = prune.write_log(loc, policy, outcomes, dry_run=False, now_ms=now)
    assert second.name.endswith("-prune.log")
    third = prune.write_log(loc, policy, outcomes, dry_run=False, now_ms=now)
    assert third != second and second.is_file()  # same millisecond: both logs kept
