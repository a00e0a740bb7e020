"""poll: show a run's status, heartbeat and commands (docs/interface.md section 6).

Callers poll in loops, so its start-up is most of its cost: this module and
every module it imports load only C modules and each other at the top (no
pathlib, re, json, typing, dataclasses, decimal, docopt or MCP SDK; check with
``python -X importtime -m mcp_core.commands.poll <id>``). What the rarer paths
need (a stale mark, odd timestamps, the text view's escaping, a live run's
latest event) is imported where it is used. BENCHMARKS.md has the figures.
"""

from __future__ import annotations

import os
import sys
import time

from mcp_core import manifest as manifest_mod
from mcp_core import store
from mcp_core.argscan import Messages, scan
from mcp_core.errors import RunnerError, UsageError
from mcp_core.heartbeat import heartbeat_state, to_fixed_1
from mcp_core.jsfmt import dumps_compact, dumps_pretty, iso_from_ms, now_ms, replace_lone_surrogates
from mcp_core.output import error_line, run_cli
from mcp_core.paths import find_roots, relative_to_root, validate_run_id
from mcp_core.pointers import find_manifest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

USAGE = """\
Usage: scripts/mcp-runner-poll.sh <run-id> [--watch] [--interval N] [--format text|json]

Show the status of a run: its status, heartbeat age and each command's outcome.
A run that is not finished and whose heartbeat is stale is marked
status_detail "stale-heartbeat". The exit status is 0 whatever the run's outcome.

Options:
  --watch          Poll again every --interval seconds until the run has ended
                   (the last block as soon as it ends), or until its worker is
                   known dead or its heartbeat is stale (then how to resume it).
  --interval N     Seconds between polls with --watch (default 10).
  --format FORMAT  text (default) or json; json also writes poll.json into the run directory.
  -h --help        Show this help.
"""

USAGE_LINE = USAGE.splitlines()[0]
FORMATS = ("text", "json")
DEFAULT_INTERVAL_SECONDS = 10.0
STALE_DETAIL = "stale-heartbeat"
POLL_SNAPSHOT_NAME = "poll.json"

_MESSAGES = Messages(unknown=lambda arg: f"Unknown option for poll: {arg}")


class PollOptions:  # a plain class: importing dataclasses costs ~15-20 ms
    __slots__ = ("run_id", "watch", "interval", "format")

    def __init__(
        self, run_id: str, watch: bool = False, interval: float = DEFAULT_INTERVAL_SECONDS, format: str = "text"
    ) -> None:
        self.run_id = run_id
        self.watch = watch
        self.interval = interval
        self.format = format


class Roots:
    """The roots poll reads, as strings (``paths.find_roots``): no pathlib on poll's way."""

    __slots__ = ("repo_root", "runs_root", "legacy_root")

    def __init__(self) -> None:
        self.repo_root, _, self.runs_root, self.legacy_root, _ = find_roots()

    def rel(self, path: str) -> str:
        return relative_to_root(self.repo_root, path)


def parse_args(argv: list[str]) -> PollOptions | None:
    """The options, or None when help was asked for. Raises UsageError/RunnerError.

    The first argument is always the run id (so ``poll --watch`` asks for a run
    named ``--watch``), except ``-h``/``--help``, which prints the help.
    """
    if not argv:
        raise UsageError(USAGE_LINE, exit_code=2)
    run_id, rest = argv[0], argv[1:]
    if run_id in ("-h", "--help"):
        return None
    validate_run_id(run_id)
    parsed = scan(rest, USAGE, _MESSAGES, numeric=["--interval"])
    if parsed.help:
        return None
    # Checked once the scan is through, as the old runner did: a bad flag
    # anywhere on the line is reported before an unsupported format.
    fmt = parsed.text("--format", "text") or "text"
    if fmt not in FORMATS:
        raise UsageError(f'Unsupported format: {fmt}. Expected "text" or "json".')
    interval_text = parsed.text("--interval")
    return PollOptions(
        run_id=run_id,
        watch=parsed.flag("--watch"),
        interval=float(interval_text) if interval_text is not None else DEFAULT_INTERVAL_SECONDS,
        format=fmt,
    )


# --- reading and marking -------------------------------------------------------


