"""The commands a run gets when start is given no ``--command``.

A repository chooses its own list without code changes, first match wins:

1. the environment variable ``MCP_RUNNER_DEFAULT_COMMANDS``: a JSON array of
   strings, or one command per line (lines trimmed, blank lines ignored);
2. the file ``mcp-runner.json`` at the repo root: ``{"default_commands": [...]}``;
3. the old runner's list (``npm run build``, ``npm run lint``, ``npm run test``,
   ``bash scripts/spec-guard.sh --dry-run``).

A list that is present but unusable is an error, never silently replaced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from mcp_core import store
from mcp_core.errors import RunnerError

BUILTIN_COMMANDS = (
    "npm run build",
    "npm run lint",
    "npm run test",
    "bash scripts/spec-guard.sh --dry-run",
)
ENV_VAR = "MCP_RUNNER_DEFAULT_COMMANDS"
CONFIG_FILE = "mcp-runner.json"
CONFIG_KEY = "default_commands"


def _command_list(value: object) -> list[str] | None:
    """The value as a non-empty list of non-blank strings, else None."""
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(item, str) and item.strip() for item in value):
        return None
    return list(value)


def _from_env(raw: str) -> list[str]:
    text = raw.strip()
    if text.startswith("["):
        try:
            commands = _command_list(json.loads(text))
        except ValueError:
            commands = None
    else:
        commands = [line.strip() for line in text.splitlines() if line.strip()] or None
    if commands is None:
        raise RunnerError(
            f"Invalid {ENV_VAR}: expected a JSON array of non-empty strings or one command per line."
        )
    return commands


def _from_file(path: Path) -> list[str] | None:
    try:
        # A regular file of bounded size only: a FIFO put in its place must not hang start.
        text = store.read_run_file(path).decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RunnerError(f"Cannot read {CONFIG_FILE}: {reason}.") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RunnerError(f"Invalid {CONFIG_FILE}: not valid JSON ({exc}).") from exc
    commands = _command_list(data.get(CONFIG_KEY)) if isinstance(data, dict) else None
    if commands is None:
        raise RunnerError(
            f'Invalid {CONFIG_FILE}: expected an object whose "{CONFIG_KEY}" is a non-empty list of '
            "non-empty strings."
        )
    return commands


def default_commands(repo_root: Path, env: Mapping[str, str]) -> list[str]:
    """The repository's default command list (see the module docstring for the order)."""
    raw = env.get(ENV_VAR)
    if raw is not None and raw.strip():
        return _from_env(raw)
    configured = _from_file(repo_root / CONFIG_FILE)
    return configured if configured is not None else list(BUILTIN_COMMANDS)
