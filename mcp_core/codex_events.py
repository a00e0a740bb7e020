"""What Codex is doing now, for people: one short line per event, and the
latest one per run in a small file that poll, list and report read.

Codex reports its progress as ``codex/event`` notifications (``codex
mcp-server``) or as JSON Lines on stdout (``codex exec --json``). Each event
becomes ``<type>: <short text>`` (e.g. ``stream_error: Reconnecting... waiting
for network``) for ``runner.log``. Whoever sees the events (the worker for a
server's notifications, the ``codex exec`` bridge for its JSON Lines) also
keeps the latest one in ``<run dir>/latest-event.json`` (``{at, event}``,
replaced atomically, at most a few times a second, bounded in size), so
showing it costs no manifest write per event.

Standard library only, and nothing at import but os and time: poll's fast
path imports this (it hands in its own JSON parser).
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # not typing's: importing typing costs poll's fast path
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import Any

LATEST_EVENT_NAME = "latest-event.json"
# The worker hands the file's path to the MCP server it spawns (the bridge writes it).
LATEST_EVENT_ENV = "MCP_RUNNER_LATEST_EVENT_FILE"
EVENT_TEXT_CHARS = 200
WRITE_INTERVAL_SECONDS = 0.5
_TEXT_KEYS = ("message", "reason", "command", "last_agent_message", "text", "delta", "thread_id")


def shorten(text: str, limit: int = EVENT_TEXT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _text_of(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(part, str) for part in value):
        return " ".join(value)
    return None


def _first_text(fields: Mapping[str, Any]) -> str | None:
    for key in _TEXT_KEYS:
        text = _text_of(fields.get(key))
        if text is not None:
            return text
    return None


def _describe(kind: str, text: str | None) -> str:
    return shorten(f"{kind}: {text}" if text else kind)


def _file_access(profile: Any) -> str | None:
    """What Codex 0.153.4's ``permission_profile`` lets commands do to files: ``read-only``
    (the ``read-only`` sandbox), ``writable`` (``workspace-write``) or ``unrestricted``."""
    file_system = profile.get("file_system") if isinstance(profile, dict) else None
    if not isinstance(file_system, dict):
        return None
    if file_system.get("type") != "restricted":
        return "unrestricted"
    entries = file_system.get("entries")
    writes = isinstance(entries, list) and any(isinstance(e, dict) and e.get("access") == "write" for e in entries)
    return "writable" if writes else "read-only"


def _kind_and_text(event: dict[str, Any]) -> tuple[str, str | None]:
    """An event's type (``event`` when it has none) and its first text, both formats alike."""
    return str(event.get("type") or "event"), _first_text(event)


def describe_codex_event(msg: Any) -> str:
    """A ``codex/event`` notification's ``params.msg`` (``codex mcp-server``)."""
    if not isinstance(msg, dict):
        return "event"
    kind, text = _kind_and_text(msg)
    details = msg.get("additional_details")
    if text and isinstance(details, str) and details.strip():
        text = f"{text} ({details})"
    if kind == "session_configured":
        sandbox = msg.get("sandbox_policy")
        parts = [f"model {msg.get('model')}", f"approval {msg.get('approval_policy')}"]
        if isinstance(sandbox, dict) and sandbox.get("type"):
            parts.append(f"sandbox {sandbox['type']}")
        elif (files := _file_access(msg.get("permission_profile"))) is not None:
            parts.append(f"files {files}")
        text = ", ".join(parts)
    elif kind == "exec_command_end" and "exit_code" in msg:
        text = f"exit code {msg['exit_code']}"
    elif kind in ("raw_response_item", "item_started", "item_completed") and isinstance(msg.get("item"), dict):
        item = msg["item"]
        text = " ".join(str(part) for part in (item.get("type"), item.get("role")) if part)
    return _describe(kind, text)


def describe_exec_event(event: Any) -> str:
    """One JSON Lines event of ``codex exec --json``."""
    if not isinstance(event, dict):
        return "event"
    kind, text = _kind_and_text(event)
    error = event.get("error")
    if isinstance(error, dict) and _text_of(error.get("message")):
        text = error["message"]
    item = event.get("item")
    if isinstance(item, dict):
        item_text = _first_text(item)
        if item.get("type") == "command_execution" and item.get("exit_code") is not None:
            item_text = f"{item_text} (exit code {item['exit_code']})"
            output = item.get("aggregated_output")
            last_line = next((line for line in reversed(output.splitlines()) if line.strip()), None) if isinstance(
                output, str
            ) else None
            if last_line:
                item_text = f"{item_text}: {last_line.strip()}"
        text = " ".join(part for part in (str(item.get("type") or ""), item_text or "") if part)
    return _describe(kind, text)


class LatestEvent:
    """The latest event of a run, in memory and (when given a path) on disk.

    ``note`` keeps every event in memory; the file is rewritten at most every
    WRITE_INTERVAL_SECONDS (inside an event loop a later write is scheduled
    for the last of a burst), and ``flush`` writes what is still pending."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.text: str | None = None
        self.at: str | None = None
        self._written_at = 0.0
        self._pending = False
        self._scheduled = False

    def note(self, text: str, at: str) -> None:
        self.text, self.at = shorten(text), at
        self._pending = True
        wait = WRITE_INTERVAL_SECONDS - (time.monotonic() - self._written_at)
        if wait <= 0:
            self.flush()
        elif not self._scheduled:
            import asyncio

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._scheduled = True
            loop.call_later(wait, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending or self.path is None:
            return
        self._pending = False
        self._written_at = time.monotonic()
        write_latest_event(self.path, self.text or "", self.at or "")


def write_latest_event(path: Path, text: str, at: str) -> None:
    """Replace the file whole (write a temporary file, rename); a failure is ignored."""
    import contextlib
    import json

    data = json.dumps({"at": at, "event": shorten(text)}, ensure_ascii=False) + "\n"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(data, encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()


def read_latest_event(run_dir: Path | str, loads: Callable[[str], Any] | None = None) -> dict[str, str] | None:
    """``{at, event}`` from the run's file, or None when there is none (or it is
    unreadable); ``loads`` parses JSON (default ``json.loads``)."""
    try:
        with open(os.path.join(run_dir, LATEST_EVENT_NAME), encoding="utf-8") as handle:
            text = handle.read(4 * EVENT_TEXT_CHARS + 200)
    except (OSError, ValueError):
        return None
    if loads is None:
        import json

        loads = json.loads
    try:
        data = loads(text)
    except Exception:  # whatever the parser raises: a torn or foreign file shows nothing
        return None
    if isinstance(data, dict) and isinstance(data.get("at"), str) and isinstance(data.get("event"), str):
        return {"at": data["at"], "event": data["event"]}
    return None


def running_command_event(
    manifest: Mapping[str, Any], run_dir: Path | str, loads: Callable[[str], Any] | None = None
) -> str | None:
    """The running command's latest event: only while the run is in progress,
    and only an event from after that command started (ISO stamps compare as text)."""
    if manifest.get("status") != "in_progress":
        return None
    commands = manifest.get("commands")
    running = [c for c in commands if isinstance(c, dict) and c.get("status") == "running"] if isinstance(
        commands, list
    ) else []
    if not running:
        return None
    latest = read_latest_event(run_dir, loads)
    started = running[-1].get("started_at")
    if latest is None or (isinstance(started, str) and latest["at"] < started):
        return None
    return latest["event"]
