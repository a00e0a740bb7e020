"""The run record: the one owner of every change to a run's manifest.

Each change is a named state change below, applied by ``update`` under the
run's lock on the manifest as it is on disk now (read-modify-write), and each
checks the state it starts from and who makes it:

| change             | who                 | from                                   |
| ------------------ | ------------------- | -------------------------------------- |
| created            | start               | nothing (a new run directory)          |
| launched           | start               | queued                                 |
| connected          | the worker          | not terminal; runner none, dead or it  |
| command running    | the worker owning it| not terminal, runner_pid is the worker |
| command finished   | the worker owning it| same (and the next command running)    |
| heartbeat          | the worker owning it| same                                   |
| marked stale       | poll (a reader)     | not terminal, heartbeat stale; skipped |
|                    |                     | when the lock is busy                  |
| resume claimed     | resume              | runner dead, no other live claim       |
| resume launched    | resume (its claim)  | not terminal                           |
| resume released    | resume (its claim)  | its own claim (the launch failed)      |
| ended              | the worker owning it| not terminal                           |
|                    | or cancel           | not terminal, worker not alive here    |
| metrics recorded   | anyone              | terminal, that same ending             |
| migrated           | migrate (its lock)  | a legacy run, read and checked         |

A worker is identified by its pid and start time (``runner_pid``,
``runner_start_ticks``). A change by a worker that no longer owns a live run
(the run ended, or another process took it) raises ``NotOwner`` and writes
nothing: the worker then stops its command and exits. A resume claims a run
in ``resume_claim`` {pid, start_ticks}, never in ``runner_pid``, so cancel,
which only ever signals ``runner_pid``, never signals a resume.

Writers wait for the lock for a bounded time (``store.writer_wait_seconds``)
and then fail naming the holder; a reader's change (the stale mark) is
skipped when the lock is busy.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from mcp_core import manifest as manifest_mod
from mcp_core import process, store
from mcp_core.faults import fault_point
from mcp_core.jsfmt import iso_now

STALE_DETAIL = "stale-heartbeat"
RESUMING_DETAIL = "resuming"
# The details a heartbeat clears: a failure's detail stays.
_HEARTBEAT_CLEARS = (STALE_DETAIL, RESUMING_DETAIL)

T = TypeVar("T")


class Identity(NamedTuple):
    """Who a process is, across pid reuse: its pid and its start time in ticks."""

    pid: int
    ticks: int | None

    @classmethod
    def me(cls) -> Identity:
        pid = os.getpid()
        return cls(pid, process.start_ticks(pid))

    def record(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_ticks": self.ticks}


class NotOwner(Exception):
    """The run is no longer the worker's: it ended or another process took it."""


class Refusal(NamedTuple):
    detail: str  # for resume_events
    message: str  # for the user


class Launched(NamedTuple):  # not a dataclass: see paths.Locations
    pid: int
    start_ticks: int | None


# --- reading a record ------------------------------------------------------------


def worker_alive(record: dict[str, Any]) -> bool:
    return process.is_alive(record.get("runner_pid"), record.get("runner_start_ticks"))


def live_claim(record: dict[str, Any]) -> Identity | None:
    """The resume holding the run now, if its process still runs."""
    claim = record.get("resume_claim")
    if not isinstance(claim, dict):
        return None
    pid, ticks = claim.get("pid"), claim.get("start_ticks")
    if not process.is_alive(pid, ticks):
        return None
    assert isinstance(pid, int)
    return Identity(pid, ticks if isinstance(ticks, int) else None)


def worker_known_dead(record: dict[str, Any]) -> bool:
    """A run that is not over, whose worker is gone (or its pid reused) and that
    no resume is bringing back: nobody will move it on by itself."""
    if manifest_mod.is_terminal(record) or not isinstance(record.get("runner_pid"), int):
        return False
    return not worker_alive(record) and live_claim(record) is None


def owned_by(record: dict[str, Any], me: Identity) -> bool:
    ticks = record.get("runner_start_ticks")
    return (
        not manifest_mod.is_terminal(record)
        and record.get("runner_pid") == me.pid
        and (ticks is None or me.ticks is None or ticks == me.ticks)
    )


