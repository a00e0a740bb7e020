"""Metrics: one JSON line per run that ends, written once; and the summary."""

from __future__ import annotations

import codecs
import fcntl
import json
import math
import mmap
import operator
import os
import re
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import compress, filterfalse, repeat
from operator import itemgetter
from typing import Any, BinaryIO

from mcp_core import store
from mcp_core.jsfmt import dumps_compact, iso_now, parse_timestamp_ms
from mcp_core.manifest import guardrail_succeeded
from mcp_core.paths import Locations


def duration_seconds(started_at: object, completed_at: object) -> float | None:
    start = parse_timestamp_ms(started_at)
    end = parse_timestamp_ms(completed_at)
    if start is None or end is None:
        return None
    return max(0.0, (end - start) / 1000)


def metrics_entry(manifest: dict[str, Any], recorded_at: str) -> dict[str, Any]:
    """The metrics line of a run that reached a terminal status (CONTRACT section 6)."""
    commands = [c for c in manifest.get("commands") or [] if isinstance(c, dict)]
    return {
        "run_id": manifest.get("run_id"),
        "task_id": manifest.get("task_id"),
        "started_at": manifest.get("started_at"),
        "completed_at": manifest.get("completed_at"),
        "duration_seconds": duration_seconds(manifest.get("started_at"), manifest.get("completed_at")),
        "status": manifest.get("status"),
        "commands_passed": sum(1 for c in commands if c.get("status") == "succeeded"),
        "commands_failed": sum(1 for c in commands if c.get("status") == "failed"),
        "guardrails_present": guardrail_succeeded(manifest),
        "artifact_path": manifest.get("artifact_root"),
        "recorded_at": recorded_at,
    }


def _identity_prefix(entry: dict[str, Any]) -> bytes:
    """The start of an entry's line up to ``completed_at``: the same for every
    attempt to record the same ending of the same run."""
    head = {k: entry[k] for k in ("run_id", "task_id", "started_at", "completed_at")}
    return dumps_compact(head)[:-1].encode("utf-8", "surrogateescape") + b","


def _already_recorded(fd: int, prefix: bytes) -> bool:
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as view:
        position = view.find(prefix)
        while position != -1:
            if position == 0 or view[position - 1 : position] == b"\n":
                # Only a whole line counts: a SIGKILL in the middle of an append
                # can leave the start of our own line behind, cut short.
                end = view.find(b"\n", position)
                if end != -1 and _is_json_object(view[position:end]):
                    return True
            position = view.find(prefix, position + 1)
    return False


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def record_run(loc: Locations, manifest: dict[str, Any]) -> bool:
    """Append the run's metrics line unless this ending of the run is already there.

    The check and the append happen under one lock on ``metrics.json``, so a
    worker killed between appending and saving ``metrics_recorded`` and then
    finished again never writes a second line. Returns True when a line was added.
    """
    entry = metrics_entry(manifest, iso_now())
    loc.metrics_root.mkdir(parents=True, exist_ok=True)
    path = loc.metrics_file
    prefix = _identity_prefix(entry)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _already_recorded(fd, prefix):
            return False
        size = os.fstat(fd).st_size
        line = dumps_compact(entry).encode("utf-8", "surrogateescape") + b"\n"
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            # A line cut short by a crash must not swallow ours.
            last = os.pread(fd, 1, size - 1)
            if last != b"\n":
                line = b"\n" + line
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        return True
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# The summary (CONTRACT sections 6, 9 and 10)
#
# metrics.json can hold a million lines, so the summary streams it, and its
# memory is bounded whatever the file's size: nothing is kept per line. Each run
# counts once, by its latest line (a retried run appends a second line when it
# ends again); lines without a string run_id count one by one.
#
# Speed comes from two things. Lines the runner wrote itself have one fixed
# shape, so a whole read buffer of them is checked and picked apart by a single
# regular expression (_LINE) in C, and the counts are kept with C-level helpers
# (Counter, itemgetter, array); any other line goes through json.
#
# Counting each run once: a file of up to SINGLE_PASS_MAX_RUNS lines is read
# once, keeping the latest line of every run in a dict (a few hundred bytes a
# run, so at most some 40 MiB). A larger file is read twice. The first pass puts
# every run id into a fixed table of 2**24 one-byte slots by its hash and keeps,
# exactly (as bytes), only the ids that land on a slot already taken: every id
# that repeats, plus the few that collide. The second pass keeps the latest line
# of those ids alone and counts every other line as it goes. Memory: the 16 MiB
# table, the repeated or colliding ids, and 8 bytes a run for the durations
# (the median and p95 of the table need them all).
# ---------------------------------------------------------------------------

