"""Readable Codex events and the per-run latest-event file (mcp_core.codex_events)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_core import codex_events
from mcp_core.codex_events import (
    LATEST_EVENT_NAME,
    LatestEvent,
    describe_codex_event,
    describe_exec_event,
    read_latest_event,
    running_command_event,
)


@pytest.mark.parametrize(
    ("msg", "line"),
    [
        ({"type": "task_started", "turn_id": "t"}, "task_started"),
        (
            {"type": "stream_error", "message": "Reconnecting... waiting for network",
             "additional_details": "Connection failed: error sending request"},
            "stream_error: Reconnecting... waiting for network (Connection failed: error sending request)",
        ),
        (
            {"type": "session_configured", "session_id": "s", "model": "gpt-x", "approval_policy": "never",
             "sandbox_policy": {"type": "workspace-write", "network_access": False}},
            "session_configured: model gpt-x, approval never, sandbox workspace-write",
        ),
        (  # Codex 0.153.4 reports a permission profile instead of the sandbox's name
            {"type": "session_configured", "model": "m", "approval_policy": "never", "permission_profile": {
                "type": "managed", "file_system": {"type": "restricted", "entries": [
                    {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
                    {"path": {"type": "path", "path": "/repo"}, "access": "write"}]}}},
            "session_configured: model m, approval never, files writable",
        ),
        (
            {"type": "session_configured", "model": "m", "approval_policy": "never", "permission_profile": {
                "type": "managed", "file_system": {"type": "restricted", "entries": [
                    {"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"}]}}},
            "session_configured: model m, approval never, files read-only",
        ),
        ({"type": "exec_command_begin", "command": ["bash", "-lc", "make"]}, "exec_command_begin: bash -lc make"),
        ({"type": "exec_command_end", "exit_code": 2}, "exec_command_end: exit code 2"),
        ({"type": "raw_response_item", "item": {"type": "message", "role": "developer", "content": []}},
         "raw_response_item: message developer"),
        ({"type": "turn_aborted", "reason": "interrupted"}, "turn_aborted: interrupted"),
        ("not an object", "event"),
    ],
)
def test_codex_events_become_one_short_line(msg: object, line: str) -> None:
    assert describe_codex_event(msg) == line


@pytest.mark.parametrize(
    ("event", "line"),
    [
        ({"type": "thread.started", "thread_id": "abc"}, "thread.started: abc"),
        ({"type": "turn.started"}, "turn.started"),
        ({"type": "error", "message": "Reconnecting... 2/5"}, "error: Reconnecting... 2/5"),
        ({"type": "turn.failed", "error": {"message": "quota"}}, "turn.failed: quota"),
        (
            {"type": "item.completed", "item": {"type": "command_execution", "command": "make",
                                                "aggregated_output": "a\nlast line\n\n", "exit_code": 0}},
            "item.completed: command_execution make (exit code 0): last line",
        ),
        ({"type": "item.completed", "item": {"type": "agent_message", "text": "done"}},
         "item.completed: agent_message done"),
    ],
)
def test_exec_events_become_one_short_line(event: object, line: str) -> None:
    assert describe_exec_event(event) == line


def test_lines_are_bounded_and_flat() -> None:
    line = describe_exec_event({"type": "error", "message": "x\n" * 500})
    assert len(line) == codex_events.EVENT_TEXT_CHARS and "\n" not in line and line.endswith("…")


def test_the_latest_event_file_is_written_at_most_every_interval(tmp_path: Path) -> None:
    path = tmp_path / LATEST_EVENT_NAME
    latest = LatestEvent(path)
    latest.note("first", "2026-01-01T00:00:00.000Z")
    latest.note("second", "2026-01-01T00:00:00.100Z")  # within the interval: kept in memory only
    assert read_latest_event(tmp_path) == {"at": "2026-01-01T00:00:00.000Z", "event": "first"}
    assert latest.text == "second"
    latest.flush()
    assert read_latest_event(tmp_path) == {"at": "2026-01-01T00:00:00.100Z", "event": "second"}
    assert [p.name for p in tmp_path.iterdir()] == [LATEST_EVENT_NAME]  # no temporary file left


@pytest.mark.parametrize("content", ["", "{", "[]", '{"at": 1, "event": "x"}', "x" * 5000])
def test_an_unreadable_file_shows_nothing(tmp_path: Path, content: str) -> None:
    (tmp_path / LATEST_EVENT_NAME).write_text(content)
    assert read_latest_event(tmp_path) is None


def manifest(status: str, command_status: str, started_at: str = "2026-01-01T00:00:01.000Z") -> dict[str, object]:
    running = {"status": command_status, "started_at": started_at}
    return {"status": status, "commands": [{"status": "succeeded"}, running]}


def test_only_a_running_commands_own_event_is_shown(tmp_path: Path) -> None:
    (tmp_path / LATEST_EVENT_NAME).write_text(json.dumps({"at": "2026-01-01T00:00:02.000Z", "event": "turn.started"}))
    assert running_command_event(manifest("in_progress", "running"), tmp_path) == "turn.started"
    assert running_command_event(manifest("failed", "failed"), tmp_path) is None
    assert running_command_event(manifest("in_progress", "pending"), tmp_path) is None
    # An event from before the running command started belongs to an earlier one.
    late_start = manifest("in_progress", "running", "2026-01-01T00:00:03.000Z")
    assert running_command_event(late_start, tmp_path) is None
    assert running_command_event(manifest("in_progress", "running"), tmp_path / "elsewhere") is None