def _ensure_owned(record: dict[str, Any], me: Identity) -> None:
    if owned_by(record, me):
        fault_point("in-manifest-save")  # tests/chaos: the worker stopped with the lock held
        return
    if manifest_mod.is_terminal(record):
        raise NotOwner(f"the run is {record.get('status')}")
    raise NotOwner(f"the run was taken by PID {record.get('runner_pid')}")


# --- the one read-modify-write ---------------------------------------------------


def update(path: Path, change: Callable[[dict[str, Any]], Any], *, wait: float | None = None) -> dict[str, Any]:
    """The one read-modify-write: ``change`` under the run's lock; every save sets
    ``updated_at``. Only the state changes of this module (and tests that play
    an outside writer) call it.

    ``change`` returns False to leave the file as it is. ``path`` is the run's
    own manifest: a symlink there or at the run directory is refused (OSError),
    so no change writes outside the runs root.
    """

    def apply(record: dict[str, Any]) -> Any:
        if change(record) is False:
            return False
        record["updated_at"] = iso_now()
        return True

    return store.update_json(path, apply, wait, _ownership)


def _ownership(record: dict[str, Any]) -> dict[str, Any]:
    """What ``owned_by`` reads of a record: ``still_owned``'s answer while the
    file is the save that noted it."""
    return {key: record.get(key) for key in ("status", "runner_pid", "runner_start_ticks")}


# --- start -----------------------------------------------------------------------


def created(path: Path, record: dict[str, Any]) -> None:
    """A new run's manifest (queued), written whole."""
    store.write_json(path, record)


def write_heartbeat_file(run_dir: Path, now: str) -> None:
    """``.heartbeat``: the heartbeat timestamp and a newline."""
    store.atomic_write_text(run_dir / manifest_mod.HEARTBEAT_FILE, now + "\n")


def launched(path: Path, launch: Callable[[], Launched]) -> Launched | None:
    """Launch the worker of a queued run and record it (in_progress, runner_pid)
    in one save. The launch happens under the lock, so the worker's first save
    comes after this one. None, launching nothing, when the run is no longer
    queued (cancelled before its worker was launched)."""
    result: Launched | None = None

    def change(record: dict[str, Any]) -> bool:
        nonlocal result
        if record.get("status") != "queued":
            return False
        result = launch()
        record["status"] = "in_progress"
        record["runner_pid"] = result.pid
        record["runner_start_ticks"] = result.start_ticks
        return True

    try:
        update(path, change)
    except BaseException:
        if result is not None:  # launched, but the run cannot say so: take it back
            with contextlib.suppress(OSError):
                os.kill(result.pid, signal.SIGKILL)
        raise
    return result


# --- the worker ------------------------------------------------------------------


