"""A new run: its record created whole or not at all, then its worker launched (docs/interface.md section 4).

Used by start and by diagnostics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcp_core import manifest, pointers, run_record, tokens
from mcp_core.errors import RunnerError
from mcp_core.faults import fault_point
from mcp_core.jsfmt import iso_now, stamp
from mcp_core.launch import launch_worker
from mcp_core.paths import Locations
from mcp_core.run_record import Launched


def _missing_ancestors(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            break
        missing.append(candidate)
    return missing


class _Creation:
    """What start has made so far, so that a failure can take it all back."""

    def __init__(self, loc: Locations, run_id: str) -> None:
        self.loc = loc
        self.run_id = run_id
        self.made_dirs: list[Path] = []
        self.pointer_made = False

    def make_dir(self, path: Path) -> None:
        missing = _missing_ancestors(path)
        try:
            path.mkdir(parents=True)
        finally:  # also the ancestors made before a failure
            self.made_dirs.extend(p for p in missing if p.is_dir())

    def undo(self) -> None:
        if self.pointer_made:
            pointers.remove_pointer(self.loc, self.run_id)
        run_dir = self.loc.run_dir(self.run_id)
        if run_dir in self.made_dirs:  # never remove a directory start did not make
            import shutil  # ~8 ms to import: only a failed start needs it

            shutil.rmtree(run_dir, ignore_errors=True)
        for directory in sorted(self.made_dirs, key=lambda p: len(p.parts), reverse=True):
            try:
                directory.rmdir()
            except OSError:
                pass


def _step_error(run_id: str, what: str, path: Path, loc: Locations, exc: OSError) -> RunnerError:
    reason = exc.strerror or str(exc)
    return RunnerError(f"Failed to start run {run_id}: cannot write {what} {loc.rel(path)}: {reason}.")


def create_run(
    loc: Locations, commands: list[str], approval_policy: str, timeout: int | float
) -> tuple[str, Path, _Creation]:
    """Write run dir, manifest (queued), .resume-token, .heartbeat and pointer, in that
    order, or nothing at all. Returns the run id, the manifest path and what was made."""
    if os.path.realpath(loc.legacy_root) == os.path.realpath(loc.runs_root):
        # The pointer would replace the manifest it points to.
        raise RunnerError("The legacy root and the runs root must differ (MCP_RUNNER_LEGACY_ROOT).")
    run_id = f"{stamp(iso_now())}-{os.getpid()}"
    now = iso_now()  # the contract wants a clock read of its own for started_at
    run_dir = loc.run_dir(run_id)
    manifest_path = run_dir / manifest.MANIFEST_NAME
    created = _Creation(loc, run_id)
    step = ("the run directory", run_dir)
    try:
        created.make_dir(run_dir)
        step = ("the manifest", manifest_path)
        record = manifest.new_manifest(
            loc,
            run_id,
            commands,
            approval_policy=approval_policy,
            timeout_seconds=timeout,
            now=now,
            resume_token=tokens.new_token(),
        )
        run_record.created(manifest_path, record)
        step = ("the resume token", tokens.token_path(run_dir))
        tokens.write_token_file(run_dir, record["resume_token"])
        step = ("the heartbeat", run_dir / manifest.HEARTBEAT_FILE)
        run_record.write_heartbeat_file(run_dir, now)
        step = ("the compatibility pointer", loc.pointer_dir(run_id))
        pointer_dir = loc.pointer_dir(run_id)
        if not pointer_dir.is_dir():
            created.make_dir(pointer_dir)
        created.pointer_made = True
        pointers.create_pointer(loc, run_id, iso_now())
    except OSError as exc:
        created.undo()
        raise _step_error(run_id, step[0], step[1], loc, exc) from exc
    except BaseException:
        created.undo()
        raise
    return run_id, manifest_path, created


def launch_and_record(loc: Locations, manifest_path: Path, env: Mapping[str, str] | None) -> Launched:
    """Launch the worker and record it (``run_record.launched``: under the lock,
    only for a run still queued, so a cancel that came first is never undone)."""
    launched = run_record.launched(manifest_path, lambda: launch_worker(loc, manifest_path.parent, env))
    if launched is None:
        raise RunnerError(f"Run {manifest_path.parent.name} ended before its worker was launched.")
    return launched


def start_run(
    loc: Locations,
    commands: list[str],
    approval_policy: str,
    timeout: int | float,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create and launch a run; returns the printed fields (run_id ... runner_pid)."""
    run_id, manifest_path, created = create_run(loc, commands, approval_policy, timeout)
    fault_point("run-created")  # tests: a cancel before the worker is launched
    try:
        launched = launch_and_record(loc, manifest_path, env)
    except (OSError, ValueError) as exc:
        created.undo()
        raise RunnerError(f"Failed to launch the worker of run {run_id}: {exc}") from exc
    return {
        "run_id": run_id,
        "artifact_root": loc.rel(manifest_path.parent),
        "compat_path": loc.rel(loc.pointer_dir(run_id)),
        "manifest": loc.rel(manifest_path),
        "runner_pid": launched.pid,
    }
