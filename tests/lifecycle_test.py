"""Ending a run: terminal status, guardrail sentence and exactly one metrics line,
whatever point a previous attempt was killed at."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

from runs import Run, create_run, pid_alive

from mcp_core import lifecycle, metrics, process, run_record, store
from mcp_core import manifest as manifest_mod
from mcp_core.jsfmt import iso_now


def change(run: Run, edit: Any) -> None:
    run_record.update(run.manifest_path, edit)


def test_finish_run_once(repo: Path) -> None:
    run = create_run(repo, ["echo a"])
    log = io.StringIO()
    result = lifecycle.finish_run(run.loc, run.manifest_path, "failed", "command-failed", log=log)
    assert result.changed is True
    manifest = run.manifest()
    assert (manifest["status"], manifest["status_detail"]) == ("failed", "command-failed")
    assert manifest["completed_at"] is not None
    assert manifest["metrics_recorded"] is True
    assert manifest["summary"] == manifest_mod.GUARDRAIL_MISSING
    assert log.getvalue() == manifest_mod.GUARDRAIL_MISSING + "\n"
    assert len(run.metrics_lines()) == 1
    again = lifecycle.finish_run(run.loc, run.manifest_path, "cancelled", None, log=log)
    assert again.changed is False
    assert again.manifest["status"] == "failed"
    assert len(run.metrics_lines()) == 1


def test_a_failed_guardrail_and_an_existing_summary(repo: Path) -> None:
    run = create_run(repo, ["bash scripts/spec-guard.sh"])

    def guard_failed(manifest: dict[str, Any], now: str) -> None:
        manifest["commands"][0]["status"] = "failed"
        manifest["summary"] = "Earlier note."

    lifecycle.finish_run(run.loc, run.manifest_path, "failed", "command-failed", update=guard_failed, log=io.StringIO())
    assert run.manifest()["summary"] == "Earlier note.\n" + manifest_mod.GUARDRAIL_FAILED
    assert json.loads(run.metrics_lines()[0])["guardrails_present"] is False


def test_killed_after_the_terminal_save(repo: Path) -> None:
    run = create_run(repo, ["echo a"])
    change(run, lambda m: m.update(status="succeeded", completed_at=iso_now()))
    assert lifecycle.complete_pending_metrics(run.loc, run.manifest_path, log=io.StringIO()) is True
    manifest = run.manifest()
    assert manifest["metrics_recorded"] is True
    assert manifest["summary"] == manifest_mod.GUARDRAIL_MISSING
    assert len(run.metrics_lines()) == 1
    assert lifecycle.complete_pending_metrics(run.loc, run.manifest_path) is False


def test_killed_after_the_metrics_line(repo: Path) -> None:
    run = create_run(repo, ["echo a"])
    other = create_run(repo, ["echo b"])
    lifecycle.finish_run(other.loc, other.manifest_path, "failed", None, log=io.StringIO())
    noted = run.loc.metrics_file.stat().st_size
    lifecycle.finish_run(run.loc, run.manifest_path, "succeeded", None, log=io.StringIO())
    assert metrics.OFFSET_KEY not in run.manifest()  # dropped with the last save
    # As a kill before the last save leaves it: the size noted before the append, not recorded yet.
    change(run, lambda m: m.update(metrics_recorded=False, **{metrics.OFFSET_KEY: noted}))
    assert lifecycle.complete_pending_metrics(run.loc, run.manifest_path, log=io.StringIO()) is False
    assert run.manifest()["metrics_recorded"] is True
    assert len(run.metrics_lines()) == 1
    assert len(run.loc.metrics_file.read_text().splitlines()) == 2  # the other run's and this one's


def test_the_search_for_a_recorded_line_starts_at_the_noted_size(repo: Path) -> None:
    run = create_run(repo, ["echo a"])
    lifecycle.finish_run(run.loc, run.manifest_path, "succeeded", None, log=io.StringIO())
    size = run.loc.metrics_file.stat().st_size
    # The line is before the noted size: the search does not look there, so it appends.
    change(run, lambda m: m.update(metrics_recorded=False, **{metrics.OFFSET_KEY: size}))
    assert lifecycle.complete_pending_metrics(run.loc, run.manifest_path, log=io.StringIO()) is True
    assert len(run.metrics_lines()) == 2
    # A noted size beyond the file's end (the file was replaced) searches it whole.
    change(run, lambda m: m.update(metrics_recorded=False, **{metrics.OFFSET_KEY: 10**9}))
    assert lifecycle.complete_pending_metrics(run.loc, run.manifest_path, log=io.StringIO()) is False
    assert len(run.metrics_lines()) == 2


def test_a_retried_run_gets_a_new_line_when_it_ends_again(repo: Path) -> None:
    run = create_run(repo, ["echo a"])
    lifecycle.finish_run(run.loc, run.manifest_path, "failed", "command-failed", log=io.StringIO())
    change(run, lambda m: m.update(status="in_progress", completed_at=None, metrics_recorded=False))
    lifecycle.finish_run(run.loc, run.manifest_path, "succeeded", None, log=io.StringIO())
    assert [json.loads(line)["status"] for line in run.metrics_lines()] == ["failed", "succeeded"]


def test_cancel_a_run_whose_worker_is_gone(repo: Path) -> None:
    run = create_run(repo, ["echo a", "sleep 100", "echo c"])

    def midway(manifest: dict[str, Any]) -> None:
        manifest["status"] = "in_progress"
        manifest["commands"][0].update(status="succeeded", exit_code=0)
        manifest["commands"][1].update(status="running", started_at=iso_now())

    change(run, midway)
    result = lifecycle.cancel_run(run.loc, run.manifest_path, "Cancelled by a test.", log=io.StringIO())
    assert result.changed is True
    manifest = run.manifest()
    assert (manifest["status"], manifest["status_detail"]) == ("cancelled", None)
    assert [c["status"] for c in manifest["commands"]] == ["succeeded", "failed", "pending"]
    running = manifest["commands"][1]
    assert running["summary"] == "Cancelled by a test."
    artifact = store.read_json(run.loc.repo_root / running["error_file"])
    assert artifact["reason"] == "cancelled"
    assert artifact["command_index"] == 2 and artifact["command"] == "sleep 100"
    assert manifest["summary"].startswith("Cancelled by a test.\n")
    assert json.loads(run.metrics_lines()[0])["status"] == "cancelled"


def test_stop_recorded_server_trusts_only_a_matching_start_time(repo: Path) -> None:
    server = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        ticks = process.start_ticks(server.pid)
        assert isinstance(ticks, int)
        record = {"mcp_server": {"pid": server.pid, "start_ticks": ticks + 1}}
        assert lifecycle.stop_recorded_server(record, 0.2) is False
        assert pid_alive(server.pid)
        record["mcp_server"]["start_ticks"] = ticks
        assert lifecycle.stop_recorded_server(record, 0.2) is True
        server.wait(timeout=10)
        assert lifecycle.stop_recorded_server({}, 0.2) is False
    finally:
        server.kill()
        server.wait(timeout=30)
