"""Retention: remove old runs that have ended, with an audit log.

Safety first, since this is the one command that deletes: a run is removed
only when it is terminal (re-checked under the run's lock right before the
delete), its recorded worker is not alive, its directory is a real directory
directly under the runs root (symlinks are never followed), and it holds none
of the task's other files. ``metrics.json`` is never touched: the metrics of a
pruned run stay. The run's compatibility pointer goes too, but only when it
points at this very run.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp_core import pointers, store
from mcp_core.errors import RunnerError
from mcp_core.jsfmt import iso_from_ms, parse_timestamp_ms, stamp
from mcp_core.manifest import MANIFEST_NAME, TERMINAL_STATUSES
from mcp_core.paths import Locations
from mcp_core.process import is_alive
from mcp_core.runs_index import RunRecord, read_manifest, read_runs

DAY_MS = 86_400_000
REMOVED, WOULD_REMOVE, KEPT, ERROR = "removed", "would-remove", "kept", "error"
POINTER_FILES = frozenset({MANIFEST_NAME, "compat.json"})


@dataclass(frozen=True)
class Policy:
    keep: int | None  # keep the N newest runs
    older_than_days: float | None  # remove only runs that ended longer ago than this

    def __post_init__(self) -> None:
        if self.keep is None and self.older_than_days is None:
            raise RunnerError("Prune needs --keep N or --older-than DAYS; nothing was pruned.")
        if self.keep is not None and (isinstance(self.keep, bool) or self.keep < 0):
            raise RunnerError("--keep requires a numeric value")
        days = self.older_than_days
        if days is not None and not (days >= 0 and days != float("inf")):  # also rejects NaN
            raise RunnerError("--older-than requires a numeric value")


@dataclass(frozen=True)
class Outcome:
    run_id: str
    path: str  # relative to the repo root
    status: str | None
    action: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "path": self.path,
            "status": self.status,
            "action": self.action,
            "reason": self.reason,
        }


class Refusal(Exception):
    """A run that looked removable but must stay (the message says why)."""


def prune_log_dir(loc: Locations) -> Path:
    # Task-scoped under the repo root, beside the migration logs.
    return loc.repo_root / ".runs" / loc.task_id / "prunes"


def _age_reference(record: RunRecord) -> tuple[float | None, str]:
    """When the run ended (``completed_at``), else when it started, and which of the two."""
    ended = parse_timestamp_ms(record.manifest.get("completed_at"))
    return (ended, "ended") if ended is not None else (record.started_ms, "started")


def _days(value: float) -> str:
    return f"{value:g}"


def _selection(policy: Policy, position: int, record: RunRecord, now_ms: float) -> tuple[bool, str]:
    """Whether the policy selects the run at ``position`` (0 = newest), and why (not)."""
    reasons = []
    if policy.keep is not None:
        if position < policy.keep:
            return False, f"among the {policy.keep} newest runs"
        reasons.append(f"beyond the {policy.keep} newest runs")
    if policy.older_than_days is not None:
        moment, what = _age_reference(record)
        if moment is None:
            return False, "age unknown (no parsable completed_at or started_at)"
        age_days = (now_ms - moment) / DAY_MS
        if age_days <= policy.older_than_days:
            return False, f"{what} {age_days:.1f} days ago, not more than {_days(policy.older_than_days)}"
        reasons.append(f"{what} {age_days:.1f} days ago")
    return True, "; ".join(reasons)


def _blocker(manifest: dict[str, Any]) -> str | None:
    """Why a selected run must stay, judging by its manifest, or None."""
    status = manifest.get("status")
    if status not in TERMINAL_STATUSES:
        return f"not terminal (status {status if isinstance(status, str) else 'unknown'})"
    pid = manifest.get("runner_pid")
    if is_alive(pid, manifest.get("runner_start_ticks")):
        return f"its worker is still alive (pid {pid})"
    return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _check_location(loc: Locations, run_dir: Path) -> None:
    """Raise Refusal unless ``run_dir`` is a real directory directly in the runs root."""
    try:
        info = os.lstat(run_dir)
    except OSError as exc:
        raise Refusal(f"cannot inspect the run directory: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(info.st_mode):
        raise Refusal("the run directory is a symlink; not followed")
    if not stat.S_ISDIR(info.st_mode):
        raise Refusal("not a directory")
    real_root = os.path.realpath(loc.runs_root)
    real_run = os.path.realpath(run_dir)
    if os.path.dirname(real_run) != real_root or real_run == real_root:
        raise Refusal("outside the runs root; refused")
    protected = [loc.repo_root, loc.metrics_root, loc.legacy_root, loc.runs_root, prune_log_dir(loc)]
    for path in protected:
        if _inside(os.path.realpath(path), real_run):
            raise Refusal(f"holds {loc.rel(path)}; refused")


def _stub_target(loc: Locations, pointer_dir: Path, link: Path) -> str | None:
    """The manifest a stub or flattened-symlink pointer names (a real path), or None."""
    try:
        text = link.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        candidate = text.strip()  # a symlink checked out as a text file holding its target
        if candidate and "\n" not in candidate:
            return os.path.realpath(pointer_dir / candidate)
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("manifest"), str) and data["manifest"]:
        return os.path.realpath(loc.repo_root / data["manifest"])
    if isinstance(data.get("redirect_to"), str) and data["redirect_to"]:
        return os.path.realpath(loc.repo_root / data["redirect_to"] / MANIFEST_NAME)
    return None


def pointer_of_run(loc: Locations, run_id: str, run_dir: Path) -> tuple[bool, str]:
    """Whether ``<legacy root>/<id>`` is this run's compatibility pointer (and may go), and a note."""
    pointer_dir = loc.pointer_dir(run_id)
    shown = loc.rel(pointer_dir)
    try:
        info = os.lstat(pointer_dir)
    except FileNotFoundError:
        return False, ""
    except OSError as exc:
        return False, f"pointer {shown} not inspected ({exc.strerror or exc})"
    if not stat.S_ISDIR(info.st_mode):
        return False, f"pointer {shown} left: not a plain directory"
    try:
        names = set(os.listdir(pointer_dir))
    except OSError as exc:
        return False, f"pointer {shown} not inspected ({exc.strerror or exc})"
    if not names <= POINTER_FILES:
        return False, f"pointer {shown} left: it holds other files"
    manifest_real = os.path.realpath(run_dir / MANIFEST_NAME)
    link = pointer_dir / MANIFEST_NAME
    target: str | None = None
    if link.is_symlink():
        target = os.path.realpath(link)
    elif link.is_file():
        target = _stub_target(loc, pointer_dir, link)
    elif (pointer_dir / "compat.json").is_file():
        target = _stub_target(loc, pointer_dir, pointer_dir / "compat.json")
    if target == manifest_real:
        return True, shown
    return False, f"pointer {shown} left: it does not point at this run"


