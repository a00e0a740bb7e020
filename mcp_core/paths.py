"""Where things live: repo root, task id, run roots, run ids, relative paths, slugs."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from mcp_core.errors import RunnerError

DEFAULT_TASK_ID = "0001"
_PACKAGE_CHECKOUT = Path(__file__).resolve().parent.parent
_RUN_ID_MAX = 200


# A NamedTuple, not a frozen dataclass: importing dataclasses costs ~15-20 ms here
# (it loads inspect and ast), a tenth of start's budget (BENCHMARKS.md).
class Locations(NamedTuple):
    repo_root: Path
    task_id: str
    runs_root: Path
    legacy_root: Path
    metrics_root: Path

    @property
    def migrations_dir(self) -> Path:
        # Always task-scoped under the repo root, whatever the other roots say.
        return self.repo_root / ".runs" / self.task_id / "migrations"

    @property
    def metrics_file(self) -> Path:
        return self.metrics_root / "metrics.json"

    @property
    def metrics_summary_file(self) -> Path:
        return self.metrics_root / "metrics-summary.json"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_root / validate_run_id(run_id)

    def pointer_dir(self, run_id: str) -> Path:
        return self.legacy_root / validate_run_id(run_id)

    def rel(self, path: Path | str) -> str:
        return relative_to_root(self.repo_root, path)


def _from_env(env: dict[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value else None


def locate(env: dict[str, str] | None = None, cwd: Path | None = None) -> Locations:
    """Resolve every root from the environment (CONTRACT section 2)."""
    env = dict(os.environ) if env is None else env
    cwd = Path.cwd() if cwd is None else cwd

    def resolve(value: str) -> Path:
        return Path(os.path.abspath(cwd / value))

    root_value = _from_env(env, "MCP_RUNNER_REPO_ROOT")
    repo_root = resolve(root_value) if root_value else default_repo_root(env, cwd)
    task_id = _from_env(env, "MCP_RUNNER_TASK_ID") or DEFAULT_TASK_ID
    runs_value = _from_env(env, "MCP_RUNNER_TASK_RUNS_ROOT")
    legacy_value = _from_env(env, "MCP_RUNNER_LEGACY_ROOT")
    metrics_value = _from_env(env, "MCP_RUNNER_METRICS_ROOT")
    return Locations(
        repo_root=repo_root,
        task_id=task_id,
        runs_root=resolve(runs_value) if runs_value else repo_root / ".runs" / task_id / "mcp",
        legacy_root=resolve(legacy_value) if legacy_value else repo_root / ".runs" / "local-mcp",
        metrics_root=resolve(metrics_value) if metrics_value else repo_root / ".runs" / task_id,
    )


def default_repo_root(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The repo root when ``MCP_RUNNER_REPO_ROOT`` is unset: the checkout the
    wrappers run from (they export it), else the checkout this package lives in
    (its bin/ scripts), else, for an installed package, ``repo_root_of(cwd)``."""
    cwd = Path.cwd() if cwd is None else cwd
    hinted = (os.environ if env is None else env).get("MCP_RUNNER_CHECKOUT")
    if hinted:
        return (cwd / hinted).resolve()
    if (_PACKAGE_CHECKOUT / "scripts" / "_runner-python.sh").is_file():
        return _PACKAGE_CHECKOUT
    return repo_root_of(cwd)


def repo_root_of(cwd: Path | str) -> Path:
    """The git top level of ``cwd`` (the nearest folder upwards holding a ``.git``
    directory or file), else ``cwd`` itself: what ``git rev-parse --show-toplevel``
    gives, without starting git."""
    start = Path(os.path.abspath(cwd))
    for folder in (start, *start.parents):
        if os.path.exists(os.path.join(folder, ".git")):
            return folder
    return start


def relative_to_root(repo_root: Path, path: Path | str) -> str:
    """A path as stored in JSON and printed: relative to the repo root, '/'-separated."""
    return os.path.relpath(os.path.abspath(path), repo_root).replace(os.sep, "/")


def validate_run_id(run_id: str) -> str:
    """Accept only a single plain path segment; raise RunnerError otherwise."""
    if (
        not run_id
        or run_id in (".", "..")
        or "/" in run_id
        or "\\" in run_id
        or "\x00" in run_id
        or any(ch in run_id for ch in "\n\r\t")
        or len(run_id.encode("utf-8", "surrogateescape")) > _RUN_ID_MAX
    ):
        raise RunnerError(f"Invalid run id: {run_id!r} (expected a single plain path segment).")
    return run_id


_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")


def slugify(command: str) -> str:
    slug = _NON_ALNUM.sub("-", command).strip("-")[:60]
    return slug or "command"


def command_file_name(index: int, command: str) -> str:
    return f"{index:02d}-{slugify(command)}.json"
