"""The metrics summary: metrics-summary.json from metrics.json (docs/interface.md section 8).

Apart from ``mcp_core.metrics`` (a run's line, appended by every worker at the
end of a run), so that only the summary imports msgspec.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import math
import operator
import os
import sys
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, compress, repeat
from operator import attrgetter, itemgetter
from typing import Annotated, Any

from mcp_core import store
from mcp_core.jsfmt import dumps_compact, iso_now
from mcp_core.paths import Locations

# msgspec._utils imports typing_extensions when it can, for a get_type_hints that
# Python's own typing has too (and falls back to it): typing_extensions imports
# inspect, ast, dis and tokenize, a sixth of the summary's start-up. So unless
# something imported it already, msgspec is imported as if it were not installed.
_TYPING_EXTENSIONS_HELD_OFF = "typing_extensions" not in sys.modules
if _TYPING_EXTENSIONS_HELD_OFF:
    sys.modules["typing_extensions"] = None  # type: ignore[assignment]  # an ImportError for msgspec
try:
    import msgspec
finally:
    if _TYPING_EXTENSIONS_HELD_OFF:
        del sys.modules["typing_extensions"]

# ---------------------------------------------------------------------------
# metrics.json can hold a million lines, so the summary streams it in blocks
# of whole lines, twice, and its memory does not grow with the number of runs
# (only with the number of runs that have more than one line). It takes the
# file's size under the shared lock (between two appends) and scans up to
# there without any lock: the file up to that size is whole lines (or a line a
# crash cut short, which is a parse error), and a worker's append never waits
# for a summary's scan.
#
# A block is read by msgspec's C decoder when that cannot read it differently
# from json line by line, and line by line with json otherwise (which reports
# each bad line as the old runner did). That takes two readings of the block:
# ``decode_lines`` (which takes any JSON white space between two objects, a
# line break too, or none), and the block made one JSON array (its line breaks
# turned into commas), which takes only commas. Both succeed only when every
# line holds exactly one object: a second object on a line needs white space
# or nothing before it (refused by the array) or a comma (refused by
# decode_lines); an object over two lines needs a line break outside a string
# (a comma where the array refuses one) or inside one (a control character,
# which decode_lines refuses); a blank line is an empty array item. The first
# pass makes the first reading (the run ids), the second pass the other (the
# entries), so each pass decodes a block once. Should the array be refused
# where decode_lines was not, the first pass's run ids for that block may not
# be the lines' own: both passes start again, the first one checking each
# block both ways itself. A block refused is read in halves, each the same
# way, down to the lines at fault.
#
# Counting each run once by its latest line: the first pass puts the hash of
# every run id into a table of one-byte slots (16 for every line the file is
# guessed to hold, up to 2**24; a wrong guess starts again with room for as
# many as it can hold) and keeps the hashes that land on a slot already taken:
# that of every id that repeats, plus the few that collide. The second pass
# keeps the latest entry of the ids with those hashes (by the id itself) and
# counts every other line as it goes. The durations counted are folded into
# their exact sum every million (the average is math.fsum of them all, to the
# bit); only the table's median and p95 keep them all.
#
# On a machine with more than one CPU, a large file is summarized by two
# processes at once: this one reads its first half, a forked child the rest
# (the same open file, at its own offsets), each making both passes over its
# part. Each keeps half of the table (the slots of even hashes here, of odd
# ones in the child): after reading their run ids they swap the hashes that
# belong to the other's half, then the hashes they found taken, so both know
# every hash that may repeat, in either part. The child then sends back its
# counts, with the latest entries it kept (later than any kept here) and its
# durations folded into their exact sum. What it raises is raised here; a child
# that ends without sending is an I/O error; should this process die first,
# the child ends at its next exchange with it.
# ---------------------------------------------------------------------------

PARSE_ERRORS_KEPT = 1000  # more are counted in "parse_errors_omitted" (appended only then)
_PARSE_ERROR_CHARS_KEPT = 1 << 20  # and the raw lines kept hold at most this much text
MAX_LINE_BYTES = 4 << 20  # a longer line is a parse error, never held in memory whole
_READ_BYTES = 1 << 18  # 256 KiB: a block, its copy and its items stay in the caches
_SPLIT_BYTES = 8 << 20  # a smaller file is summarized by one process: a fork costs more than it saves
_CUT_READ_BYTES = 1 << 16  # the search for the line break after the middle reads this much at a time
_SLOT_BITS = 24  # at most: 16 MiB of slots, a few percent of them taken by a million runs
_SHORTEST_LINE_WITH_AN_ID = len(b'{"run_id":""}\n')
# Durations held (8 MiB) before they are folded into their exact sum: folding takes
# three fsum passes over them, the average one, so a million runs are not folded.
_DURATIONS_HELD = 1 << 20
# String.prototype.trim: what the old runner took off each line before parsing.
_JS_WHITESPACE = (
    "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_MISSING_STATUS = "(missing)"
Lines = bytes | memoryview  # a block of whole lines
_OTHER_STATUSES = "(other statuses)"
_STATUSES_KEPT = 1000
_USUAL_STATUSES = ("succeeded", "failed")


class MetricsSummary:
    """The figures of metrics-summary.json, plus what the table shows."""

    def __init__(
        self,
        *,
        generated_at: str,
        task_id: str,
        metrics_file: str,
        entries_total: int,
        entries_succeeded: int,
        entries_failed: int,
        guardrails_present: int,
        parse_errors: list[dict[str, str]],
        parse_errors_omitted: int,
        status_counts: dict[str, int],
        average_duration_seconds: float | None,
        durations: array[float] | None,
    ) -> None:
        self.generated_at = generated_at
        self.task_id = task_id
        self.metrics_file = metrics_file
        self.entries_total = entries_total
        self.entries_succeeded = entries_succeeded
        self.entries_failed = entries_failed
        self.guardrails_present = guardrails_present
        self.parse_errors = parse_errors
        self.parse_errors_omitted = parse_errors_omitted
        self.status_counts = status_counts
        self.average_duration_seconds = average_duration_seconds
        self.durations = durations  # every duration counted, when the summary was asked to keep them

    @property
    def success_rate(self) -> float | None:
        return self.entries_succeeded / self.entries_total if self.entries_total else None

    @property
    def guardrail_coverage(self) -> float | None:
        return self.guardrails_present / self.entries_total if self.entries_total else None

    def median_duration_seconds(self) -> float | None:
        return _percentile(sorted(self._kept_durations()), 50)

    def p95_duration_seconds(self) -> float | None:
        return _percentile(sorted(self._kept_durations()), 95)

    def _kept_durations(self) -> array[float]:
        if self.durations is None:
            raise ValueError("the durations were not kept: summarize(..., keep_durations=True)")
        return self.durations

    def to_json(self) -> dict[str, Any]:
        """The file's object, keys in the contract's order."""
        data: dict[str, Any] = {
            "generated_at": self.generated_at,
            "task_id": self.task_id,
            "metrics_file": self.metrics_file,
            "entries_total": self.entries_total,
            "entries_succeeded": self.entries_succeeded,
            "entries_failed": self.entries_failed,
            "success_rate": self.success_rate,
            "guardrail_coverage": self.guardrail_coverage,
            "average_duration_seconds": self.average_duration_seconds,
            "parse_errors": self.parse_errors,
        }
        if self.parse_errors_omitted:
            data["parse_errors_omitted"] = self.parse_errors_omitted
        return data


def _percentile(ordered: list[float], percent: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * percent / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(loc: Locations, *, keep_durations: bool = False) -> MetricsSummary:
    """Read metrics.json (if any) and compute the summary. Raises OSError on I/O faults.

    ``keep_durations`` keeps every duration counted (8 bytes a run), for the
    median and p95 of the table; without it the memory does not grow with the runs.
    """
    try:
        # Only a regular file: a FIFO put there would block the summary for ever.
        fd = store.open_regular(loc.metrics_file)
    except FileNotFoundError:
        return _Scan(set(), keep_durations).result(loc)
    try:
        size = _whole_size(fd)  # what both passes read: later appends wait for the next summary
        reader = _Reader()
        check_first = False
        most_ids = _estimated_lines(fd, size)
        while True:  # at most three times: each exception below changes what makes it
            try:
                scan = _two_passes(fd, size, reader, check_first=check_first, most_ids=most_ids,
                                   keep_durations=keep_durations)  # fmt: skip
                return scan.result(loc)
            except _NotOneObjectALine:
                check_first = True
            except _TooManyRuns:
                most_ids = size // _SHORTEST_LINE_WITH_AN_ID + 1  # as many as the file can hold
    finally:
        os.close(fd)


def _estimated_lines(fd: int, size: int) -> int:
    """The file's line count, guessed from its first block."""
    head = os.pread(fd, min(_READ_BYTES, size), 0)
    return size * max(head.count(b"\n"), 1) // max(len(head), 1)


