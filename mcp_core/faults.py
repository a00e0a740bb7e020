"""Fault points for tests and chaos runs: off unless ``MCP_RUNNER_TEST_PAUSE`` names one."""

from __future__ import annotations

import os
import signal

FAULT_POINT_ENV = "MCP_RUNNER_TEST_PAUSE"
_passes: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Off unless ``MCP_RUNNER_TEST_PAUSE`` names this point (``name`` or
    ``name:N``, its N-th passage; comma-separated): the process then stops
    itself (SIGSTOP) so the test can SIGKILL it (or let it go on) right here."""
    wanted = os.environ.get(FAULT_POINT_ENV)
    if not wanted:
        return
    passes = _passes[name] = _passes.get(name, 0) + 1
    for item in wanted.split(","):
        point, _, nth = item.partition(":")
        if point == name and nth in ("", str(passes)):
            os.kill(os.getpid(), signal.SIGSTOP)
