"""Processes: liveness that survives pid reuse, and stopping whole process groups."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Collection
from typing import Protocol


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        state = fields[0]
        if state in (b"Z", b"X"):  # a zombie has finished its work
            return None
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def is_alive(pid: object, expected_start: object = None) -> bool:
    """True when ``pid`` runs and, if ``expected_start`` is known, is the same process.

    Unlike ``kill(pid, 0)`` this is not fooled by a reused pid, and a process we
    may not signal (EPERM) still counts as alive.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    ticks = start_ticks(pid)
    if ticks is None:
        if os.path.isdir("/proc/self"):
            return False
        try:  # no /proc: fall back to a signal probe
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if isinstance(expected_start, int) and not isinstance(expected_start, bool):
        return ticks == expected_start
    return True


class _Reapable(Protocol):
    def poll(self) -> int | None: ...


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def stop_group(pgid: int, grace_seconds: float = 2.0, *, leader: _Reapable | None = None) -> None:
    """Stop a process group: SIGTERM, then SIGKILL whatever is left after
    ``grace_seconds``. The one way any process group of a run is stopped.

    ``leader``: our child leading the group, reaped while we wait (a zombie
    keeps its group "alive")."""
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        if not group_exists(pgid):
            return
        time.sleep(0.01)
    signal_group(pgid, signal.SIGKILL)


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process instead of init (Linux).

    The worker's MCP server runs each command in a session of its own; if the
    server dies (SIGKILL) mid-call its command lives on. As a subreaper the
    worker adopts it and ``stop_adopted_children`` can stop it."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children(pid: int) -> list[int]:
    """The children of ``pid``: from each of its threads' ``children`` list (a few
    small reads; an orphan is adopted by any thread of its subreaper), else, on a
    kernel without those files, from every process's parent in /proc."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        threads = []
    found: list[int] = []
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as handle:
                found.extend(int(child) for child in handle.read().split())
        except FileNotFoundError:
            if thread == threads[0]:
                return _children_by_scan(pid)
        except OSError:
            continue  # the thread has just exited
    return found


def _children_by_scan(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid).encode():
            found.append(int(entry))
    return found


def stop_adopted_children(rounds: int = 5, keep: Collection[int] = ()) -> list[int]:
    """SIGKILL every child of this process but those in ``keep``, and its process
    group (not our own group), and reap them; repeated while killing them leaves
    new orphans to adopt. Call it once the children one waits for (the server)
    are reaped, or name them in ``keep``. Returns the pids stopped."""
    if not os.path.isdir("/proc/self"):
        return []
    own_group = os.getpgrp()
    stopped: list[int] = []
    for _ in range(rounds):
        children = [pid for pid in _children(os.getpid()) if pid not in keep]
        if not children:
            break
        for pid in children:
            with contextlib.suppress(OSError):
                group = os.getpgid(pid)
                if group != own_group:
                    os.killpg(group, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)
        stopped.extend(children)
    return stopped
