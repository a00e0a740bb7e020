"""JSON text and timestamps exactly as the old Node runner wrote them.

``JSON.stringify`` differs from ``json.dumps`` in how it prints numbers
(``0`` not ``0.0``, ``1e-7`` not ``1e-07``, no exponent below 1e21, NaN as
``null``) and in escaping lone surrogates; ``Date.toISOString()`` always has
three truncated fractional digits.

Imported by poll, which callers run in loops: only C modules at the top (no
json, re, datetime or typing: see BENCHMARKS.md); the rarer paths import what
they need where they need it.
"""

from __future__ import annotations

import marshal  # built in, loaded at start-up: no import cost for poll
import time
from _json import encode_basestring as _encode_string

TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable
    from typing import Any

_MAX_SAFE_INT = 2**53
_INFINITY = float("inf")


def _has_lone_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def replace_lone_surrogates(text: str, replace: Callable[[str], str]) -> str:
    """``text`` with each lone surrogate (U+D800-U+DFFF) replaced by ``replace(it)``."""
    if not _has_lone_surrogate(text):
        return text
    return "".join(replace(ch) if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def _escape_surrogate(ch: str) -> str:
    return f"\\u{ord(ch):04x}"


def js_number(value: float) -> str:
    """Format a float as JavaScript's Number.prototype.toString does."""
    if not -_INFINITY < value < _INFINITY:  # NaN or infinite (no math: a shared library poll does without)
        return "null"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    all_digits = int_part + frac_part
    stripped = all_digits.lstrip("0")
    # value = 0.<digits> * 10**point
    point = len(int_part) + (int(exp_text) if exp_text else 0) - (len(all_digits) - len(stripped))
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        text = digits + "0" * (point - k)
    elif 0 < point <= 21:
        text = digits[:point] + "." + digits[point:]
    elif -6 < point <= 0:
        text = "0." + "0" * -point + digits
    else:
        exponent = point - 1
        exp_sign = "+" if exponent >= 0 else "-"
        head = digits[0] + ("." + digits[1:] if k > 1 else "")
        text = f"{head}e{exp_sign}{abs(exponent)}"
    return sign + text


def _string(value: str) -> str:
    # encode_basestring keeps non-ASCII as it is: an ASCII result has no surrogate
    return replace_lone_surrogates(_encode_string(value), _escape_surrogate)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value) if abs(value) <= _MAX_SAFE_INT else js_number(float(value))
    if isinstance(value, float):
        return js_number(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Every JSON file and every save of a manifest goes through _encode, and a
# manifest is written several times a command: the common item types (str,
# None, bool, int of exact type) are written inline, without a call, which makes
# it ~3 times faster (BENCHMARKS.md). Anything else goes through _scalar as before.
_NEWLINE_INDENTS: dict[tuple[str, int], str] = {}


def _newline_indent(indent: str, level: int) -> str:
    key = (indent, level)
    text = _NEWLINE_INDENTS.get(key)
    if text is None:
        text = _NEWLINE_INDENTS[key] = "\n" + indent * level
    return text


def _item(item: Any, indent: str | None, level: int, out: list[str]) -> None:
    kind = type(item)
    if kind is str:
        text = _encode_string(item)
        out.append(text if not _has_lone_surrogate(text) else _string(item))
    elif item is None:
        out.append("null")
    elif kind is bool:
        out.append("true" if item else "false")
    elif kind is int and -_MAX_SAFE_INT <= item <= _MAX_SAFE_INT:
        out.append(str(item))
    elif kind is dict or kind is list or isinstance(item, (dict, list, tuple)):
        _encode(item, indent, level, out)
    else:
        out.append(_scalar(item))


def _encode(value: Any, indent: str | None, level: int, out: list[str]) -> None:
    append = out.append
    if isinstance(value, dict):
        if not value:
            append("{}")
            return
        if indent is None:
            append("{")
            first = True
            for key, item in value.items():
                append(("" if first else ",") + _string(key if type(key) is str else str(key)) + ":")
                first = False
                _item(item, None, level, out)
            append("}")
            return
        inner = _newline_indent(indent, level + 1)
        separator = "," + inner
        append("{")
        first = True
        for key, item in value.items():
            append((inner if first else separator) + _string(key if type(key) is str else str(key)) + ": ")
            first = False
            _item(item, indent, level + 1, out)
        append(_newline_indent(indent, level) + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            append("[]")
            return
        if level == 1 and indent == "  ":
            _list_of_entries(value, out)
            return
        if indent is None:
            append("[")
            first = True
            for item in value:
                if not first:
                    append(",")
                first = False
                _item(item, None, level, out)
            append("]")
            return
        inner = _newline_indent(indent, level + 1)
        separator = "," + inner
        append("[")
        first = True
        for item in value:
            append(inner if first else separator)
            first = False
            _item(item, indent, level + 1, out)
        append(_newline_indent(indent, level) + "]")
    else:
        append(_scalar(value))


# A manifest is saved at every command boundary, and all but one or two of its
# command entries are as they were at the last save: the text of each object in
# a list of the top-level value is kept, keyed by its marshal form. marshal
# takes only values of the exact built-in types (anything else raises
# ValueError: encoded afresh, not kept), and it tells True from 1, 1 from 1.0
# and one key order from another, so equal keys are values that encode alike.
# Version 2: no back-references, whose flags depend on reference counts. Bounded
# by size (a summary may be 64 KiB): all are dropped when the next would pass it.
_ENTRY_TEXTS: dict[bytes, str] = {}
_ENTRY_TEXTS_MAX_SIZE = 4 * 1024 * 1024  # key bytes + text characters
_entry_texts_size = 0


def _keep_entry_text(key: bytes, text: str) -> None:
    global _entry_texts_size
    size = len(key) + len(text)
    if size > _ENTRY_TEXTS_MAX_SIZE:
        return
    if _entry_texts_size + size > _ENTRY_TEXTS_MAX_SIZE:
        _ENTRY_TEXTS.clear()
        _entry_texts_size = 0
    _ENTRY_TEXTS[key] = text
    _entry_texts_size += size


def _list_of_entries(value: list[Any] | tuple[Any, ...], out: list[str]) -> None:
    """A list at level 1 of a ``dumps_pretty`` text, its objects from _ENTRY_TEXTS."""
    append = out.append
    texts = _ENTRY_TEXTS
    append("[")
    first = True
    for item in value:
        append("\n    " if first else ",\n    ")
        first = False
        if type(item) is not dict:
            _item(item, "  ", 2, out)
            continue
        try:
            key = marshal.dumps(item, 2)
        except ValueError:  # not only built-in types, or nested too deeply
            _encode(item, "  ", 2, out)
            continue
        text = texts.get(key)
        if text is None:
            entry: list[str] = []
            _encode(item, "  ", 2, entry)
            text = "".join(entry)
            _keep_entry_text(key, text)
        append(text)
    append("\n  ]")


def dumps_compact(value: Any) -> str:
    """``JSON.stringify(value)``: no whitespace, no trailing newline."""
    out: list[str] = []
    _encode(value, None, 0, out)
    return "".join(out)


def dumps_pretty(value: Any) -> str:
    """``JSON.stringify(value, null, 2) + "\\n"``: the form of every JSON file."""
    out: list[str] = []
    _encode(value, "  ", 0, out)
    out.append("\n")
    return "".join(out)


def iso_from_ms(epoch_ms: int) -> str:
    """``new Date(epoch_ms).toISOString()``."""
    seconds, millis = divmod(int(epoch_ms), 1000)
    # gmtime, not datetime (an import poll does without); not strftime: glibc's %Y
    # does not pad years before 1000 to four digits.
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z"
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_now() -> str:
    return iso_from_ms(now_ms())


def stamp(iso: str) -> str:
    """A timestamp made safe for file names: ``:`` and ``.`` become ``-``."""
    return iso.replace(":", "-").replace(".", "-")


# The old runner's legacy directories and early manifests used stamps as
# timestamps: 2025-10-18T13-37-27Z, 2025-10-18T16-21-54-804Z.
_DASHED = r"^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})(?:-(\d{1,6}))?(Z|[+-]\d{2}:?\d{2})?$"
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_timestamp_ms(value: object) -> float | None:
    """Milliseconds since the epoch for a timestamp string, or None when unknown.

    Accepts ISO 8601 (what the runner writes), the dash-separated stamp form,
    and, as a last resort, whatever python-dateutil reads. Times without a zone
    are taken as UTC. Never raises.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    written = _runner_timestamp_ms(text)
    if written is not None:
        return written
    import datetime as dt  # only for the shapes the runner does not write itself

    moment = _parse_iso(text)
    if moment is None:
        import re

        dashed = re.match(_DASHED, text)
        if dashed:
            day, hh, mm, ss, frac, zone = dashed.groups()
            rebuilt = f"{day}T{hh}:{mm}:{ss}" + (f".{frac}" if frac else "") + (zone or "")
            moment = _parse_iso(rebuilt)
    if moment is None:
        moment = _parse_with_dateutil(text)
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(milliseconds=1)
    except (OverflowError, ValueError):
        return None


def duration_seconds(started_at: object, completed_at: object) -> float | None:
    """Seconds from one timestamp to the other (never negative), or None when either is unknown."""
    start = parse_timestamp_ms(started_at)
    end = parse_timestamp_ms(completed_at)
    if start is None or end is None:
        return None
    return max(0.0, (end - start) / 1000)


def _runner_timestamp_ms(text: str) -> float | None:
    """The value for the shape the runner writes, ``2025-10-18T18:26:16.689Z``, by
    arithmetic (poll reads one at every call); None for any other shape or an
    impossible date, which then go through datetime as every other shape does."""
    if (
        len(text) != 24
        or text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":"
        or text[19] != "." or text[23] != "Z"
    ):
        return None
    fields = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19], text[20:23])
    if not all(field.isascii() and field.isdigit() for field in fields):
        return None
    year, month, day, hour, minute, second, millis = (int(field) for field in fields)
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if (
        year < 1 or not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59
        or not 1 <= day <= _MONTH_DAYS[month - 1] + (1 if month == 2 and leap else 0)
    ):
        return None
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return float(seconds * 1000 + millis)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719468


def _parse_iso(text: str) -> dt.datetime | None:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None
def _parse_with_dateutil(text: str) -> dt.datetime | None:
    import warnings

    from dateutil import parser  # ~35 ms to import: only for unusual shapes

    try:
        return parser.isoparse(text)
    except (ValueError, OverflowError):
        pass
    # A time zone name dateutil does not know ("10:00 ZT") is no timestamp, as for
    # Date.parse; dateutil would warn on stderr (a run's text) and ignore the name.
    with warnings.catch_warnings():
        warnings.simplefilter("error", parser.UnknownTimezoneWarning)
        try:
            return parser.parse(text)
        except (ValueError, OverflowError, parser.ParserError, parser.UnknownTimezoneWarning):
            return None
