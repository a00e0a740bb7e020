"""poll's fast path: the common call answered without importing the full command.

Callers run poll in loops (reviewer scripts over hundreds of runs, ``--watch``
in CI), so its start-up is most of its cost. ``mcp_core.commands.poll`` imports
pathlib, dataclasses, typing, json, re, decimal and docopt: ~90 ms here against
~20 ms for the bare interpreter. This module uses only what the interpreter has
loaded before it runs any code (os, sys, time, stat) plus the ``_json`` C
accelerator, and answers the usual call, ``poll <run-id> [--format json|text]``
for a run found in its run directory whose heartbeat is not to be marked stale.

Anything else goes to ``mcp_core.commands.poll.main`` with the same arguments,
before anything is printed: another argument form (``--watch``, help, errors),
a run reached through its compatibility pointer, a manifest that cannot be read
or parsed or is not an object, a heartbeat timestamp in another shape than the
runner writes, a stale heartbeat to record, a number that needs JavaScript's
exponent form. What this module prints and writes is byte for byte what the
full command prints and writes (tests/commands/poll_fast_test.py holds them to
it); it repeats the full command's rules rather than importing them because the
imports are the cost it exists to avoid.
"""

from __future__ import annotations

import os
import stat
import sys
import time

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")  # manifest.TERMINAL_STATUSES
STALE_DETAIL = "stale-heartbeat"
POLL_SNAPSHOT_NAME = "poll.json"
MANIFEST_NAME = "manifest.json"
DEFAULT_TASK_ID = "0001"
HEARTBEAT_INTERVAL_SECONDS = 10
HEARTBEAT_STALE_AFTER_SECONDS = 30
_RUN_ID_MAX = 200
_MAX_SAFE_INT = 2**53
_COMMAND_KEYS = ("index", "command", "status", "summary", "exit_code", "started_at", "completed_at",
                 "response_file", "error_file")
_KEPT_ONLY_WHEN_PRESENT = ("index", "command", "status")
_PACKAGE_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
_MISSING = object()


class _Unusual(Exception):
    """Not the common case: the full command answers."""


# --- JSON in and out, as json.loads and jsfmt do it ------------------------------


class _DecoderContext:
    # What _json.make_scanner reads: json.JSONDecoder's defaults.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


def _loads(text: str) -> object:
    """``json.loads(text)`` for a document that parses; _Unusual otherwise (the full
    command then reports the error in its own words)."""
    import _json

    start = len(text) - len(text.lstrip(" \t\n\r"))
    if text.startswith("\ufeff"):
        raise _Unusual
    try:
        value, end = _json.make_scanner(_DecoderContext)(text, start)  # type: ignore[arg-type]
    except (StopIteration, ValueError, RecursionError, SystemError) as exc:
        # SystemError: the scanner raises json.decoder.JSONDecodeError only when
        # json.decoder has been imported, and this module does not import it.
        raise _Unusual from exc
    if text[end:].strip(" \t\n\r"):
        raise _Unusual
    return value


def _number(value: float) -> str:
    """jsfmt.js_number for the floats whose repr has no exponent (all a poll prints
    in practice); the others go to the full command."""
    if value == 0:
        return "0"
    text = repr(value)
    if "e" in text or "n" in text:  # exponent, inf, nan
        raise _Unusual
    return text[:-2] if text.endswith(".0") else text