def read_manifest(loc: Roots, run_id: str) -> tuple[str, dict[str, Any]]:
    """The path poll reads for ``run_id`` and its content (an object). Raises RunnerError."""
    path = find_manifest(loc.repo_root, loc.runs_root, loc.legacy_root, run_id)
    if path is None:
        raise RunnerError(f"Manifest for run {run_id} not found.")
    try:
        data = store.read_json(path)
    except FileNotFoundError:
        raise RunnerError(f"Manifest for run {run_id} not found.") from None
    except OSError as exc:
        raise RunnerError(f"Manifest for run {run_id} could not be read: {loc.rel(path)}: {exc.strerror}") from None
    except ValueError:
        raise RunnerError(f"Manifest for run {run_id} is not valid JSON: {loc.rel(path)}") from None
    if not isinstance(data, dict):
        raise RunnerError(f"Manifest for run {run_id} is not a JSON object: {loc.rel(path)}")
    return path, data


def needs_stale_mark(manifest: dict[str, Any], at_ms: int) -> bool:
    return (
        not manifest_mod.is_terminal(manifest)
        and heartbeat_state(manifest, at_ms)["stale"]
        and manifest.get("status_detail") != STALE_DETAIL
    )


def mark_stale(path: str, at_ms: int) -> dict[str, Any] | None:
    """Set ``status_detail: stale-heartbeat`` under the manifest lock; returns what
    is on disk, or None when the lock is busy: a reader never waits for it.

    The conditions are checked again on the manifest read under the lock: a
    worker that finished or beat since poll's first read must not be undone.
    Raises OSError/ValueError when the manifest cannot be rewritten.
    """
    from pathlib import Path

    from mcp_core import run_record

    return run_record.marked_stale(Path(path), lambda fresh: needs_stale_mark(fresh, at_ms))


# --- rendering -----------------------------------------------------------------

_MISSING: Any = object()


def _is_set(value: Any) -> bool:
    """"When set" in the contract: present and non-empty."""
    return value is not _MISSING and value is not None and not (isinstance(value, (str, list, dict)) and not value)


