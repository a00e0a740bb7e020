"""The two kinds of failure a command reports: one line on stderr, an exit code."""

from __future__ import annotations


class RunnerError(Exception):
    """A failure the user must see as one line on stderr (exit 1 by default)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class UsageError(RunnerError):
    """A bad command line: unknown option, missing or bad value."""


def innermost(exc: BaseException) -> BaseException:
    """The first exception an exception group holds (depth first), or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
