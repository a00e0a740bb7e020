"""Printing for the commands: JSON as the old runner printed it, errors as one line."""

from __future__ import annotations

import sys
from typing import Any

from mcp_core.errors import RunnerError
from mcp_core.jsfmt import dumps_pretty


def print_json(value: Any) -> None:
    sys.stdout.write(dumps_pretty(value))
    sys.stdout.flush()


def error_line(message: str) -> None:
    """One line on stderr: embedded newlines would split a message for log readers."""
    sys.stderr.write(message.replace("\r", "\\r").replace("\n", "\\n") + "\n")
    sys.stderr.flush()


def report(exc: RunnerError) -> int:
    error_line(exc.message)
    return exc.exit_code
