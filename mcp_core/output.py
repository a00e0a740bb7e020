"""Printing for the commands: JSON as the old runner printed it, errors as one line."""

from __future__ import annotations

import os
import sys

from mcp_core.errors import RunnerError
from mcp_core.jsfmt import dumps_pretty

TYPE_CHECKING = False
if TYPE_CHECKING:  # poll imports this module: nothing imported only for types
    from collections.abc import Callable
    from typing import Any


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


def run_cli(body: Callable[[], int], *, disk_error: str | None = None) -> int:
    """Run a command's body and turn what it raises into an exit code.

    A RunnerError is one stderr line; Ctrl-C exits 130; a reader that went away
    (``poll ... | head``) ends the command quietly instead of failing again when
    Python flushes stdout at exit. With ``disk_error``, an OSError (read-only or
    full disk) is one line starting with it, never a traceback.
    """
    try:
        return body()
    except RunnerError as exc:
        return report(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if disk_error is None:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        return report(RunnerError(f"{disk_error}: {exc.strerror or exc}{where}"))


def print_result(result: dict[str, Any], output_format: str, format_text: Callable[[dict[str, Any]], str]) -> None:
    """A command's result as pretty JSON or as its text block."""
    if output_format == "json":
        print_json(result)
    else:
        sys.stdout.write(format_text(result))
        sys.stdout.flush()