def _two_passes(
    fd: int, size: int, reader: _Reader, *, check_first: bool, most_ids: int, keep_durations: bool
) -> _Scan:
    """The two passes (see the comment above), by one process or two; ``check_first``:
    the first pass checks each block's lines itself (a first try found it must);
    ``most_ids``: how many run ids the first pass's table is made for."""
    cut = _cut(fd, size)
    if cut is None:
        return _both_passes(fd, 0, size, reader, None, check_first, most_ids, keep_durations)
    pid, link = _start_child(
        lambda link: _both_passes(fd, cut, size, reader, link, check_first, most_ids, keep_durations).handed_over()
    )
    try:
        scan = _both_passes(fd, 0, cut, reader, link, check_first, most_ids, keep_durations)
        scan.merge(*link.receive())
    finally:
        _stop_child(pid, link)
    return scan


def _cut(fd: int, size: int) -> int | None:
    """Where the file is cut between two processes: just past the first line break
    after its middle; None for a small file, where only one CPU is there to make
    the passes, or when no line ends soon enough after the middle."""
    if size < _SPLIT_BYTES or usable_cpus() < 2:
        return None
    start = offset = size // 2
    while offset < min(size, start + MAX_LINE_BYTES):  # a line is found in its first read, but for a long one
        chunk = os.pread(fd, min(_CUT_READ_BYTES, size - offset), offset)
        end = chunk.find(b"\n")
        if end >= 0:
            cut = offset + end + 1
            return cut if cut < size else None
        if not chunk:
            break
        offset += len(chunk)
    return None


