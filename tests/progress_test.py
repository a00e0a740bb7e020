"""mcp_core.progress: drawn on a real terminal (a pty), silent everywhere else."""

from __future__ import annotations

import io
import os
import select
from collections.abc import Iterator
from typing import TextIO

import pytest

from mcp_core.progress import Progress


@pytest.fixture
def terminal() -> Iterator[tuple[TextIO, int]]:
    """A pty: the writer end as a text stream (isatty() is true), and the reader's fd."""
    reader, writer = os.openpty()
    stream = open(writer, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        yield stream, reader
    finally:
        stream.close()
        os.close(reader)


def drawn(reader: int) -> str:
    """Everything written to the terminal so far."""
    chunks: list[bytes] = []
    while select.select([reader], [], [], 0.5)[0]:
        chunk = os.read(reader, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_a_terminal_sees_the_line_redrawn_and_erased_at_the_end(terminal: tuple[TextIO, int]) -> None:
    stream, reader = terminal
    # An interval no test run reaches: only the first and the last update are drawn.
    with Progress("Reading runs", stream, interval=3600) as progress:
        assert progress.active
        for done in range(1, 601):
            progress.update(done, 600)
    assert drawn(reader) == "\r\x1b[KReading runs: 1/600 (0%)\r\x1b[KReading runs: 600/600 (100%)\r\x1b[K"


def test_every_update_is_drawn_when_the_interval_allows(terminal: tuple[TextIO, int]) -> None:
    stream, reader = terminal
    with Progress("Migrating", stream, min_total=1, interval=0) as progress:
        for done in (1, 2, 3):
            progress.update(done, 3)
    assert drawn(reader) == "".join(f"\r\x1b[KMigrating: {n}/3 ({100 * n // 3}%)" for n in (1, 2, 3)) + "\r\x1b[K"


def test_clear_erases_and_the_next_update_draws_again(terminal: tuple[TextIO, int]) -> None:
    stream, reader = terminal
    progress = Progress("Work", stream, min_total=1, interval=3600)
    progress.update(1, 10)
    progress.clear()
    progress.clear()  # nothing shown: nothing written
    progress.update(2, 10)  # drawn at once after a clear, whatever the interval
    progress.close()
    progress.update(3, 10)  # closed: silent
    assert drawn(reader) == "\r\x1b[KWork: 1/10 (10%)\r\x1b[K\r\x1b[KWork: 2/10 (20%)\r\x1b[K"


def test_silent_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("Reading runs", stream, min_total=1, interval=0) as progress:
        assert not progress.active
        for done in range(1, 10_001):
            progress.update(done, 10_000)
    assert stream.getvalue() == ""


def test_silent_for_short_operations(terminal: tuple[TextIO, int]) -> None:
    stream, reader = terminal
    with Progress("Reading runs", stream, interval=0) as progress:
        for done in range(1, 500):
            progress.update(done, 499)
        assert progress.active  # a terminal, but too short an operation to draw on it
    assert drawn(reader) == ""


def test_a_terminal_that_went_away_stops_the_progress_not_the_command() -> None:
    reader, writer = os.openpty()
    stream = open(writer, "w", encoding="utf-8")  # noqa: SIM115
    progress = Progress("Reading runs", stream, interval=0)
    stream.close()
    os.close(reader)
    progress.update(1, 1000)  # writing to a closed stream: no exception
    progress.close()
    assert not progress.active
