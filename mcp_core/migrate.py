"""Migration of legacy runs into the task-scoped layout (docs/interface.md section 9).

A legacy run is a directory ``<legacy root>/<id>/`` with a ``manifest.json``.
Migrating it moves it to ``<runs root>/<id>/`` with one rename, after its
manifest has been read, checked and given the task-scoped keys, and leaves a
compatibility pointer at the old place.

Crash safety. The steps for one run are ordered so that a crash anywhere
leaves a state the next (real) pass finishes:

1. read and check the manifest; a bad one is an ``error`` and nothing changes;
2. write the manifest with its new keys in the old place (atomic replace);
   a crash here leaves a legacy run that simply migrates again;
3. rename the directory to its destination (atomic on one filesystem);
4. create the compatibility pointer in the old place.

Between 3 and 4 the run is no longer a candidate, so a rerun could not find
it. Hence a journal: before moving anything, a pass writes the ids it is about
to move to ``<legacy root>/.mcp-migrate-journal.json`` (a plain file, which
is never a candidate), and removes it once every step is done and synced. A
pass that finds a journal first completes each listed run whose destination
exists but whose pointer is missing or partial, re-applying the manifest keys
if they are not all there. Passes that move things hold a lock on the legacy
root, so two never interleave.

Across filesystems (the roots can be set apart) step 3 is a copy to a
temporary name, renamed into place, then the source's removal; a pass that
finds such a source still there (its manifest already names the new places)
removes it and makes the pointer.

A dry run makes every check but reading the manifest (a cheap listing, as the
contract orders the checks); the real pass reads it before moving anything.

Durability is batched: the per-file fsyncs of a real pass are deferred and one
sync makes everything durable before the log is written and the journal
removed (thousands of fsyncs would cost seconds; the order of the steps, not
per-file durability, is what the recovery relies on).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_core import pointers, run_record, store
from mcp_core.errors import RunnerError
from mcp_core.jsfmt import dumps_compact, dumps_pretty, iso_now, stamp
from mcp_core.jsonparse import JSON_PARSE, json_error_text, json_kind
from mcp_core.manifest import MANIFEST_NAME
from mcp_core.paths import Locations, validate_run_id

ERROR = "error"
SKIPPED = "skipped"
PLANNED = "planned"
MIGRATED = "migrated"
SKIPPED_MESSAGE = "Destination already exists; no action taken."
# What is printed (the log keeps SKIPPED_MESSAGE, docs/interface.md section 9) for a run
# the runner started or migrated earlier: its legacy directory is its pointer.
ALREADY_MIGRATED_MESSAGE = "Already migrated; its compatibility pointer stays. No action taken."
PLANNED_MESSAGE = "Would migrate directory."
MIGRATED_MESSAGE = "Migrated successfully."
NO_CANDIDATES = "No legacy MCP runs found to migrate."

JOURNAL_NAME = ".mcp-migrate-journal.json"
COMPAT_NAME = "compat.json"
MAX_MANIFEST_BYTES = 16 << 20
_COPY_SUFFIX = ".mcp-migrate-copy"


@dataclass(frozen=True)
class Outcome:
    run_id: str
    source: str
    destination: str
    status: str
    message: str
    already_migrated: bool = False  # skipped because its legacy directory is its compatibility pointer

    @property
    def printed_message(self) -> str:
        """The message people read; the log keeps ``message``."""
        return ALREADY_MIGRATED_MESSAGE if self.already_migrated else self.message

    def to_json(self) -> dict[str, str]:
        return {
            "run_id": self.run_id,
            "source": self.source,
            "destination": self.destination,
            "status": self.status,
            "message": self.message,
        }


class ManifestProblem(Exception):
    """Why a legacy manifest cannot be migrated (the message is the outcome's)."""


def legacy_run_ids(loc: Locations, only: str | None = None) -> list[str]:
    """The candidates: real directories directly under the legacy root, byte-wise
    sorted; symlinks and plain files are ignored. With ``only``, that one or none."""
    if only is not None:
        try:
            info = os.lstat(loc.legacy_root / only)
        except OSError:
            return []
        return [only] if stat.S_ISDIR(info.st_mode) else []
    try:
        with os.scandir(loc.legacy_root) as entries:
            names = [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    names.sort(key=os.fsencode)
    return names


@dataclass(frozen=True)
class _Roots:
    """The two roots as plain strings, absolute and as stored: a dry run over
    10,000 runs is mostly path handling, so it is done once, not per run."""

    legacy: str
    runs: str
    legacy_rel: str
    runs_rel: str

    @classmethod
    def of(cls, loc: Locations) -> _Roots:
        # "<rel>/" prefixes; a root that is the repo root itself gives "" (as Node's path.relative).
        legacy_rel, runs_rel = (loc.rel(root) for root in (loc.legacy_root, loc.runs_root))
        return cls(
            str(loc.legacy_root),
            str(loc.runs_root),
            "" if legacy_rel == "." else legacy_rel + "/",
            "" if runs_rel == "." else runs_rel + "/",
        )


def _reason(exc: OSError, syscall: str, loc: Locations, path: Path) -> str:
    """An OSError as Node worded it: ``ENOENT: no such file or directory, access '<path>'``."""
    code = errno.errorcode.get(exc.errno or 0, "EUNKNOWN")
    text = exc.strerror or str(exc)
    return f"{code}: {text[:1].lower()}{text[1:]}, {syscall} '{loc.rel(path)}'"


def check(loc: Locations, run_id: str, roots: _Roots | None = None) -> Outcome:
    """Every check before a move, in the contract's order, without reading content.

    Returns ``planned`` when the run may be moved (the caller then reads the
    manifest and moves it, unless this is a dry run).
    """
    roots = roots or _Roots.of(loc)

    def outcome(status: str, message: str, already_migrated: bool = False) -> Outcome:
        return Outcome(run_id, roots.legacy_rel + run_id, roots.runs_rel + run_id, status, message, already_migrated)

    try:
        validate_run_id(run_id)
    except RunnerError as exc:
        return outcome(ERROR, exc.message)
    manifest = f"{roots.legacy}/{run_id}/{MANIFEST_NAME}"
    destination = f"{roots.runs}/{run_id}"
    try:
        info = os.lstat(manifest)
        if stat.S_ISLNK(info.st_mode):
            os.stat(manifest)  # a dangling symlink (or a loop) counts as no manifest
    except OSError as exc:
        return outcome(ERROR, f"Manifest missing: {_reason(exc, 'access', loc, Path(manifest))}")
    if os.path.lexists(destination):
        return outcome(SKIPPED, SKIPPED_MESSAGE, _is_pointer_to(manifest, info, destination))
    if stat.S_ISLNK(info.st_mode):
        # A symlinked manifest is a compatibility pointer (here, one whose run is
        # not at the destination), or something hostile: never moved or written.
        target = os.readlink(manifest)
        if not pointers._inside(Path(manifest), pointers.allowed_roots(loc)):  # the rule poll follows
            return outcome(ERROR, f"Manifest is a symbolic link to a file outside .runs ({target}); nothing moved.")
        return outcome(ERROR, f"Manifest is a symbolic link ({target}), a compatibility pointer; nothing moved.")
    return outcome(PLANNED, PLANNED_MESSAGE)


def _is_pointer_to(manifest: str, info: os.stat_result, destination: str) -> bool:
    """Whether a legacy directory is the compatibility pointer of the run at
    ``destination``: its manifest a symlink to that run's manifest, or a stub
    (or a checked-out symlink) with the ``compat.json`` written beside it."""
    if stat.S_ISLNK(info.st_mode):
        return os.path.realpath(manifest) == os.path.realpath(os.path.join(destination, MANIFEST_NAME))
    return os.path.isfile(os.path.join(os.path.dirname(manifest), COMPAT_NAME))


def read_legacy_manifest(path: Path) -> dict[str, Any]:
    """The manifest as a JSON object, or ManifestProblem saying why not.

    Opened without following symlinks and without blocking (a FIFO is refused).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ManifestProblem(f"Manifest cannot be read ({exc.strerror or exc}); nothing moved.") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ManifestProblem("Manifest is not a regular file; nothing moved.")
        if info.st_size > MAX_MANIFEST_BYTES:
            raise ManifestProblem(f"Manifest is too large to be a run manifest ({info.st_size} bytes); nothing moved.")
        parts: list[bytes] = []
        while part := os.read(fd, max(info.st_size + 1, 1 << 16)):  # plain reads: no buffer object per run
            parts.append(part)
        raw = b"".join(parts)
    except OSError as exc:
        raise ManifestProblem(f"Manifest cannot be read ({exc.strerror or exc}); nothing moved.") from None
    finally:
        os.close(fd)
    text = raw.decode("utf-8", "replace")
    try:
        value = JSON_PARSE.decode(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise ManifestProblem(
            f"Manifest is not valid JSON ({json_error_text(exc)}); nothing moved."
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ManifestProblem(f"Manifest is not valid JSON ({exc or 'nested too deeply'}); nothing moved.") from None
    if not isinstance(value, dict):
        raise ManifestProblem(f"Manifest is not a JSON object (it holds {json_kind(value)}); nothing moved.")
    if value.get("redirect_to"):
        raise ManifestProblem("Manifest is a compatibility pointer stub (redirect_to); nothing moved.")
    return value


def migrated_manifest(manifest: dict[str, Any], loc: Locations, run_id: str, now: str) -> dict[str, Any]:
    """The manifest with the task-scoped keys: existing keys keep their place; the
    others are appended in the contract's order where missing or null;
    artifact_root and compat_path always name the new places; then updated_at."""
    result = dict(manifest)
    gained: tuple[tuple[str, Any], ...] = (
        ("task_id", loc.task_id),
        ("artifact_root", loc.rel(loc.runs_root / run_id)),
        ("compat_path", loc.rel(loc.legacy_root / run_id)),
        ("metrics_recorded", True),
        ("resume_token", None),
        ("resume_events", []),
    )
    for key, value in gained:
        if key in ("artifact_root", "compat_path") or result.get(key) is None:
            result[key] = value
    result["updated_at"] = now
    return result


def _has_migrated_keys(manifest: dict[str, Any], loc: Locations, run_id: str) -> bool:
    expected = migrated_manifest({}, loc, run_id, "")
    return all(
        manifest.get(key) == expected[key] if key in ("artifact_root", "compat_path") else key in manifest
        for key in ("task_id", "artifact_root", "compat_path", "metrics_recorded", "resume_token", "resume_events")
    )


def _move_directory(source: Path, destination: Path) -> None:
    """One rename; across filesystems, a copy under a temporary name renamed into
    place, then the source removed (a crash leaves the copy, never a partial run)."""
    try:
        try:
            os.rename(source, destination)
        except FileNotFoundError:
            if not os.path.isdir(source):
                raise
            destination.parent.mkdir(parents=True, exist_ok=True)  # the first run moved there
            os.rename(source, destination)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    destination.parent.mkdir(parents=True, exist_ok=True)
    import shutil  # ~5 ms to import: only for this rare case and recovery

    copy = destination.with_name(destination.name + _COPY_SUFFIX)
    if os.path.lexists(copy):
        shutil.rmtree(copy)
    shutil.copytree(source, copy, symlinks=True)
    os.rename(copy, destination)
    _remove_copied_source(source)


def _remove_copied_source(source: Path) -> None:
    """Remove a source already copied, its manifest last: as long as anything is
    left, the manifest is there to tell a later pass what the leftover is."""
    import shutil

    with os.scandir(source) as entries:
        others = [entry for entry in entries if entry.name != MANIFEST_NAME]
    for entry in others:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(source / MANIFEST_NAME)
    os.rmdir(source)


def move(loc: Locations, run_id: str, manifest: dict[str, Any], now: str, *, after_crash: bool = True) -> None:
    """Steps 2 to 4 for one checked run (raises OSError). ``after_crash``: an
    interrupted pass may have left temporary files in the directory; remove them."""
    source = loc.legacy_root / run_id
    if after_crash:
        _remove_write_debris(source)
    run_record.migrated(source / MANIFEST_NAME, migrated_manifest(manifest, loc, run_id, now))
    _move_directory(source, loc.runs_root / run_id)
    pointers.create_pointer(loc, run_id, now)


# What store.atomic_write_text leaves behind when killed mid-write (its temporary file).
_WRITE_DEBRIS = re.compile(r"^\.(?:manifest|compat)\.json\.\d+\.\d+\.[0-9a-f]+\.tmp$")


def _remove_write_debris(directory: Path) -> None:
    """Temporary files of an interrupted pass's writes (a pass holds the lock, and
    legacy runs are not live, so none of them is being written now)."""
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        debris = [entry.path for entry in entries if _WRITE_DEBRIS.match(entry.name) and entry.is_file()]
    for path in debris:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _pointer_state(loc: Locations, run_id: str) -> str:
    """What is at the old place of a moved run: ``absent``, a ``complete`` or
    ``partial`` compatibility pointer, the ``leftover`` of a move across
    filesystems that was copied but not yet removed, or ``other`` (a legacy run
    that is still there, or anything else: left alone)."""
    directory = loc.legacy_root / run_id
    try:
        names = {name for name in os.listdir(directory) if not _WRITE_DEBRIS.match(name)}
    except FileNotFoundError:
        return "absent"
    except OSError:
        return "other"
    link = directory / MANIFEST_NAME
    if not names <= {MANIFEST_NAME, COMPAT_NAME}:
        return "leftover" if _is_copied_source(loc, run_id) else "other"
    if MANIFEST_NAME in names and not link.is_symlink():
        try:
            stub = store.read_json(link)
        except (OSError, ValueError):
            return "partial"  # an interrupted stub write
        if not (isinstance(stub, dict) and stub.get("redirect_to")):
            return "leftover" if _is_copied_source(loc, run_id) else "other"
    if names != {MANIFEST_NAME, COMPAT_NAME}:
        return "partial"
    try:
        compat = store.read_json(directory / COMPAT_NAME)
    except (OSError, ValueError):
        return "partial"
    return "complete" if isinstance(compat, dict) else "partial"


def _is_copied_source(loc: Locations, run_id: str) -> bool:
    """A legacy directory whose manifest already names its new places, while the
    destination holds the run: a move across filesystems interrupted between
    the copy and the removal. (A rename leaves no such state.)"""
    expected = migrated_manifest({}, loc, run_id, "")
    try:
        manifest = store.read_json(loc.legacy_root / run_id / MANIFEST_NAME)
    except (OSError, ValueError):
        return False
    return (
        isinstance(manifest, dict)
        and manifest.get("artifact_root") == expected["artifact_root"]
        and manifest.get("compat_path") == expected["compat_path"]
    )


def recover(loc: Locations, now: str) -> list[str]:
    """Finish the runs an interrupted pass had begun to move; returns their ids.

    For each id of the journal whose destination holds the run: its manifest
    gets the migrated keys if it lacks any, and the pointer is made unless a
    complete one is there. A directory at the old place that is not (part of)
    a pointer is left alone, unless it is the source of an interrupted copy.
    """
    journal = loc.legacy_root / JOURNAL_NAME
    try:
        listed = store.read_json(journal).get("run_ids", [])
    except FileNotFoundError:
        return []
    except (OSError, ValueError, AttributeError):
        listed = []
    import shutil  # only after a crash
    finished: list[str] = []
    for run_id in listed if isinstance(listed, list) else []:
        if not isinstance(run_id, str):
            continue
        try:
            validate_run_id(run_id)
        except RunnerError:
            continue
        destination = loc.runs_root / run_id
        copy = destination.with_name(destination.name + _COPY_SUFFIX)
        if os.path.lexists(copy):
            shutil.rmtree(copy, ignore_errors=True)
        if destination.is_symlink() or not (destination / MANIFEST_NAME).is_file():
            continue  # not moved: the run is still a candidate, migrated as any other
        state = _pointer_state(loc, run_id)
        if state == "other":
            continue
        _remove_write_debris(destination)
        with contextlib.suppress(OSError, ValueError):
            manifest = store.read_json(destination / MANIFEST_NAME)
            if isinstance(manifest, dict) and not _has_migrated_keys(manifest, loc, run_id):
                run_record.migrated(destination / MANIFEST_NAME, migrated_manifest(manifest, loc, run_id, now))
        if state != "complete":
            if state == "leftover":
                _remove_copied_source(loc.legacy_root / run_id)
            elif state == "partial":
                shutil.rmtree(loc.legacy_root / run_id)
            pointers.create_pointer(loc, run_id, now)
            finished.append(run_id)
    with contextlib.suppress(FileNotFoundError):
        journal.unlink()
    return finished


def run(
    loc: Locations,
    run_ids: list[str],
    *,
    dry_run: bool,
    now: Callable[[], str] = iso_now,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    after_crash: bool = False,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[list[Outcome], bool]:
    """Check (and unless ``dry_run``, migrate) each run in order.

    Returns the outcomes, and whether every run that was moved was finished
    (False: keep the journal, the next pass finishes them).
    """
    roots = _Roots.of(loc)
    checked = [check(loc, run_id, roots) for run_id in run_ids]
    if dry_run:
        for done, outcome in enumerate(checked, start=1):
            on_outcome(outcome)
            on_progress(done, len(checked))
        return checked, True
    planned = [outcome.run_id for outcome in checked if outcome.status == PLANNED]
    if planned:
        # Durable before anything moves: it is how a rerun finds an interrupted move.
        store.write_json(loc.legacy_root / JOURNAL_NAME, {"generated_at": now(), "run_ids": planned})
    results: list[Outcome] = []
    finished = True
    with store.fsync_deferred():
        for outcome in checked:
            if outcome.status == PLANNED:
                outcome, done = _migrate_checked(loc, outcome, now(), after_crash)
                finished = finished and done
            results.append(outcome)
            on_outcome(outcome)
            on_progress(len(results), len(checked))
    if any(outcome.status == MIGRATED for outcome in results) or not finished:
        os.sync()  # the batch's one fsync: everything above is durable from here
    return results, finished


def _migrate_checked(loc: Locations, outcome: Outcome, now: str, after_crash: bool) -> tuple[Outcome, bool]:
    """The outcome of one checked run, and False when it was moved but not finished."""

    def become(status: str, message: str) -> Outcome:
        return Outcome(outcome.run_id, outcome.source, outcome.destination, status, message)

    try:
        manifest = read_legacy_manifest(loc.legacy_root / outcome.run_id / MANIFEST_NAME)
    except ManifestProblem as exc:
        return become(ERROR, str(exc)), True
    try:
        move(loc, outcome.run_id, manifest, now, after_crash=after_crash)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if os.path.lexists(loc.runs_root / outcome.run_id) and _pointer_state(loc, outcome.run_id) != "other":
            return become(ERROR, f"Moved, but not finished ({reason}); the next migration finishes it."), False
        return become(ERROR, f"Migration failed ({reason}); the directory was not moved."), True
    return become(MIGRATED, MIGRATED_MESSAGE), True


@contextlib.contextmanager
def exclusive(loc: Locations) -> Iterator[None]:
    """The lock a moving pass holds on the legacy root."""
    with store.locked_dir(loc.legacy_root):
        yield


def write_log(loc: Locations, outcomes: list[Outcome], *, dry_run: bool) -> Path:
    generated_at = iso_now()
    loc.migrations_dir.mkdir(parents=True, exist_ok=True)
    path = loc.migrations_dir / f"{stamp(iso_now())}-{'dry-run' if dry_run else 'migration'}.log"
    header = {
        "generated_at": generated_at,
        "dry_run": dry_run,
        "repo_root": str(loc.repo_root),
        "legacy_root": loc.rel(loc.legacy_root),
        "task_runs_root": loc.rel(loc.runs_root),
        "runs": [],
    }
    store.atomic_write_text(path, log_text(header, outcomes))
    return path


def _json_string(value: str) -> str:
    # encode_basestring (C) escapes exactly as JSON.stringify for ASCII text;
    # anything else goes through jsfmt (lone surrogates from odd file names).
    return _encode_ascii(value) if value.isascii() else dumps_compact(value)


_encode_ascii: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def log_text(header: dict[str, Any], outcomes: list[Outcome]) -> str:
    """``dumps_pretty(header with runs)``, byte for byte, built without the generic
    encoder: a 10,000-run log is most of a dry run's time otherwise."""
    text = dumps_pretty(header)
    if not outcomes:
        return text
    suffix = "[]\n}\n"
    assert text.endswith(suffix)
    fixed: dict[str, str] = {}

    def constant(value: str) -> str:
        if value not in fixed:
            fixed[value] = _json_string(value)
        return fixed[value]

    entries = ",\n".join(
        "    {\n"
        f'      "run_id": {_json_string(o.run_id)},\n'
        f'      "source": {_json_string(o.source)},\n'
        f'      "destination": {_json_string(o.destination)},\n'
        f'      "status": {constant(o.status)},\n'
        f'      "message": {constant(o.message)}\n'
        "    }"
        for o in outcomes
    )
    return text[: -len(suffix)] + "[\n" + entries + "\n  ]\n}\n"


def migrate(
    loc: Locations,
    *,
    dry_run: bool,
    only: str | None = None,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[list[Outcome], Path | None]:
    """A whole pass: the outcomes in order and the log written (None: no candidates).

    A dry run only reads. A real pass holds the legacy root's lock, first
    finishes what an interrupted pass left, and removes its journal only once
    everything it did is synced and logged.
    """
    if dry_run:
        run_ids = legacy_run_ids(loc, only)
        if not run_ids:
            return [], None
        outcomes, _finished = run(loc, run_ids, dry_run=True, on_outcome=on_outcome, on_progress=on_progress)
        return outcomes, write_log(loc, outcomes, dry_run=True)
    if not loc.legacy_root.is_dir():
        return [], None
    with exclusive(loc):
        after_crash = (loc.legacy_root / JOURNAL_NAME).exists()
        recover(loc, iso_now())
        run_ids = legacy_run_ids(loc, only)
        if not run_ids:
            return [], None
        outcomes, finished = run(
            loc, run_ids, dry_run=False, on_outcome=on_outcome, after_crash=after_crash, on_progress=on_progress
        )
        log = write_log(loc, outcomes, dry_run=False)
        if finished:
            with contextlib.suppress(FileNotFoundError):
                (loc.legacy_root / JOURNAL_NAME).unlink()
    return outcomes, log