def _remove(loc: Locations, record: RunRecord) -> str:
    """Delete one run (and its pointer); returns a note about the pointer. Raises Refusal or OSError."""
    run_dir = record.run_dir
    _check_location(loc, run_dir)
    with store.locked_dir(run_dir):
        # Re-read under the run's lock: a resume or a late worker save may have changed it.
        manifest = read_manifest(run_dir)
        if isinstance(manifest, str):
            raise Refusal(f"manifest unreadable on re-check: {manifest}")
        blocker = _blocker(manifest)
        if blocker:
            raise Refusal(blocker)
        pointer_ok, pointer_note = pointer_of_run(loc, record.run_id, run_dir)
        # Out of sight first (a hidden name readers skip), then deleted at leisure.
        trash = loc.runs_root / f".pruning-{record.run_id}-{os.getpid()}"
        os.rename(run_dir, trash)
    shutil.rmtree(trash)
    if pointer_ok:
        pointers.remove_pointer(loc, record.run_id)
        return f"pointer {pointer_note} removed"
    return pointer_note


def prune(loc: Locations, policy: Policy, *, dry_run: bool, now_ms: float) -> list[Outcome]:
    """Decide about (and, unless ``dry_run``, remove) every run of the task, newest first."""
    index = read_runs(loc.runs_root)
    outcomes: list[Outcome] = []
    for position, record in enumerate(index.runs):
        path = loc.rel(record.run_dir)
        selected, why = _selection(policy, position, record, now_ms)
        if not selected:
            outcomes.append(Outcome(record.run_id, path, record.status, KEPT, why))
            continue
        blocker = _blocker(record.manifest)
        if blocker:
            outcomes.append(Outcome(record.run_id, path, record.status, KEPT, f"{why}, but {blocker}"))
            continue
        if dry_run:
            try:
                _check_location(loc, record.run_dir)
            except Refusal as refusal:
                outcomes.append(Outcome(record.run_id, path, record.status, KEPT, f"{why}, but {refusal}"))
                continue
            pointer_ok, note = pointer_of_run(loc, record.run_id, record.run_dir)
            if pointer_ok:
                note = f"pointer {note} would be removed"
            reason = "; ".join(filter(None, [why, note]))
            outcomes.append(Outcome(record.run_id, path, record.status, WOULD_REMOVE, reason))
            continue
        try:
            note = _remove(loc, record)
        except Refusal as refusal:
            outcomes.append(Outcome(record.run_id, path, record.status, KEPT, f"{why}, but {refusal}"))
            continue
        except OSError as exc:
            reason = f"removal failed: {exc.strerror or exc}"
            outcomes.append(Outcome(record.run_id, path, record.status, ERROR, reason))
            continue
        outcomes.append(Outcome(record.run_id, path, record.status, REMOVED, "; ".join(filter(None, [why, note]))))
    for item in index.unreadable:
        outcomes.append(
            Outcome(item.run_id, loc.rel(item.manifest_path.parent), None, KEPT, f"manifest unusable: {item.reason}")
        )
    return outcomes


def _number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def write_log(loc: Locations, policy: Policy, outcomes: list[Outcome], *, dry_run: bool, now_ms: float) -> Path:
    generated_at = iso_from_ms(int(now_ms))
    directory = prune_log_dir(loc)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp(generated_at)}-{'dry-run' if dry_run else 'prune'}.log"
    if path.exists():  # two prunes in one millisecond: keep both logs
        path = path.with_name(f"{path.stem}-{os.getpid()}.log")
    store.write_json(
        path,
        {
            "generated_at": generated_at,
            "dry_run": dry_run,
            "repo_root": str(loc.repo_root),
            "task_runs_root": loc.rel(loc.runs_root),
            "keep": policy.keep,
            "older_than_days": _number(policy.older_than_days),
            "runs": [outcome.as_json() for outcome in outcomes],
        },
    )
    return path