def usable_cpus() -> int:
    """The CPUs this process may run on (all of them where the system cannot say)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


def _both_passes(
    fd: int,
    start: int,
    stop: int,
    reader: _Reader,
    link: _Link | None,
    check_first: bool,
    most_ids: int,
    keep_durations: bool,
) -> _Scan:
    """Both passes over the lines between ``start`` and ``stop``: of the whole file,
    or (``link``: to the other process) of one of its two parts."""
    sides = 1 if link is None else 2
    side = 1 if link is not None and link.is_child else 0
    by_side, blocks = _run_id_hashes(fd, start, stop, reader, check_first, sides)
    hashes = by_side[side]
    if link is not None:
        hashes.extend(link.swap(by_side[1 - side]))
    del by_side
    repeated = _repeated_hashes(hashes, _table_size(most_ids) // sides, sides)
    del hashes
    if link is not None:
        repeated |= link.swap(repeated)
    scan = _Scan(repeated, keep_durations)
    return _second_pass(fd, start, stop, blocks, reader, scan)


def _second_pass(fd: int, start: int, stop: int, blocks: list[tuple[int, int]], reader: _Reader, scan: _Scan) -> _Scan:
    """The second pass over the lines between ``start`` and ``stop``, which the
    first pass read as ``blocks`` (its (end, decoded length) for each): counted into ``scan``."""
    lines = _whole_lines(fd, start, stop, scan.overlong_line)
    expected = iter(blocks)
    for data in lines:
        _, decoded_length = next(expected, (stop, -1))
        if len(data) == decoded_length:
            entries = reader.entries_of_decoded(data, lines.as_array(), scan.error)
        else:
            entries, _ = reader.read(data, reader.entry_lines, False, scan.error)
        scan.take(entries)
    return scan


class _Link:
    """The other process of a summary made by two: objects sent both ways over two
    pipes, each pickled behind its length. What the other sends as an exception
    (what it raised) is raised here."""

    def __init__(self, receiving: int, sending: int, *, is_child: bool) -> None:
        self.is_child = is_child
        self._in = os.fdopen(receiving, "rb")
        self._out = os.fdopen(sending, "wb")

    def send(self, value: Any) -> None:
        import pickle  # imported by _start_child: only for large files

        data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        self._out.write(len(data).to_bytes(8, "little"))
        self._out.write(data)
        self._out.flush()

    def receive(self) -> Any:
        import pickle

        head = self._in.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        data = self._in.read(length) if length > 0 else b""
        if len(data) != length:
            raise OSError(errno.EIO, "the summary's second process ended before it was done")
        value = pickle.loads(data)
        if isinstance(value, Exception):
            raise value
        return value

    def swap(self, value: Any) -> Any:
        """Send ``value`` and receive the other's. The child sends first, the parent
        receives first: neither waits for the other to read while it is sending."""
        if self.is_child:
            self.send(value)
            return self.receive()
        other = self.receive()
        self.send(value)
        return other

    def close(self) -> None:
        for stream in (self._in, self._out):
            try:
                stream.close()
            except OSError:  # what was left to send goes nowhere: the other has ended
                pass


def _start_child(work: Callable[[_Link], Any]) -> tuple[int, _Link]:
    """Fork a child that runs ``work(link)`` and sends the parent what it returned or
    raised; returns (its pid, the parent's link to it)."""
    import pickle  # noqa: F401  # before the fork, for both processes: only for large files

    to_child, to_parent = os.pipe(), os.pipe()
    pid = os.fork()
    if pid:
        os.close(to_child[0])
        os.close(to_parent[1])
        return pid, _Link(to_parent[0], to_child[1], is_child=False)
    status = 1
    try:  # the child: never returns into the caller's code
        os.close(to_child[1])
        os.close(to_parent[0])
        gc.freeze()  # the parent's objects stay shared: the collector never visits them
        link = _Link(to_child[0], to_parent[1], is_child=True)
        try:
            outcome: Any = work(link)
        except Exception as exc:  # the parent raises it
            outcome = exc
        link.send(outcome)
        status = 0
    finally:
        os._exit(status)


def _stop_child(pid: int, link: _Link) -> None:
    """Close the link and reap the child (killed first when it has not ended)."""
    link.close()
    if os.waitpid(pid, os.WNOHANG) == (0, 0):
        import signal  # only when this process fails before the child is done

        os.kill(pid, signal.SIGKILL)  # not reaped yet: still there, if only as a zombie
        os.waitpid(pid, 0)


def _whole_size(fd: int) -> int:
    """The file's size between two appends: taken under the shared lock, released at
    once. An append (one write under the exclusive lock) may be seen in part while
    it is being made; the scan then reads without the lock, up to this size."""
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        return os.fstat(fd).st_size
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def write_summary(loc: Locations, summary: MetricsSummary) -> None:
    loc.metrics_root.mkdir(parents=True, exist_ok=True)
    store.write_json(loc.metrics_summary_file, summary.to_json())


def _whole_lines(fd: int, start: int, stop: int, overlong: Callable[[bytes, int], None] | None = None) -> _LineBlocks:
    """Blocks of whole lines, each line ending in ``\\n``, read from the bytes between
    offsets ``start`` and ``stop`` (``start``: where a line starts).

    A line split across two reads starts the next block. A line longer than
    MAX_LINE_BYTES is reported to ``overlong(head, length)`` and skipped.
    """
    return _LineBlocks(fd, start, stop, overlong)


class _LineBlocks:
    """The blocks of ``_whole_lines``, read into one buffer that they all reuse: a
    fresh 256 KiB object for every read (and for every copy of a block) costs page
    faults, ~2 us each here: more than reading the file. Each block is a memoryview,
    valid until the next one is read; ``as_array`` gives it as one JSON array;
    ``end`` is the offset in the file just past it. Read at explicit offsets (a
    forked child reads the same open file)."""

    def __init__(self, fd: int, start: int, stop: int, overlong: Callable[[bytes, int], None] | None) -> None:
        self._fd = fd
        self._offset = start  # where the next read starts
        self._remaining = stop - start
        self._overlong = overlong
        self.end = start
        # "[" + the block's lines (+ "{}]" while as_array makes its copy); the start of
        # the next line after them, which the reads so far do not end
        self._buffer = bytearray(_READ_BYTES + 5)
        self._start = self._stop = 1  # the block is self._buffer[self._start : self._stop]

    def as_array(self) -> memoryview:
        """The block last yielded as one JSON array, its line breaks made commas:
        [line,...,line,{}] (one copy: the buffer's)."""
        buffer, start, stop = self._buffer, self._start, self._stop
        kept = buffer[stop : stop + 3]  # the next line's start, if any
        buffer[start - 1] = ord("[")
        buffer[stop : stop + 3] = b"{}]"
        array = buffer.replace(b"\n", b",")
        buffer[stop : stop + 3] = kept
        return memoryview(array)[start - 1 : stop + 3]

    def __iter__(self) -> Iterator[memoryview]:
        held = 0  # the start of a line that the reads so far do not end, at buffer[1 : 1 + held]
        skipping: tuple[bytes, int] | None = None  # (head, length so far) of an overlong line
        while self._remaining > 0:
            view = self._room_for(held)
            buffer = self._buffer
            got = os.preadv(self._fd, [view[1 + held : 1 + held + min(_READ_BYTES, self._remaining)]], self._offset)
            if not got:
                break
            self._offset += got
            self._remaining -= got
            end = 1 + held + got
            start = 1
            first = buffer.find(b"\n", 1 + held, end)
            if skipping is not None or (held and first >= 0 and first - 1 > MAX_LINE_BYTES):
                head, length = skipping or (bytes(view[1 : 1 + min(held, 4096)]), held)
                if first < 0:
                    skipping, held = (head, length + got), 0
                    continue
                if self._overlong is not None:
                    self._overlong(head, length + first - 1 - held)
                skipping, start = None, first + 1
            stop = buffer.rfind(b"\n", start, end) + 1
            if not stop:
                held = end - start
                view[1 : 1 + held] = view[start:end]
                if held > MAX_LINE_BYTES:
                    skipping, held = (bytes(view[1 : 1 + min(held, 4096)]), held), 0
                continue
            self._start, self._stop = start, stop
            self.end = self._offset - (end - stop)
            yield view[start:stop]
            held = end - stop
            view[1 : 1 + held] = view[stop:end]
        if skipping is not None:
            if self._overlong is not None:
                self._overlong(skipping[0], skipping[1])
        elif held:
            view = self._room_for(held)
            view[1 + held] = ord("\n")
            self._start, self._stop = 1, 2 + held
            self.end = self._offset
            yield view[1 : 2 + held]

    def _room_for(self, held: int) -> memoryview:
        """The buffer, made larger (or smaller again) so that it holds "[", the
        ``held`` bytes of a line begun, a read, and "{}]" (or a line break) after it."""
        needed = held + _READ_BYTES + 5
        size = len(self._buffer)
        if size < needed or size > 4 * needed:
            larger = bytearray(max(needed, 2 * size) if size < needed else needed)
            larger[1 : 1 + held] = self._buffer[1 : 1 + held]
            self._buffer = larger
        return memoryview(self._buffer)


def _status_label(value: object) -> str:
    return value if isinstance(value, str) else dumps_compact(value)


class _Entry(msgspec.Struct, gc=False):
    """The fields the summary uses, typed as the runner writes them. A status is
    a string, None (JSON null) or UNSET (no such key); read by json, any other
    status becomes its label (its JSON text). A duration is None unless a real,
    non-negative, finite number (the C decoder refuses others: json reads them)."""

    run_id: str | None = None
    duration_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = None
    status: str | None | msgspec.UnsetType = msgspec.UNSET
    guardrails_present: bool | None = None


class _RunId(msgspec.Struct, gc=False):
    run_id: str | None = None


class _Nothing(msgspec.Struct, gc=False):
    """An object, read for its syntax alone."""


class _NotOneObjectALine(Exception):
    """A block the first pass read by decode_lines alone holds a line that is not
    one object: its run ids may not be the lines' own."""


class _Reader:
    """Reads a block of whole lines (see the comment above)."""

    def __init__(self) -> None:
        self.run_id_lines = msgspec.json.Decoder(_RunId).decode_lines
        self.entry_lines = msgspec.json.Decoder(_Entry).decode_lines
        self._entry_array = msgspec.json.Decoder(list[_Entry]).decode
        self._object_array = msgspec.json.Decoder(list[_Nothing]).decode

    def run_ids(self, data: Lines, check: bool) -> tuple[list[Any], bool]:
        """First pass: the block's items (their run_id), and whether decode_lines
        read it all. Unless ``check``, a block decode_lines takes is not checked
        here: the second pass does it (``entries_of_decoded``)."""
        if not check:
            try:
                return self.run_id_lines(data), True
            except (msgspec.DecodeError, RecursionError):
                pass
        return self.read(data, self.run_id_lines, False, _ignore)

    def entries_of_decoded(self, data: Lines, text: Lines, error: Callable[[str, str], None]) -> list[Any]:
        """Second pass: the entries of a block the first pass read by decode_lines,
        read as one array (``text``: ``_as_array(data)``); that both take it shows
        every line is one object."""
        try:
            entries = self._entry_array(text)
        except (msgspec.DecodeError, RecursionError):
            try:
                self._object_array(text)
            except (msgspec.DecodeError, RecursionError):
                raise _NotOneObjectALine from None
            return self.read(data, self.entry_lines, True, error)[0]  # a line of other types
        entries.pop()  # the {} closing the array
        return entries

    def read(
        self, data: Lines, decode_lines: Callable[[Lines], list[Any]], whole: bool, error: Callable[[str, str], None]
    ) -> tuple[list[Any], bool]:
        """The block's items in line order, and whether ``decode_lines`` read it all.

        ``whole``: every line of this block is known to be one object. A block
        the C decoder refuses is read in halves, each the same way, down to the
        lines at fault, which json reads (their errors go to ``error``).
        """
        try:
            items = decode_lines(data)
            if not whole:
                self._object_array(_as_array(data))
            return items, True
        except (msgspec.DecodeError, RecursionError):
            pass
        data = bytes(data)
        # the last line break in the first half (or the first one, if it has none)
        cut = data.rfind(b"\n", 0, len(data) // 2) + 1 or data.find(b"\n") + 1
        if cut == len(data):
            parsed = self._parse_line(data[:-1])
            if isinstance(parsed, tuple):
                error(*parsed)
                return [], False
            return ([] if parsed is None else [parsed]), False
        first, _ = self.read(data[:cut], decode_lines, False, error)
        second, _ = self.read(data[cut:], decode_lines, False, error)
        return first + second, False

    def _parse_line(self, raw: bytes) -> Any:
        """A line read by json: None (blank), ``(error, raw)``, or an entry."""
        import json  # only for lines the C decoder refuses: not part of the start-up

        from mcp_core.jsonparse import JSON_PARSE, json_error_text, json_kind

        text = raw.decode("utf-8", "replace").strip(_JS_WHITESPACE)
        if not text:
            return None
        try:
            value = JSON_PARSE.decode(text)
        except json.JSONDecodeError as exc:
            return (f"Invalid JSON: {json_error_text(exc, line=False)}", text)
        except RecursionError:
            return ("Invalid JSON: nested too deeply", text)
        except ValueError as exc:
            return (f"Invalid JSON: {exc}", text)
        if not isinstance(value, dict):
            return (f"Not a JSON object: the line holds {json_kind(value)}", text)
        run_id = value.get("run_id")
        duration = value.get("duration_seconds")
        seconds: float | None = None
        if isinstance(duration, (int, float)) and not isinstance(duration, bool):
            try:
                seconds = float(duration)
            except OverflowError:
                seconds = None
            if seconds is not None and not 0 <= seconds < math.inf:
                seconds = None
        status = value.get("status", msgspec.UNSET)
        return _Entry(
            run_id=run_id if isinstance(run_id, str) else None,
            duration_seconds=seconds,
            status=status if status is None or status is msgspec.UNSET else _status_label(status),
            guardrails_present=value.get("guardrails_present") is True,
        )


def _as_array(data: Lines) -> bytes:
    """The block's lines as one JSON array, its line breaks made commas: [line,...,line,{}]."""
    return b"".join((b"[", data, b"{}]")).replace(b"\n", b",")


def _ignore(message: str, raw: str) -> None:
    """Parse errors are reported by the pass that counts."""


_RUN_ID = attrgetter("run_id")
_FIRST = itemgetter(0)
_NONE_HASH = hash(None)
_FLIPPED = bytes.maketrans(b"\x00\x01", b"\x01\x00")  # translate: a selector of compress, inverted
_HASHES_AT_ONCE = 4096  # the first pass's table takes them in chunks of this many
_DURATION = attrgetter("duration_seconds")
_STATUS = attrgetter("status")
_GUARDRAILS = attrgetter("guardrails_present")


def _table_size(most_ids: int) -> int:
    """The first pass's table: 16 slots for each of ``most_ids`` run ids, up to 2**_SLOT_BITS."""
    return 1 << min(max(16, (16 * most_ids).bit_length()), _SLOT_BITS)


def _run_id_hashes(
    fd: int, start: int, stop: int, reader: _Reader, check: bool, sides: int
) -> tuple[list[array[int]], list[tuple[int, int]]]:
    """First pass, its reading: the hashes of the run ids of the lines between
    ``start`` and ``stop``, by side (even hashes, then odd ones, when ``sides`` is
    2); and for each block its end in the file and its length if decode_lines
    read it whole (else -1)."""
    by_side = [array("q") for _ in range(sides)]
    blocks: list[tuple[int, int]] = []
    lines = _whole_lines(fd, start, stop)
    for data in lines:
        items, whole = reader.run_ids(data, check)
        blocks.append((lines.end, len(data) if whole else -1))
        hashes = list(map(hash, map(_RUN_ID, items)))  # None's for lines without one: see _Scan.take
        if sides == 1:
            by_side[0].fromlist(hashes)
            continue
        odd = bytes(map(operator.and_, hashes, repeat(1)))
        by_side[0].extend(compress(hashes, odd.translate(_FLIPPED)))
        by_side[1].extend(compress(hashes, odd))
    return by_side, blocks


def _repeated_hashes(hashes: array[int], slot_count: int, sides: int) -> set[int]:
    """First pass, its table: of ``hashes``, those that may be the hash of a run id
    that occurs more than once.

    Each hash goes into a table of ``slot_count`` one-byte slots (by its bits
    above the side's, when there are two sides); a hash whose slot is already
    taken (by the same id or by one that collides) is kept. Every hash of an id
    that repeats is in the result; so are some of ids that collide, which the
    second pass then handles exactly like the others. Raises _TooManyRuns when
    more come than the table was made for (then too many would collide), unless it
    is the largest there is.
    """
    if slot_count * sides < 1 << _SLOT_BITS and len(hashes) > slot_count // 8:
        raise _TooManyRuns
    slots = bytearray(slot_count)
    mask = slot_count - 1
    repeated: set[int] = set()
    for first in range(0, len(hashes), _HASHES_AT_ONCE):
        chunk = hashes[first : first + _HASHES_AT_ONCE]
        keys = chunk if sides == 1 else map(operator.rshift, chunk, repeat(1))
        where = list(map(operator.and_, keys, repeat(mask)))
        # Each hash's slot as it was before the hash was put in it (zip reads a slot,
        # then sets it). operator's functions, not bound slot wrappers: faster in map().
        taken = map(operator.getitem, repeat(slots), where)
        marking = map(operator.setitem, repeat(slots), where, repeat(1))
        seen = bytes(map(_FIRST, zip(taken, marking, strict=True)))
        if 1 in seen:
            repeated.update(compress(chunk, seen))
    return repeated


class _TooManyRuns(Exception):
    """More run ids than the first pass's table was made for."""


class _Durations:
    """The durations counted: their exact sum (what math.fsum of them all gives)
    and count, held in a bounded buffer, or every one of them when asked."""

    def __init__(self, keep_all: bool) -> None:
        self.keep_all = keep_all
        self.held: array[float] = array("d")
        self.folded: list[float] = []  # floats whose exact sum is that of the durations no longer held
        self.count = 0

    def add(self, values: list[float | None]) -> None:
        """Add those of ``values`` that are not None (the entries' durations: real,
        non-negative and finite, or None)."""
        before = len(self.held)
        try:
            self.held.fromlist(values)  # type: ignore[arg-type]  # all or nothing; faster than extend
        except TypeError:  # a None among them
            self.held.fromlist([v for v in values if v is not None])  # type: ignore[misc]
        self.count += len(self.held) - before
        self._fold_when_full()

    def merge(self, later: _Durations) -> None:
        """Add the durations ``later`` counted."""
        self.folded += later.folded
        self.held.extend(later.held)
        self.count += later.count
        self._fold_when_full()

    def fold(self) -> None:
        """Fold the durations held into their exact sum, unless all are kept."""
        if not self.keep_all:
            self.folded = _exact_parts(self.folded, self.held)
            del self.held[:]

    def _fold_when_full(self) -> None:
        if len(self.held) >= _DURATIONS_HELD:
            self.fold()

    def average(self) -> float | None:
        # fsum of an iterable: no list of a million float objects (32 MB)
        return math.fsum(chain(self.folded, self.held)) / self.count if self.count else None


def _exact_parts(*values: Iterable[float]) -> list[float]:
    """A few floats whose exact sum is the exact sum of ``values`` (iterables read
    more than once): each the sum, correctly rounded by fsum, of what the ones
    before it left over."""
    parts: list[float] = []
    rest = math.fsum(chain(*values))
    while rest:  # the exact remainder is a multiple of the smallest float: zero only when nothing is left
        parts.append(rest)
        rest = math.fsum(chain(*values, map(operator.neg, parts)))
    return parts


class _Scan:
    """The second pass: counts, the latest entry of candidate runs, errors."""

    def __init__(self, candidates: set[int], keep_durations: bool) -> None:
        self.candidates = candidates  # the first pass's hashes of the run ids that may repeat
        self.latest: dict[str, Any] = {}  # the latest entry of each run id with one of those hashes
        self.statuses: Counter[Any] = Counter()
        self.statuses_folded = False
        self.guarded = 0
        self.durations = _Durations(keep_durations)
        self.errors: list[dict[str, str]] = []
        self.errors_omitted = 0
        self._error_chars = 0

    def error(self, message: str, raw: str) -> None:
        if len(self.errors) >= PARSE_ERRORS_KEPT or self._error_chars + len(raw) > _PARSE_ERROR_CHARS_KEPT:
            self.errors_omitted += 1
            return
        self._error_chars += len(raw)
        self.errors.append({"error": message, "raw": raw})

    def overlong_line(self, head: bytes, length: int) -> None:
        raw = head.decode("utf-8", "replace").strip(_JS_WHITESPACE)[:1024] + "…"
        self.error(f"Line too long to be a metrics entry: {length} bytes (limit {MAX_LINE_BYTES})", raw)

    def take(self, entries: list[Any]) -> None:
        """Take entries in line order: candidates into ``latest``, others counted now."""
        ids = list(map(_RUN_ID, entries))
        chosen = bytearray(map(self.candidates.__contains__, map(hash, ids)))
        if 1 in chosen:
            if _NONE_HASH in self.candidates:  # lines without a run id each count on their own
                chosen = bytearray(map(operator.and_, chosen, map(operator.is_not, ids, repeat(None))))
            self.latest.update(zip(compress(ids, chosen), compress(entries, chosen), strict=True))
            entries = list(compress(entries, chosen.translate(_FLIPPED)))
        self._tally(entries)

    def handed_over(self) -> tuple[bytes, _Scan]:
        """This scan as a child sends it back: the candidates' latest entries it saw,
        encoded by msgspec (pickle takes ~1 us a struct), and the rest of it."""
        seen = msgspec.msgpack.encode(list(self.latest.values()))
        self.candidates, self.latest = set(), {}
        self.durations.fold()
        return seen, self

    def merge(self, seen: bytes, later: _Scan) -> None:
        """Add what ``later`` (``handed_over``) counted over the lines after this scan's."""
        entries = msgspec.msgpack.decode(seen, type=list[_Entry])
        self.latest.update(zip(map(_RUN_ID, entries), entries, strict=True))
        self.statuses.update(later.statuses)
        self.statuses_folded = self.statuses_folded or later.statuses_folded
        self._fold_statuses_when_many()
        self.guarded += later.guarded
        self.durations.merge(later.durations)
        for error in later.errors:
            self.error(error["error"], error["raw"])
        self.errors_omitted += later.errors_omitted

    def _tally(self, entries: list[Any]) -> None:
        self._count_statuses(list(map(_STATUS, entries)))
        self._fold_statuses_when_many()
        self.guarded += operator.countOf(map(_GUARDRAILS, entries), True)
        self.durations.add(list(map(_DURATION, entries)))

    def _count_statuses(self, statuses: list[Any]) -> None:
        """``self.statuses.update(statuses)``, by list.count when every status of the
        block is succeeded or failed and already counted (no key is added, so the
        Counter ends the same, its order too): comparing strings is cheaper than
        hashing each one (each line's status is a string of its own)."""
        usual = [(status, statuses.count(status)) for status in _USUAL_STATUSES if status in self.statuses]
        if sum(count for _, count in usual) < len(statuses):
            self.statuses.update(statuses)
            return
        for status, count in usual:
            self.statuses[status] += count

    def _fold_statuses_when_many(self) -> None:
        """Thousands of distinct statuses (a corrupt or hostile file): keep
        succeeded and failed, count the others as one (from then on), so memory
        stays flat."""
        if len(self.statuses) <= _STATUSES_KEPT and not (self.statuses_folded and len(self.statuses) > 3):
            return
        self.statuses_folded = True
        folded: Counter[Any] = Counter()
        for status, count in self.statuses.items():
            folded[status if status in ("succeeded", "failed") else _OTHER_STATUSES] += count
        self.statuses = folded

    def result(self, loc: Locations) -> MetricsSummary:
        self._tally(list(self.latest.values()))
        self.latest.clear()
        status_counts: Counter[str] = Counter()
        for status, count in self.statuses.items():
            label = status if isinstance(status, str) else "null" if status is None else _MISSING_STATUS
            status_counts[label] += count
        durations = self.durations
        return MetricsSummary(
            generated_at=iso_now(),
            task_id=loc.task_id,
            metrics_file=loc.rel(loc.metrics_file),
            entries_total=sum(status_counts.values()),
            entries_succeeded=status_counts.get("succeeded", 0),
            entries_failed=status_counts.get("failed", 0),
            guardrails_present=self.guarded,
            parse_errors=self.errors,
            parse_errors_omitted=self.errors_omitted,
            status_counts=dict(status_counts.most_common()),
            average_duration_seconds=durations.average(),
            durations=durations.held if durations.keep_all else None,
        )
