"""Printing for the commands: JSON as the old runner printed it, errors as one line."""

from __future__ import annotations

import os
import sys

from mcp_core.errors import RunnerError, UsageError
from mcp_core.jsfmt import dumps_pretty

TYPE_CHECKING = False
if TYPE_CHECKING:  # poll imports this module: nothing imported only for types
    from collections.abc import Callable
    from typing import Any

FORMATS = ("text", "json")


def check_format(value: str) -> str:
    """A ``--format`` value: text or json."""
    if value not in FORMATS:
        raise UsageError(f'Unsupported format: {value}. Expected "text" or "json".')
    return value


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


ERROR_LOG_DIR_ENV = "MCP_RUNNER_ERROR_LOG_DIR"


def _command_name() -> str:
    name = os.path.basename(sys.argv[0] or "mcp-runner")
    return name[: -len(".py")] if name.endswith(".py") else name


def write_traceback(exc: BaseException) -> str | None:
    """The traceback of ``exc`` in a log file of its own; its path, or None."""
    import tempfile
    import time
    import traceback

    directory = os.environ.get(ERROR_LOG_DIR_ENV) or os.path.join(tempfile.gettempdir(), "mcp-runner-errors")
    path = os.path.join(directory, f"{_command_name()}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8", errors="replace") as handle:
            handle.write(f"{' '.join(sys.argv)}\n\n")
            handle.write("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return path


def unexpected(exc: BaseException, what: str | None = None) -> int:
    """One line on stderr for an exception nobody expected, exit 1; its traceback
    goes to a log file whose path the line gives. An OSError (a disk that is
    full or read-only, a name too long, a directory we may not read) says its
    reason and file."""
    what = what or f"{_command_name()} failed"
    if isinstance(exc, OSError):  # its reason and file say it all: no traceback kept
        where = f": {exc.filename}" if exc.filename else ""
        error_line(f"{what}: {exc.strerror or exc}{where}")
        return 1
    log = write_traceback(exc)
    told = f" (traceback in {log})" if log else ""
    error_line(f"{what}: {type(exc).__name__}: {exc}{told}")
    return 1


def run_cli(body: Callable[[], int], *, disk_error: str | None = None) -> int:
    """Run a command's body and turn what it raises into an exit code: the one
    error handler of every command.

    A RunnerError is one stderr line; Ctrl-C exits 130; a reader that went away
    (``poll ... | head``) ends the command quietly instead of failing again when
    Python flushes stdout at exit. Anything else (an OSError included) is one
    line naming what failed, exit 1, never a traceback on the terminal; the
    line starts with ``disk_error`` when given.
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
    except Exception as exc:
        return unexpected(exc, disk_error)


def print_result(result: dict[str, Any], output_format: str, format_text: Callable[[dict[str, Any]], str]) -> None:
    """A command's result as pretty JSON or as its text block."""
    if output_format == "json":
        print_json(result)
    else:
        sys.stdout.write(format_text(result))
        sys.stdout.flush()