PARSE_ERRORS_KEPT = 1000  # more are counted in "parse_errors_omitted" (appended only then)
_PARSE_ERROR_CHARS_KEPT = 1 << 20  # and the raw lines kept hold at most this much text
MAX_LINE_BYTES = 4 << 20  # a longer line is a parse error, never held in memory whole
_READ_BYTES = 1 << 20
SINGLE_PASS_MAX_RUNS = 100_000  # up to here one pass keeping every run's latest line (~400 B each)
_SLOT_BITS = 24

# A line exactly as metrics_entry/record_run (and the old runner) write it. The
# buffer is first checked to hold no backslash, no control character (but the
# line breaks) and only valid UTF-8, so [^"]* is exactly a JSON string's
# content. A match that ran over a line break is caught by counting lines.
# Possessive quantifiers (*+, ?+): nothing here can match differently by backtracking,
# and telling the engine so makes it about a fifth faster.
_STR_OR_NULL = rb'(?:"[^"]*+"|null)'
_NUM = rb"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][-+]?+[0-9]++)?+"
_LINE = re.compile(
    rb'(?:\{"run_id":"([^"]*+)","task_id":' + _STR_OR_NULL
    + rb',"started_at":' + _STR_OR_NULL
    + rb',"completed_at":' + _STR_OR_NULL
    + rb',"duration_seconds":(' + _NUM + rb"|null)"
    + rb',"status":"([^"]*+)"'
    + rb',"commands_passed":' + _NUM
    + rb',"commands_failed":' + _NUM
    + rb',"guardrails_present":(true|false)'
    + rb',"artifact_path":' + _STR_OR_NULL
    + rb',"recorded_at":' + _STR_OR_NULL
    + rb"\}\r?|([^\n]*+))\n"
)
# Every string a "run_id" key may hold, wherever it is (a superset is harmless:
# the first pass only has to miss no id that repeats).
_ANY_RUN_ID = re.compile(rb'"run_id"[ \t\r]*+:[ \t\r]*+"([^"\n]*+)"')
_CONTROL_BYTES = bytes(range(0, 10)) + bytes(range(11, 13)) + bytes(range(14, 32))
# String.prototype.trim: what the old runner took off each line before parsing.
_JS_WHITESPACE = (
    "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)

# An entry is a 5-tuple. Lines matched by _LINE keep the regex's bytes groups:
# (run_id, duration text or b"null", status, b"true"|b"false", b""). Lines read
# by json become (run_id bytes or None, duration float or None, status label,
# guardrails bool, _JSON_ENTRY); the last item tells the two apart.
_JSON_ENTRY = b"json"
_KEY = itemgetter(0)
_DURATION = itemgetter(1)
_STATUS_AND_GUARD = itemgetter(2, 3)
_GUARD = itemgetter(3)
_IS_JSON_ENTRY = itemgetter(4)
_MISSING_STATUS = "(missing)"
_OTHER_STATUSES = b"(other statuses)"
_STATUSES_KEPT = 1000


@dataclass
class MetricsSummary:
    """The figures of metrics-summary.json, plus what the table shows."""

    generated_at: str
    task_id: str
    metrics_file: str
    entries_total: int
    entries_succeeded: int
    entries_failed: int
    guardrails_present: int
    parse_errors: list[dict[str, str]]
    parse_errors_omitted: int
    status_counts: dict[str, int]
    durations: array[float]

    @property
    def success_rate(self) -> float | None:
        return self.entries_succeeded / self.entries_total if self.entries_total else None

    @property
    def guardrail_coverage(self) -> float | None:
        return self.guardrails_present / self.entries_total if self.entries_total else None

    @property
    def average_duration_seconds(self) -> float | None:
        return math.fsum(self.durations) / len(self.durations) if self.durations else None

    def median_duration_seconds(self) -> float | None:
        return _percentile(sorted(self.durations), 50)

    def p95_duration_seconds(self) -> float | None:
        return _percentile(sorted(self.durations), 95)

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


def summarize(loc: Locations, *, single_pass_max_runs: int = SINGLE_PASS_MAX_RUNS) -> MetricsSummary:
    """Read metrics.json (if any) and compute the summary. Raises OSError on I/O faults.

    A file of up to about ``single_pass_max_runs`` lines is read once, keeping
    the latest line of every run; a larger one is read twice (see above).
    """
    try:
        handle = open(loc.metrics_file, "rb")  # noqa: SIM115 - held across both passes below
    except FileNotFoundError:
        return _Scan(None).result(loc)
    with handle:
        # Writers append under an exclusive lock: a shared one gives a
        # consistent file, and the size fixes what both passes read.
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        size = os.fstat(handle.fileno()).st_size
        if _estimated_lines(handle, size) <= single_pass_max_runs:
            scan = _Scan(None, most_runs=single_pass_max_runs + single_pass_max_runs // 8 + 64)
            try:
                for data, start, end in _whole_lines(handle, size, scan.overlong_line):
                    scan.take(data, start, end)
                return scan.result(loc)
            except _TooManyRuns:
                handle.seek(0)  # the estimate was wrong: start again, the two-pass way
        scan = _Scan(_repeated_run_ids(handle, size))
        handle.seek(0)
        for data, start, end in _whole_lines(handle, size, scan.overlong_line):
            scan.take(data, start, end)
    return scan.result(loc)


def _estimated_lines(handle: BinaryIO, size: int) -> int:
    """The file's line count, guessed from its first block (leaves the handle at 0)."""
    head = handle.read(min(_READ_BYTES, size))
    handle.seek(0)
    if not head:
        return 0
    return size * max(head.count(b"\n"), 1) // len(head)


def write_summary(loc: Locations, summary: MetricsSummary) -> None:
    loc.metrics_root.mkdir(parents=True, exist_ok=True)
    store.write_json(loc.metrics_summary_file, summary.to_json())


def _whole_lines(
    handle: BinaryIO, size: int, overlong: Callable[[bytes, int], None] | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """``(buffer, start, end)``: ``buffer[start:end]`` is whole lines, each ending in ``\\n``.

    Reads ``size`` bytes in large blocks without copying them again; a line
    split across two reads is joined on its own. A line longer than
    MAX_LINE_BYTES is reported to ``overlong(head, length)`` and skipped.
    """
    remaining = size
    pending: list[bytes] = []
    pending_bytes = 0
    skipping: tuple[bytes, int] | None = None  # (head, length so far) of an overlong line
    while remaining > 0:
        data = handle.read(min(_READ_BYTES, remaining))
        if not data:
            break
        remaining -= len(data)
        start = 0
        first = data.find(b"\n")
        if skipping is not None:
            if first < 0:
                skipping = (skipping[0], skipping[1] + len(data))
                continue
            if overlong is not None:
                overlong(skipping[0], skipping[1] + first)
            skipping = None
            start = first + 1
        elif pending:
            if first < 0:
                pending.append(data)
                pending_bytes += len(data)
                if pending_bytes > MAX_LINE_BYTES:
                    head = b"".join(pending)[:4096]
                    skipping, pending, pending_bytes = (head, pending_bytes), [], 0
                continue
            joined = b"".join(pending) + data[: first + 1]
            pending, pending_bytes = [], 0
            if len(joined) - 1 > MAX_LINE_BYTES:
                if overlong is not None:
                    overlong(joined[:4096], len(joined) - 1)
            else:
                yield joined, 0, len(joined)
            start = first + 1
        last = data.rfind(b"\n")
        if last < start:
            # No line ends in this block: all of it (from start) begins one.
            pending.append(data[start:] if start else data)
            pending_bytes += len(data) - start
            if pending_bytes > MAX_LINE_BYTES:
                head = b"".join(pending)[:4096]
                skipping, pending, pending_bytes = (head, pending_bytes), [], 0
            continue
        yield data, start, last + 1
        if last + 1 < len(data):
            pending.append(data[last + 1 :])
            pending_bytes = len(data) - last - 1
    if skipping is not None:
        if overlong is not None:
            overlong(skipping[0], skipping[1])
    elif pending:
        joined = b"".join(pending) + b"\n"
        yield joined, 0, len(joined)


def _clean(data: bytes, start: int, end: int) -> bool:
    """Whether ``data[start:end]`` can take the fast path: no escapes, no control
    characters but line breaks (a CR only before LF), valid UTF-8. Checks cover
    the whole buffer, a superset, which only ever sends more lines to json."""
    if b"\\" in data:
        return False
    if len(data.translate(None, _CONTROL_BYTES)) != len(data):
        return False
    if b"\r" in data and data.count(b"\r", start, end) != data.count(b"\r\n", start, end):
        return False
    return data.isascii() or _valid_utf8(data, start, end)


def _lines(data: bytes, start: int, end: int) -> list[bytes]:
    return data[start:end].split(b"\n")[:-1]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# JSON.parse's grammar: Python's json also takes NaN and Infinity.
JSON_PARSE = json.JSONDecoder(parse_constant=_reject_constant)


def json_error_text(exc: json.JSONDecodeError, *, line: bool = True) -> str:
    """What is wrong and where: ``Expecting value at line 2 column 1``.

    Some of json's messages end in "at" themselves ("Unterminated string starting
    at"); the place follows once, never "at at".
    """
    where = f"line {exc.lineno} column {exc.colno}" if line else f"column {exc.colno}"
    return f"{exc.msg.removesuffix(' at')} at {where}"


def json_kind(value: object) -> str:
    """What a parsed JSON value is, for messages: "null", "an array", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def _status_label(value: object) -> str:
    return value if isinstance(value, str) else dumps_compact(value)


def _parse_line(raw: bytes) -> tuple[Any, ...] | tuple[str, str] | None:
    """A line read by json: None (blank), ``(error, raw)``, or an entry 5-tuple."""
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
    key = run_id.encode("utf-8", "surrogatepass") if isinstance(run_id, str) else None
    duration = value.get("duration_seconds")
    seconds: float | None = None
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        try:
            seconds = float(duration)
        except OverflowError:
            seconds = None
    status = _status_label(value["status"]) if "status" in value else _MISSING_STATUS
    return (key, seconds, status, value.get("guardrails_present") is True, _JSON_ENTRY)


def _repeated_run_ids(handle: BinaryIO, size: int) -> dict[bytes, Any]:
    """First pass: the run ids (UTF-8 bytes) that may occur more than once.

    Every id goes into a table of 2**_SLOT_BITS one-byte slots by its hash; an
    id whose slot is already taken (by itself or by a colliding id) is kept.
    Every id that repeats is in the result; so are some that collide, which the
    second pass then handles exactly like the others. A dict (values None) that
    the second pass fills with each one's latest line, sharing the keys.
    """
    slots = bytearray(1 << _SLOT_BITS)
    mask = (1 << _SLOT_BITS) - 1
    repeated: set[bytes] = set()
    for data, start, end in _whole_lines(handle, size):
        if b"\\" not in data and (data.isascii() or _valid_utf8(data, start, end)):
            ids = _ANY_RUN_ID.findall(data, start, end)
        else:
            ids = []
            for raw in _lines(data, start, end):
                parsed = _parse_line(raw)
                if parsed is not None and len(parsed) == 5 and parsed[0] is not None:
                    ids.append(parsed[0])
        if not ids:
            continue
        # operator's functions, not bound slot wrappers: several times faster in map()
        where = list(map(operator.and_, map(hash, ids), repeat(mask)))
        seen = bytes(map(operator.getitem, repeat(slots), where))
        if 1 in seen:
            repeated.update(compress(ids, seen))
        if len(set(where)) != len(where):  # two ids of this block on one slot
            counts = Counter(where)
            repeated.update(i for i, w in zip(ids, where, strict=True) if counts[w] > 1)
        deque(map(operator.setitem, repeat(slots), where, repeat(1)), maxlen=0)
    return dict.fromkeys(repeated)


def _valid_utf8(data: bytes, start: int, end: int) -> bool:
    try:
        codecs.utf_8_decode(memoryview(data)[start:end], "strict", True)
    except UnicodeDecodeError:
        return False
    return True


class _TooManyRuns(Exception):
    """A single pass would keep more runs than its memory allows."""


class _Scan:
    """The second (or only) pass: counts, the latest line of candidate runs, errors."""

    def __init__(self, candidates: dict[bytes, Any] | None, most_runs: int = 0) -> None:
        # None: every run id is a candidate (single pass), up to most_runs of them;
        # else the ids the first pass found may repeat, whose latest lines then
        # go into that same dict (its values are None until seen).
        self.candidates = candidates
        self.most_runs = most_runs
        self.latest: dict[bytes, Any] = {} if candidates is None else candidates
        self.line_pairs: Counter[tuple[bytes, bytes]] = Counter()
        self.json_pairs: Counter[tuple[str, bool]] = Counter()
        self.durations: array[float] = array("d")
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

    def take(self, data: bytes, start: int, end: int) -> None:
        """Count the whole lines ``data[start:end]``."""
        if _clean(data, start, end):
            entries = _LINE.findall(data, start, end)
            if len(entries) == data.count(b"\n", start, end):
                if b"" not in map(_GUARD, entries):
                    self._count(entries, False)
                    return
                self._count(self._read_others(entries), True)
                return
        self._count(self._read_each(_lines(data, start, end)), True)

    def _read_others(self, entries: list[tuple[bytes, ...]]) -> list[tuple[Any, ...]]:
        """Entries in line order, the lines _LINE did not match read by json."""
        result: list[tuple[Any, ...]] = []
        for entry in entries:
            if entry[3]:
                result.append(entry)
                continue
            parsed = _parse_line(entry[4])
            if parsed is None:
                continue
            if len(parsed) == 2:
                self.error(*parsed)
            else:
                result.append(parsed)
        return result

    def _read_each(self, lines: list[bytes]) -> list[tuple[Any, ...]]:
        result: list[tuple[Any, ...]] = []
        for raw in lines:
            parsed = _parse_line(raw)
            if parsed is None:
                continue
            if len(parsed) == 2:
                self.error(*parsed)
            else:
                result.append(parsed)
        return result

    def _count(self, entries: list[tuple[Any, ...]], mixed: bool) -> None:
        """Take entries in line order: candidates into ``latest``, others counted now."""
        if self.candidates is None:
            if mixed:
                loose = [e for e in entries if e[0] is None]
                entries = [e for e in entries if e[0] is not None]
                self._tally(loose, True)
            self.latest.update(zip(map(_KEY, entries), entries, strict=True))
            if len(self.latest) > self.most_runs:
                raise _TooManyRuns
            return
        chosen = list(map(self.candidates.__contains__, map(_KEY, entries)))
        if True in chosen:
            picked = list(compress(entries, chosen))
            self.latest.update(zip(map(_KEY, picked), picked, strict=True))
            entries = list(compress(entries, map(operator.not_, chosen)))
        self._tally(entries, mixed)

    def _tally(self, entries: list[tuple[Any, ...]], mixed: bool) -> None:
        if mixed:
            from_json = list(filter(_IS_JSON_ENTRY, entries))
            entries = list(filterfalse(_IS_JSON_ENTRY, entries))
            for _key, seconds, status, guard, _marker in from_json:
                self.json_pairs[(status, guard)] += 1
                if seconds is not None:
                    self.durations.append(seconds)
        self.line_pairs.update(map(_STATUS_AND_GUARD, entries))
        if len(self.line_pairs) + len(self.json_pairs) > _STATUSES_KEPT:
            self._fold_statuses()
        texts = list(map(_DURATION, entries))
        if b"null" in texts:
            texts = list(filter(b"null".__ne__, texts))
        self.durations.extend(map(float, texts))

    def _fold_statuses(self) -> None:
        """Thousands of distinct statuses (a corrupt or hostile file): keep
        succeeded and failed, count the others as one, so memory stays flat."""
        folded: Counter[tuple[bytes, bytes]] = Counter()
        for (status, guard), count in self.line_pairs.items():
            folded[(status if status in (b"succeeded", b"failed") else _OTHER_STATUSES, guard)] += count
        self.line_pairs = folded
        kept: Counter[tuple[str, bool]] = Counter()
        other = _OTHER_STATUSES.decode()
        for (label, flag), count in self.json_pairs.items():
            kept[(label if label in ("succeeded", "failed") else other, flag)] += count
        self.json_pairs = kept

    def result(self, loc: Locations) -> MetricsSummary:
        self._tally([entry for entry in self.latest.values() if entry is not None], True)
        self.latest.clear()
        status_counts: Counter[str] = Counter()
        guarded = 0
        for (status, guard), count in self.line_pairs.items():
            status_counts[status.decode("utf-8")] += count
            if guard == b"true":
                guarded += count
        for (label, flag), count in self.json_pairs.items():
            status_counts[label] += count
            if flag:
                guarded += count
        durations = self.durations
        if durations and not (min(durations) >= 0 and max(durations) < math.inf):
            durations = array("d", (d for d in durations if 0 <= d < math.inf))
        return MetricsSummary(
            generated_at=iso_now(),
            task_id=loc.task_id,
            metrics_file=loc.rel(loc.metrics_file),
            entries_total=sum(status_counts.values()),
            entries_succeeded=status_counts.get("succeeded", 0),
            entries_failed=status_counts.get("failed", 0),
            guardrails_present=guarded,
            parse_errors=self.errors,
            parse_errors_omitted=self.errors_omitted,
            status_counts=dict(status_counts.most_common()),
            durations=durations,
        )
