from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import CHECKOUT

from mcp_core.default_commands import BUILTIN_COMMANDS, default_commands
from mcp_core.errors import RunnerError


def test_builtin_list_when_nothing_is_configured(repo: Path) -> None:
    assert default_commands(repo, {}) == [
        "npm run build",
        "npm run lint",
        "npm run test",
        "bash scripts/spec-guard.sh --dry-run",
    ]
    assert list(BUILTIN_COMMANDS) == default_commands(repo, {"MCP_RUNNER_DEFAULT_COMMANDS": "  "})


def test_config_file_at_the_repo_root(repo: Path) -> None:
    (repo / "mcp-runner.json").write_text(json.dumps({"default_commands": ["make lint", "make test"]}))
    assert default_commands(repo, {}) == ["make lint", "make test"]


def test_environment_wins_over_the_file(repo: Path) -> None:
    (repo / "mcp-runner.json").write_text(json.dumps({"default_commands": ["make lint"]}))
    assert default_commands(repo, {"MCP_RUNNER_DEFAULT_COMMANDS": "echo a\n\n  echo b  \n"}) == [
        "echo a",
        "echo b",
    ]
    assert default_commands(repo, {"MCP_RUNNER_DEFAULT_COMMANDS": '["echo \\"x\\"", "true"]'}) == [
        'echo "x"',
        "true",
    ]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"default_commands": []}',
        '{"default_commands": "make"}',
        '{"default_commands": ["ok", ""]}',
        '{"default_commands": ["ok", 3]}',
        '{"other": ["x"]}',
    ],
)
def test_a_bad_config_file_is_one_clear_error(repo: Path, content: str) -> None:
    (repo / "mcp-runner.json").write_text(content)
    with pytest.raises(RunnerError) as caught:
        default_commands(repo, {})
    assert caught.value.message.startswith("Invalid mcp-runner.json: ")
    assert "\n" not in caught.value.message


def test_a_config_file_that_is_no_regular_file_is_refused_at_once(repo: Path) -> None:
    """A FIFO in its place would block a reader for ever (nobody writes to it)."""
    os.mkfifo(repo / "mcp-runner.json")
    with pytest.raises(RunnerError) as caught:
        default_commands(repo, {})
    assert caught.value.message == "Cannot read mcp-runner.json: not a regular file."


@pytest.mark.parametrize("value", ["[1, 2]", "[]", '["a", ""]', "[broken"])
def test_a_bad_environment_value_is_an_error(repo: Path, value: str) -> None:
    with pytest.raises(RunnerError) as caught:
        default_commands(repo, {"MCP_RUNNER_DEFAULT_COMMANDS": value})
    assert caught.value.message.startswith("Invalid MCP_RUNNER_DEFAULT_COMMANDS: ")


def test_this_repository_checks_itself_and_ends_with_its_guardrail() -> None:
    commands = default_commands(CHECKOUT, {})
    assert commands != list(BUILTIN_COMMANDS)
    assert not any(command.startswith("npm ") for command in commands)
    assert commands[-1] == "bash scripts/spec-guard.sh --dry-run"
