"""scripts/mcp-runner-prune.sh as a person runs it: printed lines, the audit log, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import in_repo, run_script, runner_env, snapshot
from gen_runs import generate

from mcp_core.commands.prune import USAGE, main

SCRIPT = "mcp-runner-prune.sh"
DAY_SECONDS = 86_400.0


def logs(repo: Path) -> list[Path]:
    folder = repo / ".runs" / "0001" / "prunes"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_keep_prints_one_line_per_run_and_writes_the_log(repo: Path) -> None:
    generated = generate(repo, 10, seed=21, spacing_seconds=3600)
    metrics = (repo / ".runs" / "0001" / "metrics.json").read_bytes()
    result = run_script(SCRIPT, "--keep", "4", repo=repo)
    assert (result.returncode, result.stderr) == (0, "")
    (log_path,) = logs(repo)
    assert log_path.name.endswith("-prune.log")
    newest_first = list(reversed(generated))
    expected = [f"{g.run_id}: kept — among the 4 newest runs" for g in newest_first[:4]]
    expected += [
        f"{g.run_id}: removed — beyond the 4 newest runs; pointer .runs/local-mcp/{g.run_id} removed"
        for g in newest_first[4:]
    ]
    expected.append(f"Prune log written to .runs/0001/prunes/{log_path.name}")
    assert result.stdout.splitlines() == expected
    log = json.loads(log_path.read_text(encoding="utf-8"))
    assert log["runs"][4] == {
        "run_id": newest_first[4].run_id,
        "path": f".runs/0001/mcp/{newest_first[4].run_id}",
        "status": newest_first[4].status,
        "action": "removed",
        "reason": f"beyond the 4 newest runs; pointer .runs/local-mcp/{newest_first[4].run_id} removed",
    }
    assert (log["dry_run"], log["keep"], log["older_than_days"], log["repo_root"]) == (False, 4, None, str(repo))
    assert (repo / ".runs" / "0001" / "metrics.json").read_bytes() == metrics
    remaining = sorted(p.name for p in (repo / ".runs" / "0001" / "mcp").iterdir())
    assert remaining == sorted(g.run_id for g in newest_first[:4])
    assert sorted(p.name for p in (repo / ".runs" / "local-mcp").iterdir()) == remaining


def test_dry_run_changes_nothing_but_its_log(repo: Path) -> None:
    generate(repo, 8, seed=21, spacing_seconds=DAY_SECONDS)
    before = snapshot(repo)
    result = run_script(SCRIPT, "--older-than", "2.5", "--dry-run", repo=repo)
    assert (result.returncode, result.stderr) == (0, "")
    (log_path,) = logs(repo)
    assert log_path.name.endswith("-dry-run.log")
    after = snapshot(repo)
    assert {k: v for k, v in after.items() if "prunes" not in k} == before
    lines = result.stdout.splitlines()
    assert sum(" would-remove — " in line for line in lines) == 5  # ended 7 .. 3 days ago
    assert lines[-1] == f"Prune log written to .runs/0001/prunes/{log_path.name}"
    log = json.loads(log_path.read_text(encoding="utf-8"))
    assert (log["dry_run"], log["keep"], log["older_than_days"]) == (True, None, 2.5)


def test_no_runs(repo: Path) -> None:
    result = run_script(SCRIPT, "--keep", "3", repo=repo)
    assert (result.returncode, result.stdout, result.stderr) == (0, "No runs found to prune in .runs/0001/mcp.\n", "")
    assert not (repo / ".runs").exists()


def test_task_flag(repo: Path) -> None:
    generate(repo, 3, seed=1, task_id="0007")
    result = run_script(SCRIPT, "--keep", "1", "--task", "0007", repo=repo)
    assert result.returncode == 0
    assert len(list((repo / ".runs" / "0007" / "mcp").iterdir())) == 1
    assert len(list((repo / ".runs" / "0007" / "prunes").iterdir())) == 1


def test_help(repo: Path) -> None:
    result = run_script(SCRIPT, "-h", repo=repo)
    assert (result.returncode, result.stdout, result.stderr) == (0, USAGE, "")
    assert USAGE.splitlines()[0] == (
        "Usage: scripts/mcp-runner-prune.sh [--keep N] [--older-than DAYS] [--dry-run] [--task ID]"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Prune needs --keep N or --older-than DAYS; nothing was pruned."),
        (["--dry-run"], "Prune needs --keep N or --older-than DAYS; nothing was pruned."),
        (["--bogus"], "Unknown option for prune: --bogus"),
        (["--keep=3"], "Unknown option for prune: --keep=3"),
        (["--older", "3"], "Unknown option for prune: --older"),
        (["all"], "Unknown option for prune: all"),
        (["--keep"], "--keep requires a numeric value"),
        (["--keep", ""], "--keep requires a numeric value"),
        (["--keep", "x"], "--keep requires a numeric value"),
        (["--keep", "-1"], "--keep requires a numeric value"),
        (["--keep", "1.5"], "--keep requires a numeric value"),
        (["--keep", "--dry-run"], "--keep requires a numeric value"),
        (["--older-than"], "--older-than requires a numeric value"),
        (["--older-than", "soon"], "--older-than requires a numeric value"),
        (["--older-than", "-2"], "--older-than requires a numeric value"),
        (["--older-than", "nan"], "--older-than requires a numeric value"),
        (["--older-than", "inf"], "--older-than requires a numeric value"),
        (["--keep", "2", "--task"], "--task requires a value"),
        (["--keep", "2", "--task", "../1"], "Invalid task id: '../1' (expected letters, digits, '.', '_' or '-')."),
        (["--keep", "2", "--bogus", "-h"], "Unknown option for prune: --bogus"),
    ],
)
def test_bad_input_changes_nothing(
    runs_repo: Path,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process (the same main() the wrapper runs): one stderr line, exit 1, nothing changed."""
    in_repo(monkeypatch, runs_repo)
    before = snapshot(runs_repo)
    assert main(args) == 1
    assert capsys.readouterr() == ("", message + "\n")
    assert snapshot(runs_repo) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Prune needs --keep N or --older-than DAYS; nothing was pruned."),
        (["--keep", "x"], "--keep requires a numeric value"),
        (["--older-than", "-2"], "--older-than requires a numeric value"),
    ],
)
def test_bad_input_changes_nothing_as_a_process(runs_repo: Path, args: list[str], message: str) -> None:
    before = snapshot(runs_repo)
    result = run_script(SCRIPT, *args, repo=runs_repo)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n")
    assert snapshot(runs_repo) == before


def test_bad_task_id_from_the_environment(repo: Path) -> None:
    result = run_script(SCRIPT, "--keep", "1", repo=repo, env=runner_env(repo, MCP_RUNNER_TASK_ID="a/b"))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "Invalid task id: 'a/b' (expected letters, digits, '.', '_' or '-').\n"
