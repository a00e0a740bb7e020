"""The command guard of the in-process local executor (servers.common.GroupGuard)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from runs import group_members, wait_for

from mcp_core import process
from mcp_core.servers.common import GUARD_NAME, GroupGuard


def command_group() -> subprocess.Popen[bytes]:
    """A command in a session of its own that leaves a second process in its group."""
    return subprocess.Popen(["bash", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)


@pytest.fixture
def groups() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for leader in started:
        process.signal_group(leader.pid, signal.SIGKILL)
        leader.wait()


def ignores_sigterm(pid: int) -> bool:
    """Whether ``pid`` ignores SIGTERM yet (the guard's first line has run)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def group_gone(leader: subprocess.Popen[bytes]) -> bool:
    leader.poll()  # reap the leader once it is killed
    return not group_members(leader.pid)


def test_the_guard_kills_what_it_watches_when_its_writer_is_gone(groups: list[subprocess.Popen[bytes]]) -> None:
    guard = GroupGuard.start()
    # its name in ps (read until set: just after the exec it can still read empty here)
    wait_for(lambda: Path(f"/proc/{guard.pid}/cmdline").read_bytes().startswith(GUARD_NAME.encode() + b"\0"))
    assert os.getpgid(guard.pid) == guard.pid  # a session of its own: a signal to ours misses it
    watched, ended, kept = command_group(), command_group(), command_group()
    groups.extend([watched, ended, kept])
    wait_for(lambda: all(len(group_members(leader.pid)) == 3 for leader in groups))
    guard.watch(watched.pid)
    guard.watch(ended.pid)
    guard.unwatch(ended.pid)
    guard.close()  # as when the worker dies: its input ends
    assert guard.process.returncode == 0
    wait_for(lambda: group_gone(watched))
    assert len(group_members(ended.pid)) == len(group_members(kept.pid)) == 3


def test_a_sigterm_does_not_end_the_guard_before_its_input_ends(groups: list[subprocess.Popen[bytes]]) -> None:
    guard = GroupGuard.start()
    watched = command_group()
    groups.append(watched)
    wait_for(lambda: len(group_members(watched.pid)) == 3 and ignores_sigterm(guard.pid))
    guard.watch(watched.pid)
    os.killpg(guard.pid, signal.SIGTERM)
    os.killpg(guard.pid, signal.SIGHUP)
    assert guard.process.poll() is None and len(group_members(watched.pid)) == 3
    guard.close()  # the worker is gone: now, and only now, the guard acts
    assert guard.process.returncode == 0
    wait_for(lambda: group_gone(watched))


def test_a_guard_that_is_gone_does_not_fail_its_writer() -> None:
    guard = GroupGuard.start()
    os.kill(guard.pid, signal.SIGKILL)
    guard.process.wait()
    guard.watch(12345)  # a broken pipe, ignored
    guard.unwatch(12345)
    guard.close()