def _commands(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    commands = manifest.get("commands")
    if not isinstance(commands, list):
        return []
    return [entry for entry in commands if isinstance(entry, dict)]


def render_text(manifest: dict[str, Any], state: dict[str, Any]) -> str:
    from mcp_core.termtext import cut, printable  # the text view only: JSON output escapes what it must

    def show(value: Any) -> str:
        """A value in a text line; missing and null print as the old runner printed them.

        Text from the run is shown terminal-safe (``termtext``) and cut when longer
        than a view shows; ordinary values pass unchanged.
        """
        if value is _MISSING:
            return "undefined"
        text = value if isinstance(value, str) else dumps_compact(value)  # null, true, 12, 1e-7, JSON
        return printable(cut(text), multiline=True)

    get = manifest.get
    lines = ["", f"Run {show(get('run_id', _MISSING))} status: {show(get('status', _MISSING))}"]
    if _is_set(get("status_detail")):
        lines.append(f"Status detail: {show(get('status_detail'))}")
    if _is_set(get("summary")):
        lines.append(f"Summary: {show(get('summary'))}")
    lines.append(f"Started: {show(get('started_at', _MISSING))}")
    if _is_set(get("completed_at")):
        lines.append(f"Completed: {show(get('completed_at'))}")
    if state["age_seconds"] is not None:
        stale = " (STALE)" if state["stale"] else ""
        lines.append(f"Heartbeat age: {to_fixed_1(state['age_seconds'])}s{stale}")
    lines.append("Commands:")
    for entry in _commands(manifest):
        fields = (entry.get(k, _MISSING) for k in ("index", "command", "status"))
        index, command, status = (show(v) for v in fields)
        lines.append(f"  {index}. {command} -> {status}")
        for key, label in (("summary", "summary"), ("response_file", "response"), ("error_file", "error")):
            if _is_set(entry.get(key)):
                lines.append(f"     {label}: {show(entry[key])}")
    return "\n".join(lines) + "\n"


_COMMAND_KEYS = ("index", "command", "status", "summary", "exit_code", "started_at", "completed_at",
                 "response_file", "error_file")
_KEPT_ONLY_WHEN_PRESENT = ("index", "command", "status")


def snapshot(
    loc: Roots, manifest: dict[str, Any], path: str, run_dir: str, state: dict[str, Any], polled_at: str
) -> dict[str, Any]:
    """The JSON object of ``--format json`` (and of poll.json), keys in contract order;
    ``path`` is the manifest as found, ``run_dir`` the real directory it lives in."""
    result: dict[str, Any] = {}
    for key in ("run_id", "status"):
        if key in manifest:
            result[key] = manifest[key]
    result["status_detail"] = manifest.get("status_detail")
    result["started_at"] = manifest.get("started_at")
    result["completed_at"] = manifest.get("completed_at")
    result["manifest"] = loc.rel(path)
    artifact_root = manifest.get("artifact_root")
    result["artifact_root"] = loc.rel(os.path.dirname(path)) if artifact_root is None else artifact_root
    result["compat_path"] = manifest.get("compat_path")
    result["polled_at"] = polled_at
    result["heartbeat"] = state
    commands = []
    for entry in _commands(manifest):
        commands.append(
            {
                key: entry.get(key)
                for key in _COMMAND_KEYS
                if key in entry or key not in _KEPT_ONLY_WHEN_PRESENT
            }
        )
    result["commands"] = commands
    if not manifest_mod.is_terminal(manifest):  # a finished run has no latest event: no codex_events to load
        from mcp_core.codex_events import running_command_event

        latest_event = running_command_event(manifest, run_dir, store.loads)
        if latest_event is not None:  # New (issue 12): what Codex is doing, while a command runs
            result["latest_event"] = latest_event
    return result


def _emit(text: str) -> None:
    # UTF-8 whatever the locale; a lone surrogate prints as U+FFFD, as Node prints it.
    sys.stdout.buffer.write(replace_lone_surrogates(text, _replacement_character).encode("utf-8"))
    sys.stdout.flush()


def _replacement_character(_: str) -> str:
    return "\ufffd"


# --- the command ---------------------------------------------------------------


def poll_once(loc: Roots, options: PollOptions, warn: Callable[[str], None]) -> dict[str, Any]:
    """Read, mark stale when due, print one block; returns the manifest as shown."""
    path, manifest = read_manifest(loc, options.run_id)
    real = os.path.realpath(path)  # a pointer's target, which find_manifest keeps inside the run roots
    at_ms = now_ms()
    if needs_stale_mark(manifest, at_ms):
        try:
            marked = mark_stale(real, at_ms)
        except (OSError, ValueError) as exc:
            warn(f"Warning: could not mark run {options.run_id} stale in {loc.rel(path)}: {_reason(exc)}")
            marked = None
        if marked is None:
            manifest["status_detail"] = STALE_DETAIL  # what poll found, even if it could not record it
        else:
            manifest = marked
    state = heartbeat_state(manifest, at_ms)
    if options.format == "json":
        run_dir = os.path.dirname(real)
        text = dumps_pretty(snapshot(loc, manifest, path, run_dir, state, iso_from_ms(at_ms)))
        _emit(text)
        target = os.path.join(run_dir, POLL_SNAPSHOT_NAME)
        try:
            store.atomic_write_text(target, text, durable=False)  # a snapshot, rewritten by every poll
        except OSError as exc:
            warn(f"Warning: could not write {loc.rel(target)}: {_reason(exc)}")
    else:
        _emit(render_text(manifest, state))
    return manifest


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def poll(
    loc: Roots,
    options: PollOptions,
    *,
    sleep: Callable[[float], None] = time.sleep,
    warn: Callable[[str], None] = error_line,
) -> int:
    if not options.watch:
        poll_once(loc, options, warn)
        return 0
    from pathlib import Path

    from mcp_core import watch  # only a watch needs it

    def show() -> dict[str, Any]:
        return poll_once(loc, options, warn)

    ending = watch.watch(show, lambda: Path(read_manifest(loc, options.run_id)[0]), options.interval, sleep=sleep)
    if ending.dead:
        error_line(watch.resume_hint(options.run_id, ending.record))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv

    def body() -> int:
        options = parse_args(args)
        if options is None:
            sys.stdout.write(USAGE)
            sys.stdout.flush()
            return 0
        return poll(Roots(), options)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
