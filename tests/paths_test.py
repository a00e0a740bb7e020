"""Locations from the environment, run-id validation, slugs and response file names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import node_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_core.errors import RunnerError
from mcp_core.paths import command_file_name, locate, relative_to_root, repo_root_of, slugify, validate_run_id

CHECKOUT = Path(__file__).resolve().parent.parent


def test_defaults_under_the_repo_root(tmp_path: Path) -> None:
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(tmp_path)}, cwd=Path("/"))
    assert loc.repo_root == tmp_path
    assert loc.task_id == "0001"
    assert loc.runs_root == tmp_path / ".runs/0001/mcp"
    assert loc.legacy_root == tmp_path / ".runs/local-mcp"
    assert loc.metrics_root == tmp_path / ".runs/0001"
    assert loc.metrics_file == tmp_path / ".runs/0001/metrics.json"
    assert loc.metrics_summary_file == tmp_path / ".runs/0001/metrics-summary.json"
    assert loc.migrations_dir == tmp_path / ".runs/0001/migrations"
    assert loc.run_dir("abc") == tmp_path / ".runs/0001/mcp/abc"
    assert loc.pointer_dir("abc") == tmp_path / ".runs/local-mcp/abc"


def test_every_override_and_relative_values_against_cwd(tmp_path: Path) -> None:
    env = {
        "MCP_RUNNER_REPO_ROOT": "repo",
        "MCP_RUNNER_TASK_ID": "0042",
        "MCP_RUNNER_TASK_RUNS_ROOT": "runs/../elsewhere/runs",
        "MCP_RUNNER_LEGACY_ROOT": "./legacy",
        "MCP_RUNNER_METRICS_ROOT": str(tmp_path / "abs-metrics"),
    }
    loc = locate(env, cwd=tmp_path)
    assert loc.repo_root == tmp_path / "repo"
    assert loc.task_id == "0042"
    assert loc.runs_root == tmp_path / "elsewhere/runs"
    assert loc.legacy_root == tmp_path / "legacy"
    assert loc.metrics_root == tmp_path / "abs-metrics"
    # migration logs stay task-scoped under the repo root whatever the other roots say
    assert loc.migrations_dir == tmp_path / "repo/.runs/0042/migrations"
    assert loc.rel(loc.run_dir("x") / "manifest.json") == "../elsewhere/runs/x/manifest.json"


def test_task_id_moves_the_default_roots(tmp_path: Path) -> None:
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(tmp_path), "MCP_RUNNER_TASK_ID": "0007"}, cwd=tmp_path)
    assert loc.runs_root == tmp_path / ".runs/0007/mcp"
    assert loc.metrics_root == tmp_path / ".runs/0007"
    assert loc.legacy_root == tmp_path / ".runs/local-mcp"  # not task-scoped


def test_empty_values_count_as_unset(tmp_path: Path) -> None:
    env = {"MCP_RUNNER_REPO_ROOT": str(tmp_path), "MCP_RUNNER_TASK_ID": "", "MCP_RUNNER_TASK_RUNS_ROOT": ""}
    loc = locate(env, cwd=Path("/"))
    assert loc.task_id == "0001" and loc.runs_root == tmp_path / ".runs/0001/mcp"


def test_repo_root_defaults_to_the_checkout_or_its_hint(tmp_path: Path) -> None:
    assert locate({}, cwd=tmp_path).repo_root == CHECKOUT
    (tmp_path / "copy").mkdir()
    assert locate({"MCP_RUNNER_CHECKOUT": "copy"}, cwd=tmp_path).repo_root == tmp_path / "copy"


def test_repo_root_of_a_directory_is_its_git_top_level_else_itself(tmp_path: Path) -> None:
    plain = tmp_path / "plain" / "sub"
    plain.mkdir(parents=True)
    assert repo_root_of(plain) == plain
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "a" / "b").mkdir(parents=True)
    assert repo_root_of(repo / "a" / "b") == repo
    assert repo_root_of(str(repo)) == repo
    # a worktree or submodule has a .git file; the nearest one wins
    (repo / "a" / ".git").write_text("gitdir: elsewhere\n")
    assert repo_root_of(repo / "a" / "b") == repo / "a"


def test_relative_paths_use_slashes_and_dot_dot(tmp_path: Path) -> None:
    assert relative_to_root(tmp_path, tmp_path / ".runs/0001/mcp/x/manifest.json") == ".runs/0001/mcp/x/manifest.json"
    assert relative_to_root(tmp_path, tmp_path.parent / "out") == "../out"
    assert relative_to_root(tmp_path, tmp_path) == "."


@pytest.mark.parametrize(
    "run_id",
    ["2025-10-18T18-26-16-688Z-39463", "demo-legacy", "a..b", "...", ".hidden", "--watch", "x" * 200, "é", "a b"],
)
def test_valid_run_ids(run_id: str) -> None:
    assert validate_run_id(run_id) == run_id


@pytest.mark.parametrize(
    "run_id",
    ["", ".", "..", "../../../victim", "/abs", "/", "a/b", "a/", "a\\b", "a\x00b", "a\nb", "a\rb", "a\tb", "x" * 201,
     "é" * 101],
)
def test_invalid_run_ids(run_id: str, tmp_path: Path) -> None:
    with pytest.raises(RunnerError) as caught:
        validate_run_id(run_id)
    assert caught.value.message == f"Invalid run id: {run_id!r} (expected a single plain path segment)."
    assert "\n" not in caught.value.message and caught.value.exit_code == 1
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(tmp_path)})
    with pytest.raises(RunnerError):
        loc.run_dir(run_id)
    with pytest.raises(RunnerError):
        loc.pointer_dir(run_id)


@pytest.mark.parametrize(
    ("command", "slug"),
    [
        ("bash -lc 'exit 2'", "bash-lc-exit-2"),
        ("npm run build", "npm-run-build"),
        ("bash scripts/spec-guard.sh --dry-run", "bash-scripts-spec-guard-sh-dry-run"),
        ("sleep 600", "sleep-600"),
        ("  --weird!!  ", "weird"),
        ("héllo wörld", "h-llo-w-rld"),
        ("", "command"),
        ("!!! ---", "command"),
        ("a" * 59 + " b", "a" * 59 + "-"),  # cut to 60 after trimming: a trailing '-' can remain
        ("a" * 80, "a" * 60),
    ],
)
def test_slugify(command: str, slug: str) -> None:
    assert slugify(command) == slug


def test_command_file_names() -> None:
    assert command_file_name(1, "npm run build") == "01-npm-run-build.json"
    assert command_file_name(9, "") == "09-command.json"
    assert command_file_name(10, "x") == "10-x.json"
    assert command_file_name(100, "bash -lc 'exit 2'") == "100-bash-lc-exit-2.json"


@settings(max_examples=5, deadline=None)
@given(commands=st.lists(st.text(max_size=90), min_size=100, max_size=200))
def test_property_slug_matches_the_old_javascript(node: str, commands: list[str]) -> None:
    # The old runner's slugify (its trim() only removed what the replace turns into '-' anyway).
    script = (
        json.dumps(commands)
        + ".map(c => c.replace(/[^a-zA-Z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60) || 'command')"
    )
    assert [slugify(c) for c in commands] == node_eval(node, script)
