"""Where things live: repo root, task id, run roots, run ids, relative paths, slugs."""

from __future__ import annotations

import os

from mcp_core.errors import RunnerError

TYPE_CHECKING = False
if TYPE_CHECKING:  # poll imports this module: pathlib, re and typing only where needed
    from collections.abc import Mapping
    from pathlib import Path

DEFAULT_TASK_ID = "0001"
_RUN_ID_MAX = 200
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_TASK_ID_CHARS = frozenset(_ALNUM + "._-")
_TASK_ID_MAX = 100


# A plain class, not a NamedTuple or a frozen dataclass: importing typing costs
# ~3 ms and dataclasses ~15-20 ms here, and poll imports this module (BENCHMARKS.md).
class Locations:
    __slots__ = ("repo_root", "task_id", "runs_root", "legacy_root", "metrics_root")

    def __init__(self, repo_root: Path, task_id: str, runs_root: Path, legacy_root: Path, metrics_root: Path) -> None:
        self.repo_root = repo_root
        self.task_id = task_id
        self.runs_root = runs_root
        self.legacy_root = legacy_root
        self.metrics_root = metrics_root

    def _fields(self) -> tuple[Path, str, Path, Path, Path]:
        return (self.repo_root, self.task_id, self.runs_root, self.legacy_root, self.metrics_root)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Locations) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        names = ", ".join(f"{name}={value!r}" for name, value in zip(self.__slots__, self._fields(), strict=True))
        return f"Locations({names})"

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


def _from_env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value else None


def find_roots(env: Mapping[str, str] | None = None, cwd: str | None = None) -> tuple[str, str, str, str, str]:
    """``(repo root, task id, runs root, legacy root, metrics root)``, the roots as
    absolute paths in strings (docs/interface.md section 3). What ``locate`` returns as
    Paths; poll uses it as it is, without importing pathlib."""
    env = os.environ if env is None else env
    cwd = os.getcwd() if cwd is None else cwd

    def resolve(value: str) -> str:
        return os.path.abspath(os.path.join(cwd, value))

    root_value = _from_env(env, "MCP_RUNNER_REPO_ROOT")
    repo_root = resolve(root_value) if root_value else _default_repo_root(env, cwd)
    task_id = validate_task_id(_from_env(env, "MCP_RUNNER_TASK_ID") or DEFAULT_TASK_ID)
    runs_value = _from_env(env, "MCP_RUNNER_TASK_RUNS_ROOT")
    legacy_value = _from_env(env, "MCP_RUNNER_LEGACY_ROOT")
    metrics_value = _from_env(env, "MCP_RUNNER_METRICS_ROOT")
    return (
        repo_root,
        task_id,
        resolve(runs_value) if runs_value else os.path.join(repo_root, ".runs", task_id, "mcp"),
        resolve(legacy_value) if legacy_value else os.path.join(repo_root, ".runs", "local-mcp"),
        resolve(metrics_value) if metrics_value else os.path.join(repo_root, ".runs", task_id),
    )


def locate(env: Mapping[str, str] | None = None, cwd: Path | str | None = None) -> Locations:
    """Resolve every root from the environment (docs/interface.md section 3)."""
    from pathlib import Path

    repo_root, task_id, runs_root, legacy_root, metrics_root = find_roots(
        env, None if cwd is None else os.fspath(cwd)
    )
    return Locations(
        repo_root=Path(repo_root),
        task_id=task_id,
        runs_root=Path(runs_root),
        legacy_root=Path(legacy_root),
        metrics_root=Path(metrics_root),
    )


def default_repo_root(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The repo root when ``MCP_RUNNER_REPO_ROOT`` is unset: the checkout the
    wrappers run from (they export it), else the checkout this package lives in
    (its bin/ scripts), else, for an installed package, ``repo_root_of(cwd)``."""
    from pathlib import Path

    return Path(_default_repo_root(os.environ if env is None else env, os.getcwd() if cwd is None else os.fspath(cwd)))


def _default_repo_root(env: Mapping[str, str], cwd: str) -> str:
    hinted = env.get("MCP_RUNNER_CHECKOUT")
    if hinted:
        return os.path.realpath(os.path.join(cwd, hinted))
    checkout = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # not at import: poll rarely needs it
    if os.path.isfile(os.path.join(checkout, "scripts", "_runner-python.sh")):
        return checkout
    return git_top_level(cwd)


def repo_root_of(cwd: Path | str) -> Path:
    """The git top level of ``cwd`` (the nearest folder upwards holding a ``.git``
    directory or file), else ``cwd`` itself: what ``git rev-parse --show-toplevel``
    gives, without starting git."""
    from pathlib import Path

    return Path(git_top_level(os.fspath(cwd)))


def git_top_level(cwd: str) -> str:
    """``repo_root_of`` as a string (without pathlib: the installed poll comes this way)."""
    start = folder = os.path.abspath(cwd)
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return start
        folder = parent


def relative_to_root(repo_root: Path | str, path: Path | str) -> str:
    """A path as stored in JSON and printed: relative to the repo root, '/'-separated."""
    return os.path.relpath(os.path.abspath(path), repo_root).replace(os.sep, "/")


def validate_task_id(task_id: str) -> str:
    """A task id becomes a directory name: letters, digits, '.', '_', '-' only, at
    most 100, starting with a letter or digit (so never '.' or '..')."""
    if not (0 < len(task_id) <= _TASK_ID_MAX and task_id[0] in _ALNUM and _TASK_ID_CHARS.issuperset(task_id)):
        raise RunnerError(f"Invalid task id: {task_id!r} (expected letters, digits, '.', '_' or '-').")
    return task_id


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


def slugify(command: str) -> str:
    import re

    slug = re.sub(r"[^a-zA-Z0-9]+", "-", command).strip("-")[:60]
    return slug or "command"


def command_file_name(index: int, command: str) -> str:
    return f"{index:02d}-{slugify(command)}.json"


def task_locations(task: str | None) -> Locations:
    """The locations of the task ``task`` (a --task flag), else of the environment's."""
    env = dict(os.environ)
    if task is not None:
        env["MCP_RUNNER_TASK_ID"] = task
    return locate(env)  # locate refuses a task id that is not one plain name
