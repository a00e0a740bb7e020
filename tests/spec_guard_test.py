"""scripts/spec-guard.sh: the guardrail checks the repository it lives in, this checkout or
another repository the wrappers were copied into (where the package comes installed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CHECKOUT, SCRIPTS, snapshot

PASSED_DRY = re.compile(r"spec-guard: all \d+ checks passed \(dry run, nothing written\)\.\n")
RUN_ID = re.compile(r"Run ID: (\S+)\n")


def guard(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / "scripts/spec-guard.sh"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def failed(result: subprocess.CompletedProcess[str], *messages: str) -> None:
    assert result.returncode == 1 and result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    for message in messages:
        assert any(line.startswith(f"spec-guard: FAIL: {message}") for line in lines), result.stderr
    assert re.search(rf"spec-guard: {len(messages)} of \d+ checks failed\.\n$", result.stderr), result.stderr


# -- this checkout -----------------------------------------------------------------


@pytest.fixture
def checkout_copy(tmp_path: Path) -> Path:
    """The runner's files and its spec (mcp-runner.json and what it requires), without caches."""
    copy = tmp_path / "checkout"
    for part in ("scripts", "bin", "mcp_core", "docs"):
        shutil.copytree(CHECKOUT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("mcp-runner.json", "README.md", "pyproject.toml"):
        shutil.copy(CHECKOUT / name, copy)
    return copy


def test_this_checkout_passes_and_a_dry_run_writes_nothing(checkout_copy: Path) -> None:
    assert guard(CHECKOUT, "--dry-run").stdout.startswith("spec-guard: all ")
    before = snapshot(checkout_copy)
    result = guard(checkout_copy, "--dry-run")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert PASSED_DRY.fullmatch(result.stdout)
    assert snapshot(checkout_copy) == before


def test_without_dry_run_the_spec_folders_are_byte_compiled(checkout_copy: Path) -> None:
    result = guard(checkout_copy)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"spec-guard: all \d+ checks passed \(byte-compiled\)\.\n", result.stdout)
    assert (checkout_copy / "mcp_core/__pycache__").is_dir()


@pytest.mark.parametrize(
    ("damage", "messages"),
    [
        (lambda c: (c / "scripts/mcp-runner-poll.sh").unlink(), ["scripts/mcp-runner-poll.sh is missing"]),
        (lambda c: (c / "scripts/mcp-runner-start.sh").chmod(0o644), ["scripts/mcp-runner-start.sh is not executable"]),
        (lambda c: (c / "bin/mcp-runner-list").chmod(0o644), ["bin/mcp-runner-list is not executable"]),
        (lambda c: (c / "bin/mcp-runner-cancel").unlink() or (c / "mcp_core/commands/cancel.py").unlink(),
         ["scripts/mcp-runner-cancel.sh runs 'cancel', but neither bin/mcp-runner-cancel nor the mcp-runner package"]),
        (lambda c: (c / "mcp_core/tokens.py").write_text("def broken(:\n"), ["mcp_core/tokens.py does not compile"]),
        (lambda c: (c / "docs/interface.md").unlink(), ["docs/interface.md is missing (required by mcp-runner.json)"]),
        (lambda c: (c / "mcp-runner.json").write_text("{"), ["mcp-runner.json cannot be read: "
         "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"]),
        (lambda c: (c / "mcp-runner.json").write_text('{"spec_guard": {"required": "README.md"}}'),
         ['mcp-runner.json: "spec_guard" must be {"required": [paths], "compile": [folders]}']),
    ],
)  # fmt: skip
def test_a_broken_checkout_fails_with_one_line_per_problem(
    checkout_copy: Path, damage: Callable[[Path], object], messages: list[str]
) -> None:
    damage(checkout_copy)
    failed(guard(checkout_copy, "--dry-run"), *messages)


def test_unknown_options_and_help(checkout_copy: Path) -> None:
    result = guard(checkout_copy, "--bogus")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "Unknown option: --bogus\nUsage: scripts/spec-guard.sh [--dry-run]\n"
    helped = guard(checkout_copy, "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: scripts/spec-guard.sh [--dry-run]\n")


# -- another repository ------------------------------------------------------------


@pytest.fixture
def consumer(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A git repository the wrappers were copied into, as the README says; the package
    comes from the python3 on PATH (this interpreter, where it is installed)."""
    repo = tmp_path / "consumer"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    shutil.copytree(SCRIPTS, repo / "scripts")
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shims / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_RUNNER_") and k != "PYTHONPATH"}
    env["PATH"] = f"{shims}:{env['PATH']}"
    return repo, env


def test_in_another_repository_the_guard_checks_that_repository(consumer: tuple[Path, dict[str, str]]) -> None:
    repo, env = consumer
    result = guard(repo, "--dry-run", env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert PASSED_DRY.fullmatch(result.stdout)

    (repo / "specs").mkdir()
    (repo / "mcp-runner.json").write_text(
        json.dumps({"spec_guard": {"required": ["specs/*.md", "README.md"], "compile": ["tools"]}})
    )
    failed(
        guard(repo, "--dry-run", env=env),
        "specs/*.md is missing (required by mcp-runner.json)",
        "README.md is missing (required by mcp-runner.json)",
        "tools is missing (compiled by mcp-runner.json)",
    )
    (repo / "specs/0001-runner.md").write_text("# spec\n")
    (repo / "README.md").write_text("# consumer\n")
    (repo / "tools").mkdir()
    (repo / "tools/ok.py").write_text("print('ok')\n")
    assert guard(repo, "--dry-run", env=env).returncode == 0
    (repo / "tools/bad.py").write_text("def broken(:\n")
    failed(guard(repo, "--dry-run", env=env), "tools/bad.py does not compile: invalid syntax (bad.py, line 1)")


def test_in_another_repository_without_the_package_every_command_is_missing(
    consumer: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    repo, env = consumer
    (tmp_path / "shims/python3").write_text(f'#!/bin/sh\nexec "{os.path.realpath(sys.executable)}" -S "$@"\n')
    result = guard(repo, "--dry-run", env=env)
    assert result.returncode == 1 and result.stdout == ""
    assert "scripts/mcp-runner-start.sh runs 'start', but neither bin/mcp-runner-start nor" in result.stderr


@pytest.mark.slow
def test_diagnostics_in_another_repository_end_succeeded(consumer: tuple[Path, dict[str, str]]) -> None:
    repo, env = consumer
    commands = ["echo checked", "bash scripts/spec-guard.sh --dry-run"]
    (repo / "mcp-runner.json").write_text(json.dumps({"default_commands": commands}))
    env = {**env, "MCP_RUNNER_SERVER": "local", "MCP_RUNNER_DIAGNOSTICS_INTERVAL": "0.5"}
    result = subprocess.run(
        [str(repo / "scripts/run-mcp-diagnostics.sh")],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    run_id = RUN_ID.search(result.stdout).group(1)  # type: ignore[union-attr]
    record = json.loads((repo / ".runs/0001/mcp" / run_id / "manifest.json").read_text())
    assert record["repo_root"] == str(repo)
    assert record["status"] == "succeeded", result.stdout
    assert [c["status"] for c in record["commands"]] == ["succeeded", "succeeded"]
    assert "Guardrail" not in (record.get("summary") or "")
