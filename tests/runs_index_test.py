"""mcp_core.runs_index: reading every run of a task, and what a person sees of each."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import snapshot
from gen_runs import generate

from mcp_core import runs_index
from mcp_core.errors import RunnerError
from mcp_core.jsfmt import parse_timestamp_ms
from mcp_core.paths import locate, validate_task_id

FIXTURE_ORDER = [
    "2025-10-19T06-54-01-535Z-diagnostics",
    "2025-10-19T06-30-08-316Z-55446",
    "2025-10-18T18-31-38-655Z-41397",
    "2025-10-18T18-30-06-976Z-41083",
    "2025-10-18T18-26-16-688Z-39463",
    "demo-legacy",
]


def runs_root(repo: Path) -> Path:
    return repo / ".runs" / "0001" / "mcp"


def write_manifest(repo: Path, run_id: str, manifest: object) -> Path:
    run_dir = runs_root(repo) / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return run_dir


def test_fixture_runs_newest_first_and_nothing_written(fixture_repo: Path) -> None:
    before = snapshot(fixture_repo)
    index = runs_index.read_runs(runs_root(fixture_repo))
    assert [r.run_id for r in index.runs] == FIXTURE_ORDER
    assert index.unreadable == []
    assert snapshot(fixture_repo) == before


def test_fixture_views(fixture_repo: Path) -> None:
    index = runs_index.read_runs(runs_root(fixture_repo))
    now = parse_timestamp_ms("2025-10-19T07:00:00.000Z")
    assert now is not None
    views = {r.run_id: runs_index.view(r, now) for r in index.runs}

    succeeded = views["2025-10-18T18-26-16-688Z-39463"]
    assert (succeeded.status, succeeded.commands_passed, succeeded.commands_total) == ("succeeded", 4, 4)
    assert succeeded.duration_seconds == 53.707
    assert succeeded.stale is False  # terminal: never STALE, however old the heartbeat
    # Ended: when it ended (completed 2025-10-18T18:27:10.396Z, seen 07:00:00.000Z next day), not
    # a heartbeat age that would grow for ever.
    assert (succeeded.heartbeat_age_seconds, succeeded.ended_ago_seconds) == (None, 45169.604)
    assert succeeded.summary == ""

    diagnostics = views["2025-10-19T06-54-01-535Z-diagnostics"]
    assert diagnostics.summary.startswith("Guardrail command failed; re-run")
    assert diagnostics.heartbeat_age_seconds is None  # no heartbeat_at in this manifest
    assert diagnostics.duration_seconds == 0

    # No run summary: the failed command's summary stands in.
    timed_out = views["2025-10-18T18-30-06-976Z-41083"]
    assert timed_out.summary.startswith("sleep 60 timed out after 10 seconds")
    assert (timed_out.commands_passed, timed_out.commands_failed, timed_out.status_detail) == (0, 1, "command-failed")

    legacy = views["demo-legacy"]
    assert (legacy.commands_total, legacy.duration_seconds) == (0, 600)


def test_a_run_that_has_not_ended_shows_its_heartbeat_age() -> None:
    now = parse_timestamp_ms("2025-10-19T07:00:00.000Z")
    assert now is not None
    manifest = {"status": "in_progress", "heartbeat_at": "2025-10-19T06:59:47.500Z", "completed_at": None}
    record = runs_index.RunRecord(Path("/nowhere"), "r1", manifest, now - 60_000)
    running = runs_index.view(record, now)
    assert (running.heartbeat_age_seconds, running.ended_ago_seconds, running.stale) == (12.5, None, False)
    stale = runs_index.view(record, now + 3_600_000)
    assert (stale.heartbeat_age_seconds, stale.stale) == (3612.5, True)


def test_unusable_entries_are_reported_not_raised(repo: Path, tmp_path: Path) -> None:
    write_manifest(repo, "2025-01-01T00-00-00-000Z-1", {"status": "succeeded", "started_at": "2025-01-01T00:00:00Z"})
    bad_json = runs_root(repo) / "2025-01-02T00-00-00-000Z-2"
    bad_json.mkdir()
    (bad_json / "manifest.json").write_text("{not json", encoding="utf-8")
    write_manifest(repo, "2025-01-03T00-00-00-000Z-3", ["an", "array"])
    (runs_root(repo) / "2025-01-04T00-00-00-000Z-4").mkdir()  # no manifest at all
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text(json.dumps({"status": "succeeded"}), encoding="utf-8")
    os.symlink(outside, runs_root(repo) / "2025-01-05T00-00-00-000Z-5")
    planted = runs_root(repo) / "2025-01-06T00-00-00-000Z-6"
    planted.mkdir()
    os.symlink(outside / "manifest.json", planted / "manifest.json")
    (runs_root(repo) / ".pruning-old-1").mkdir()  # hidden: not a run
    (runs_root(repo) / "README.md").write_text("not a run\n", encoding="utf-8")
    bad_utf8 = runs_root(repo) / "2025-01-07T00-00-00-000Z-7"
    bad_utf8.mkdir()
    (bad_utf8 / "manifest.json").write_bytes(b'{"status": "succeeded", "summary": "\xff\xfe"}')
    (runs_root(repo) / "2025-01-08T00-00-00-000Z-8" / "manifest.json").mkdir(parents=True)  # cannot be read

    index = runs_index.read_runs(runs_root(repo))

    assert [r.run_id for r in index.runs] == ["2025-01-07T00-00-00-000Z-7", "2025-01-01T00-00-00-000Z-1"]
    reasons = {u.run_id: u.reason for u in index.unreadable}
    assert reasons["2025-01-02T00-00-00-000Z-2"] == (
        "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"
    )
    assert reasons["2025-01-03T00-00-00-000Z-3"] == "not a JSON object"
    assert reasons["2025-01-04T00-00-00-000Z-4"] == "manifest missing"
    assert reasons["2025-01-05T00-00-00-000Z-5"] == "run directory is a symlink, not followed"
    assert reasons["2025-01-06T00-00-00-000Z-6"] == "a symlink, not followed"
    assert reasons["2025-01-08T00-00-00-000Z-8"] == "not a regular file"
    assert len(reasons) == 6
    assert index.unreadable[0].manifest_path == runs_root(repo) / "2025-01-02T00-00-00-000Z-2" / "manifest.json"


def test_unreadable_manifest_permission(repo: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    run_dir = write_manifest(repo, "2025-01-01T00-00-00-000Z-1", {"status": "failed"})
    (run_dir / "manifest.json").chmod(0)
    index = runs_index.read_runs(runs_root(repo))
    assert [u.reason for u in index.unreadable] == ["Permission denied"]


def test_missing_runs_root_is_empty(repo: Path) -> None:
    assert runs_index.read_runs(runs_root(repo)) == runs_index.RunsIndex([], [])


def test_sort_falls_back_to_the_run_id_stamp_then_the_id(repo: Path) -> None:
    march = {"status": "succeeded", "started_at": "2025-03-01T00:00:00.000Z"}
    write_manifest(repo, "2025-03-01T00-00-00-000Z-1", march)
    write_manifest(repo, "2025-04-01T00-00-00-000Z-2", {"status": "succeeded"})  # no started_at: the id's stamp
    write_manifest(repo, "2025-02-01T00-00-00-000Z-3", {"status": "failed", "started_at": "garbage"})
    write_manifest(repo, "zzz-no-time", {"status": "failed"})
    write_manifest(repo, "aaa-no-time", {"status": "failed"})
    # started_at wins over the id when both exist
    may = {"status": "succeeded", "started_at": "2025-05-01T00:00:00.000Z"}
    write_manifest(repo, "2020-01-01T00-00-00-000Z-4", may)
    index = runs_index.read_runs(runs_root(repo))
    assert [r.run_id for r in index.runs] == [
        "2020-01-01T00-00-00-000Z-4",
        "2025-04-01T00-00-00-000Z-2",
        "2025-03-01T00-00-00-000Z-1",
        "2025-02-01T00-00-00-000Z-3",
        "zzz-no-time",
        "aaa-no-time",
    ]


def test_generated_runs_read_back_as_generated(repo: Path) -> None:
    generated = generate(repo, 30, seed=5)
    index = runs_index.read_task_runs(locate({"MCP_RUNNER_REPO_ROOT": str(repo)}))
    assert [r.run_id for r in index.runs] == [g.run_id for g in reversed(generated)]
    assert [r.status for r in index.runs] == [g.status for g in reversed(generated)]
    now = parse_timestamp_ms(index.runs[0].manifest["heartbeat_at"])
    assert now is not None
    stale = [r.run_id for r in index.runs if runs_index.is_stale(r, now + 1000)]
    assert stale == [generated[-2].run_id]  # the one whose worker died; not the live one, not the finished ones


def test_view_stale_only_when_not_terminal() -> None:
    manifest = {
        "status": "in_progress",
        "heartbeat_at": "2025-01-01T00:00:00.000Z",
        "heartbeat_stale_after_seconds": 30,
    }
    record = runs_index.RunRecord(Path("/r"), "x", manifest, None)
    start = parse_timestamp_ms("2025-01-01T00:00:00.000Z")
    assert start is not None
    assert runs_index.view(record, start + 30_000).stale is False  # not strictly older
    assert runs_index.view(record, start + 30_001).stale is True
    ended = runs_index.RunRecord(Path("/r"), "x", {**manifest, "status": "cancelled"}, None)
    assert runs_index.view(ended, start + 99_000).stale is False


def test_view_tolerates_odd_shapes() -> None:
    record = runs_index.RunRecord(
        Path("/r"), "x", {"status": 7, "commands": "nope", "summary": ["x"], "started_at": 5}, None
    )
    run = runs_index.view(record, 0)
    assert (run.status, run.commands_total, run.summary, run.started_at) == (None, 0, "", None)


def test_summary_is_its_first_non_empty_line() -> None:
    record = runs_index.RunRecord(Path("/r"), "x", {"summary": "\n  first line  \nsecond"}, None)
    assert runs_index.view(record, 0).summary == "first line"


@pytest.mark.parametrize(
    ("value", "wanted"),
    [("failed", {"failed"}), ("failed,cancelled", {"failed", "cancelled"}), (" stale , queued", {"stale", "queued"})],
)
def test_status_filter(value: str, wanted: set[str]) -> None:
    assert runs_index.parse_status_filter(value) == frozenset(wanted)


@pytest.mark.parametrize(("value", "shown"), [("weird", "weird"), ("failed,bad", "bad"), (",", ",")])
def test_status_filter_rejects(value: str, shown: str) -> None:
    with pytest.raises(RunnerError) as caught:
        runs_index.parse_status_filter(value)
    expected = "queued, in_progress, succeeded, failed, cancelled, stale"
    assert caught.value.message == f"Unsupported status: {shown}. Expected one of: {expected}."


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (0, "0.0s"), (7.25, "7.2s"), (59.94, "59.9s"), (60, "1m 00s"), (725, "12m 05s"),
     (3600, "1h 00m"), (10920, "3h 02m"), (86400 * 4 + 3600 * 6, "4d 06h")],
)
def test_format_seconds(seconds: float | None, text: str) -> None:
    assert runs_index.format_seconds(seconds) == text


@pytest.mark.parametrize("task", ["0001", "task-2", "a.b_c"])
def test_task_ids_accepted(task: str) -> None:
    assert validate_task_id(task) == task


@pytest.mark.parametrize("task", ["..", ".", "../x", "a/b", "", "-x", "x\ny", ".hidden"])
def test_task_ids_rejected(task: str) -> None:
    with pytest.raises(RunnerError, match="^Invalid task id: "):
        validate_task_id(task)