def _string(value: str) -> str:
    import _json

    text: str = _json.encode_basestring(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates, escaped as JSON.stringify does
            text = "".join(f"\\u{ord(ch):04x}" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


def _encode(value: object, indent: str | None, level: int, out: list[str]) -> None:
    """jsfmt._encode."""
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        if indent is None:
            out.append("{")
            for n, (key, item) in enumerate(value.items()):
                if n:
                    out.append(",")
                out.append(_string(str(key)))
                out.append(":")
                _encode(item, None, level, out)
            out.append("}")
            return
        inner = "\n" + indent * (level + 1)
        out.append("{")
        for n, (key, item) in enumerate(value.items()):
            out.append(("," if n else "") + inner)
            out.append(_string(str(key)) + ": ")
            _encode(item, indent, level + 1, out)
        out.append("\n" + indent * level + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        if indent is None:
            out.append("[")
            for n, item in enumerate(value):
                if n:
                    out.append(",")
                _encode(item, None, level, out)
            out.append("]")
            return
        inner = "\n" + indent * (level + 1)
        out.append("[")
        for n, item in enumerate(value):
            out.append(("," if n else "") + inner)
            _encode(item, indent, level + 1, out)
        out.append("\n" + indent * level + "]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value) if abs(value) <= _MAX_SAFE_INT else _number(float(value)))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(_string(value))
    else:  # not from JSON: cannot happen
        raise _Unusual


def dumps_pretty(value: object) -> str:
    out: list[str] = []
    _encode(value, "  ", 0, out)
    out.append("\n")
    return "".join(out)


def dumps_compact(value: object) -> str:
    out: list[str] = []
    _encode(value, None, 0, out)
    return "".join(out)


# --- time ---------------------------------------------------------------------------


def iso_from_ms(epoch_ms: int) -> str:
    """jsfmt.iso_from_ms for times after 1970."""
    seconds, millis = divmod(int(epoch_ms), 1000)
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{millis:03d}Z"
    )


def _days_from_civil(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719468


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def timestamp_ms(value: object) -> int | None:
    """jsfmt.parse_timestamp_ms for what the runner writes (``2025-10-18T18:26:16.689Z``):
    None where it gives None for want of a string; _Unusual for any other shape."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if (
        len(text) != 24
        or text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":"
        or text[19] != "." or text[23] != "Z"
    ):
        raise _Unusual
    fields = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19], text[20:23])
    if not all(field.isascii() and field.isdigit() for field in fields):
        raise _Unusual
    year, month, day, hour, minute, second, millis = (int(field) for field in fields)
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if (
        year < 1 or not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59
        or not 1 <= day <= _MONTH_DAYS[month - 1] + (1 if month == 2 and leap else 0)
    ):
        raise _Unusual
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return seconds * 1000 + millis


def to_fixed_1(value: float) -> str:
    """heartbeat.to_fixed_1 (JavaScript's toFixed(1), half up on the exact binary value)
    for the ages a poll shows; the others go to the full command."""
    if not 0 <= value < 1e15:
        raise _Unusual
    numerator, denominator = value.as_integer_ratio()
    tenths = (20 * numerator + denominator) // (2 * denominator)
    return f"{tenths // 10}.{tenths % 10}"


# --- the run -------------------------------------------------------------------------


def _plain_run_id(run_id: str) -> bool:
    """What paths.validate_run_id accepts (the full command reports the others)."""
    return not (
        not run_id
        or run_id in (".", "..")
        or any(ch in run_id for ch in "/\\\x00\n\r\t")
        or len(run_id.encode("utf-8", "surrogateescape")) > _RUN_ID_MAX
    )


def _root(env: dict[str, str] | os._Environ[str], name: str, cwd: str) -> str | None:
    value = env.get(name)
    return os.path.abspath(os.path.join(cwd, value)) if value else None


def _locations(run_id: str) -> tuple[str, str]:
    """``(repo root, runs root)`` as paths.locate finds them."""
    env = os.environ
    cwd = os.getcwd()
    repo_root = _root(env, "MCP_RUNNER_REPO_ROOT", cwd)
    if repo_root is None:
        hinted = env.get("MCP_RUNNER_CHECKOUT")
        repo_root = os.path.realpath(os.path.join(cwd, hinted)) if hinted else _PACKAGE_CHECKOUT
    task_id = env.get("MCP_RUNNER_TASK_ID") or DEFAULT_TASK_ID
    if not task_id.replace("-", "").replace("_", "").replace(".", "").isalnum() or not task_id.isascii():
        raise _Unusual  # odd task ids: the full command's pathlib rules apply
    runs_root = _root(env, "MCP_RUNNER_TASK_RUNS_ROOT", cwd) or os.path.join(repo_root, ".runs", task_id, "mcp")
    return repo_root, runs_root


def _rel(repo_root: str, path: str) -> str:
    return os.path.relpath(os.path.abspath(path), repo_root).replace(os.sep, "/")


def _positive_number(value: object, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return value
    return default


def heartbeat_state(manifest: dict[str, object], now_ms: int) -> dict[str, object]:
    """heartbeat.heartbeat_state."""
    updated_at = manifest.get("heartbeat_at")
    stale_after = _positive_number(manifest.get("heartbeat_stale_after_seconds"), HEARTBEAT_STALE_AFTER_SECONDS)
    beat_ms = timestamp_ms(updated_at)
    age: float | None = None
    stale = False
    if beat_ms is not None:
        age = max(0.0, round(now_ms - beat_ms) / 1000)
        stale = age > stale_after
    interval = manifest.get("heartbeat_interval_seconds")
    stale_after_value = manifest.get("heartbeat_stale_after_seconds")
    return {
        "updated_at": updated_at if isinstance(updated_at, str) else None,
        "age_seconds": age,
        "stale": stale,
        "interval_seconds": HEARTBEAT_INTERVAL_SECONDS if interval is None else interval,
        "stale_after_seconds": HEARTBEAT_STALE_AFTER_SECONDS if stale_after_value is None else stale_after_value,
    }


def _commands(manifest: dict[str, object]) -> list[dict[str, object]]:
    commands = manifest.get("commands")
    if not isinstance(commands, list):
        return []
    return [entry for entry in commands if isinstance(entry, dict)]


def snapshot(
    repo_root: str, manifest: dict[str, object], path: str, state: dict[str, object], polled_at: str
) -> dict[str, object]:
    """poll.snapshot."""
    result: dict[str, object] = {}
    for key in ("run_id", "status"):
        if key in manifest:
            result[key] = manifest[key]
    result["status_detail"] = manifest.get("status_detail")
    result["started_at"] = manifest.get("started_at")
    result["completed_at"] = manifest.get("completed_at")
    result["manifest"] = _rel(repo_root, path)
    artifact_root = manifest.get("artifact_root")
    result["artifact_root"] = _rel(repo_root, os.path.dirname(path)) if artifact_root is None else artifact_root
    result["compat_path"] = manifest.get("compat_path")
    result["polled_at"] = polled_at
    result["heartbeat"] = state
    result["commands"] = [
        {key: entry.get(key) for key in _COMMAND_KEYS if key in entry or key not in _KEPT_ONLY_WHEN_PRESENT}
        for entry in _commands(manifest)
    ]
    return result


def _is_set(value: object) -> bool:
    return value is not _MISSING and value is not None and not (isinstance(value, (str, list, dict)) and not value)


def _show(value: object) -> str:
    if value is _MISSING:
        return "undefined"
    if isinstance(value, str):
        return value
    return dumps_compact(value)


def render_text(manifest: dict[str, object], state: dict[str, object]) -> str:
    """poll.render_text."""
    get = manifest.get
    lines = ["", f"Run {_show(get('run_id', _MISSING))} status: {_show(get('status', _MISSING))}"]
    if _is_set(get("status_detail")):
        lines.append(f"Status detail: {_show(get('status_detail'))}")
    if _is_set(get("summary")):
        lines.append(f"Summary: {_show(get('summary'))}")
    lines.append(f"Started: {_show(get('started_at', _MISSING))}")
    if _is_set(get("completed_at")):
        lines.append(f"Completed: {_show(get('completed_at'))}")
    age = state["age_seconds"]
    if age is not None:
        stale = " (STALE)" if state["stale"] else ""
        lines.append(f"Heartbeat age: {to_fixed_1(age)}s{stale}")  # type: ignore[arg-type]
    lines.append("Commands:")
    for entry in _commands(manifest):
        index, command, status = (_show(entry.get(k, _MISSING)) for k in ("index", "command", "status"))
        lines.append(f"  {index}. {command} -> {status}")
        for key, label in (("summary", "summary"), ("response_file", "response"), ("error_file", "error")):
            if _is_set(entry.get(key)):
                lines.append(f"     {label}: {_show(entry[key])}")
    return "\n".join(lines) + "\n"


def prepare(argv: list[str]) -> tuple[str, str | None, str, str]:
    """``(printed text, poll.json text or None, poll.json path, repo root)``; _Unusual
    when the full command must answer. Reads only: nothing is printed or written."""
    if len(argv) == 1:
        fmt = "text"
    elif len(argv) == 3 and argv[1] == "--format" and argv[2] in ("json", "text"):
        fmt = argv[2]
    else:
        raise _Unusual
    run_id = argv[0]
    if run_id in ("-h", "--help") or not _plain_run_id(run_id):
        raise _Unusual
    repo_root, runs_root = _locations(run_id)
    path = os.path.join(runs_root, run_id, MANIFEST_NAME)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise _Unusual
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            manifest = _loads(handle.read())
    except (OSError, ValueError) as exc:
        raise _Unusual from exc
    if not isinstance(manifest, dict):
        raise _Unusual
    status = manifest.get("status")
    if status is not None and not isinstance(status, str):
        raise _Unusual  # the full command's frozenset lookup decides what an unhashable status does
    at_ms = time.time_ns() // 1_000_000
    state = heartbeat_state(manifest, at_ms)
    if status not in TERMINAL_STATUSES and state["stale"] and manifest.get("status_detail") != STALE_DETAIL:
        raise _Unusual  # a stale mark to record, under the manifest lock
    target = os.path.join(os.path.dirname(os.path.realpath(path)), POLL_SNAPSHOT_NAME)
    if fmt == "json":
        text = dumps_pretty(snapshot(repo_root, manifest, path, state, iso_from_ms(at_ms)))
        return text, text, target, repo_root
    return render_text(manifest, state), None, target, repo_root


# --- output ------------------------------------------------------------------------


def _emit(text: str) -> None:
    """poll._emit: UTF-8 whatever the locale, a lone surrogate as U+FFFD."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text).encode("utf-8")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def atomic_write_text(path: str, text: str, mode: int = 0o644) -> None:
    """store.atomic_write_text: a temporary name of this writer's own, fsync, rename, fsync of the folder."""
    import _thread

    directory = os.path.dirname(path)
    name = os.path.basename(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{_thread.get_ident()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(text.encode("utf-8", "surrogateescape"))
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _error_line(message: str) -> None:
    sys.stderr.write(message.replace("\r", "\\r").replace("\n", "\\n") + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        printed, snapshot_text, target, repo_root = prepare(args)
    except _Unusual:
        from mcp_core.commands.poll import main as full_main

        return full_main(args)
    try:
        _emit(printed)
        if snapshot_text is not None:
            try:
                atomic_write_text(target, snapshot_text)
            except OSError as exc:
                reason = exc.strerror if exc.strerror else str(exc)
                _error_line(f"Warning: could not write {_rel(repo_root, target)}: {reason}")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