def connected(path: Path, me: Identity, server: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """The worker takes the run once connected: runner_pid, a fresh heartbeat.

    It may take a run launched for it, or one whose runner is unknown or dead
    and that no resume holds; NotOwner otherwise."""

    def change(record: dict[str, Any]) -> None:
        if manifest_mod.is_terminal(record):
            raise NotOwner(f"the run is {record.get('status')}")
        if not owned_by(record, me):
            if record.get("runner_pid") is not None and worker_alive(record):
                raise NotOwner(f"the run is held by PID {record.get('runner_pid')}")
            claim = live_claim(record)
            if claim is not None:
                raise NotOwner(f"the run is being resumed by PID {claim.pid}")
        fault_point("in-manifest-save")
        record["status"] = "in_progress"
        record["status_detail"] = None
        record["completed_at"] = None
        record["runner_pid"] = me.pid
        record["heartbeat_at"] = now
        record["metrics_recorded"] = False  # this run has not ended (again) yet
        record["runner_start_ticks"] = me.ticks
        record["mcp_server"] = server

    return update(path, change)


def _command(record: dict[str, Any], position: int) -> dict[str, Any]:
    command = record["commands"][position]
    assert isinstance(command, dict)
    return command


def _set_running(record: dict[str, Any], position: int, now: str) -> None:
    command = _command(record, position)
    # A command interrupted before (a resumed run) starts over with a clean entry.
    command.update(manifest_mod.new_command(command["index"], command["command"]))
    command["status"] = "running"
    command["started_at"] = now


def command_running(path: Path, me: Identity, position: int, now: str) -> None:
    def change(record: dict[str, Any]) -> None:
        _ensure_owned(record, me)
        _set_running(record, position, now)

    update(path, change)


def command_finished(
    path: Path, me: Identity, position: int, result: dict[str, Any], next_position: int | None, now: str
) -> None:
    """A command succeeded (``result``: the command's fields) and, in the same
    save, the next one is running: one durable write per command boundary."""

    def change(record: dict[str, Any]) -> None:
        _ensure_owned(record, me)
        command = _command(record, position)
        command["status"] = "succeeded"
        command["completed_at"] = now
        command.update(result)
        if next_position is not None:
            _set_running(record, next_position, now)

    update(path, change)


def heartbeat(path: Path, me: Identity, now: str) -> None:
    """``heartbeat_at`` in the manifest, then ``.heartbeat``."""

    def change(record: dict[str, Any]) -> None:
        _ensure_owned(record, me)
        record["heartbeat_at"] = now
        if record.get("status_detail") in _HEARTBEAT_CLEARS:
            record["status_detail"] = None

    update(path, change)
    write_heartbeat_file(path.parent, now)


def still_owned(path: Path, me: Identity) -> None:
    """Raise NotOwner unless the run on disk is still the worker's: the file is
    read (lock-free) unless it is still this process's last save of it."""
    record = store.saved_note(path)
    if record is None:
        record = store.read_json(path, follow=False)
    if isinstance(record, dict):
        _ensure_owned(record, me)


# --- poll ------------------------------------------------------------------------


def marked_stale(path: Path, needs_mark: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """``status_detail: stale-heartbeat`` when the run on disk still ``needs_mark``
    (not terminal, heartbeat stale, not marked yet: poll decides).

    A reader never waits: None when the lock is busy (nothing is marked)."""

    def change(record: dict[str, Any]) -> bool:
        if not needs_mark(record):
            return False
        record["status_detail"] = STALE_DETAIL
        return True

    try:
        return update(path, change, wait=0)
    except store.LockBusy:
        return None


# --- resume ----------------------------------------------------------------------


def _append_event(record: dict[str, Any], event: dict[str, Any]) -> None:
    events = record.get("resume_events")
    if not isinstance(events, list):
        events = []
        record["resume_events"] = events
    events.append(event)


def resume_claimed(
    path: Path,
    me: Identity,
    check: Callable[[dict[str, Any]], Refusal | str],
    event: Callable[[str, str], dict[str, Any]],
) -> tuple[Refusal | None, dict[str, Any]]:
    """Resume holds the run (``resume_claim``) while it launches a new worker.

    ``check`` returns a Refusal or the accepted token; a refusal is recorded as
    a blocked event. The accepted event is recorded only once the new worker
    is launched (``resume_launched``), so the audit trail never says accepted
    for a resume that then failed."""
    refusal: Refusal | None = None

    def change(record: dict[str, Any]) -> None:
        nonlocal refusal
        outcome = check(record)
        claim = live_claim(record)
        if not isinstance(outcome, Refusal) and claim is not None and claim != me:
            outcome = Refusal(
                f"resume-in-progress:{claim.pid}",
                f"Run {record.get('run_id')} is being resumed by PID {claim.pid}.",
            )
        if isinstance(outcome, Refusal):
            refusal = outcome
            _append_event(record, event("blocked", outcome.detail))
            return
        record["resume_token"] = outcome
        record["status_detail"] = RESUMING_DETAIL
        record["completed_at"] = None
        if record.get("status") == "failed":
            # --retry-failed: the run ends again, with a new metrics line and a
            # summary of that ending (the failure stays in its command and artifact).
            record["metrics_recorded"] = False
            if "summary" in record:
                record["summary"] = None
        record["status"] = "in_progress"
        record["resume_claim"] = me.record()

    saved = update(path, change)
    return refusal, saved


def resume_launched(
    path: Path,
    me: Identity,
    launch: Callable[[], Launched],
    event: Callable[[str, str], dict[str, Any]],
) -> tuple[Launched | None, dict[str, Any]]:
    """Launch the new worker under the lock and hand it the run (accepted
    event, runner_pid, claim cleared) in one save; (None, record) when the run
    was ended meanwhile (recorded as blocked)."""
    result: Launched | None = None

    def change(record: dict[str, Any]) -> None:
        nonlocal result
        record["resume_claim"] = None
        if manifest_mod.is_terminal(record):
            _append_event(record, event("blocked", f"terminal-status:{record.get('status')}"))
            return
        result = launch()
        _append_event(record, event("accepted", "resume-started"))
        record["runner_pid"] = result.pid
        record["runner_start_ticks"] = result.start_ticks
        record["status"] = "in_progress"
        record["status_detail"] = None

    try:
        saved = update(path, change)
    except BaseException:
        if result is not None:  # launched, but the run cannot say so: take it back
            with contextlib.suppress(OSError):
                os.kill(result.pid, signal.SIGKILL)
        raise
    return result, saved


def resume_released(path: Path, me: Identity, event: dict[str, Any]) -> None:
    """The launch failed: the claim is given back and the event says why."""

    def change(record: dict[str, Any]) -> None:
        claim = record.get("resume_claim")
        if isinstance(claim, dict) and claim.get("pid") == me.pid:
            record["resume_claim"] = None
        if record.get("status_detail") == RESUMING_DETAIL:
            record["status_detail"] = None
        _append_event(record, event)

    update(path, change)


# --- the end -----------------------------------------------------------------------


def ended(
    path: Path,
    status: str,
    change_more: Callable[[dict[str, Any], str], None],
    *,
    by: Identity | None,
) -> bool:
    """The run reaches ``status`` (terminal). ``change_more(record, now)`` sets
    the rest (detail, commands, summary) in the same save.

    ``by`` the worker: it must own the run (NotOwner otherwise). ``by`` None
    (cancel): only when no live worker could be asked instead (its pid is gone
    or not visible here). Returns False when nothing changed (the run had
    already ended, or its worker is alive)."""
    if status not in manifest_mod.TERMINAL_STATUSES:
        raise ValueError(f"not a terminal status: {status}")
    changed = False

    def change(record: dict[str, Any]) -> bool:
        nonlocal changed
        if by is not None:
            _ensure_owned(record, by)
        elif manifest_mod.is_terminal(record) or worker_alive(record):
            return False
        now = iso_now()
        record["status"] = status
        record["completed_at"] = now
        change_more(record, now)
        record["metrics_recorded"] = False
        changed = True
        return True

    update(path, change)
    return changed


def metrics_prepared(path: Path, prepare: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Before an ended run's metrics line: the guardrail sentence in its summary,
    where the search for its line starts (``prepare``, metrics' own fields)."""
    return update(path, prepare)


def metrics_recorded(path: Path, ending: tuple[Any, Any], noted_key: str) -> None:
    """``metrics_recorded: true`` for that ending (status, completed_at) only (a
    retried run may have moved on), and the note ``noted_key`` dropped."""

    def change(record: dict[str, Any]) -> bool:
        if (record.get("status"), record.get("completed_at")) != ending:
            return False
        record["metrics_recorded"] = True
        record.pop(noted_key, None)
        return True

    update(path, change)


# --- migrate -----------------------------------------------------------------------


def migrated(path: Path, record: dict[str, Any]) -> None:
    """A legacy run's manifest with its task-scoped keys, written whole where it
    is (``migrate.migrated_manifest`` made it from the manifest just read and
    checked). Legacy runs are the old runner's, so no worker of ours writes
    them, and every pass that moves them holds migrate's lock."""
    store.write_json(path, record)
