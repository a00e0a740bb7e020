"""Progress of a long operation on stderr, for a person watching a terminal.

Nothing is written unless stderr is a terminal and the operation has at least
``MIN_TOTAL`` steps, so piped, captured or logged output is exactly what it was
without it. The one line is redrawn in place at most every ``INTERVAL`` seconds
(its cost stays far below the work it reports) and erased when the operation
ends, so what the command prints next starts on a clean line.

    with Progress("Reading runs") as progress:
        for done, name in enumerate(names, start=1):
            ...
            progress.update(done, len(names))

``update`` fits as a ``(done, total)`` callback for code that learns the total
itself. A command that prints while the line is up calls ``clear()`` first.
Imports nothing beyond the standard library's basics: fast paths may use it.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

MIN_TOTAL = 500  # fewer steps than this end too soon to be worth a line
INTERVAL = 0.1  # seconds between redraws
_ERASE = "\r\x1b[K"  # back to the start of the line, clear to its end


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or already closed
        return False


class Progress:
    """``<label>: <done>/<total> (<percent>%)`` on one redrawn stderr line."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        min_total: int = MIN_TOTAL,
        interval: float = INTERVAL,
    ) -> None:
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.min_total = min_total
        self.interval = interval
        self.active = _is_terminal(self.stream)  # False for good once closed
        self._next_draw = 0.0  # time.monotonic() of the next allowed redraw
        self._shown = False

    def update(self, done: int, total: int) -> None:
        """``done`` steps of ``total`` are finished (the last one is always drawn)."""
        if not self.active or total < self.min_total:
            return
        now = time.monotonic()
        if now < self._next_draw and done < total:
            return
        self._next_draw = now + self.interval
        self._write(f"{_ERASE}{self.label}: {done}/{total} ({100 * done // total}%)")
        self._shown = True

    def clear(self) -> None:
        """Erase the line (before the command prints); the next update draws it again."""
        if self._shown:
            self._write(_ERASE)
            self._shown = False
            self._next_draw = 0.0

    def close(self) -> None:
        self.clear()
        self.active = False

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: progress is not worth failing for
            self.active = False
            self._shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
