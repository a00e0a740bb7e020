"""scripts/mcp-runner-report.sh as a person runs it: a real process writing a real page."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import in_repo, run_script, run_script_on_terminal, runner_env, snapshot
from gen_runs import generate

from mcp_core.commands.report import USAGE, main

SCRIPT = "mcp-runner-report.sh"


def without_report(tree: dict[str, bytes | str]) -> dict[str, bytes | str]:
    return {k: v for k, v in tree.items() if not k.endswith("report.html")}


def test_writes_the_page_and_says_where(fixture_repo: Path) -> None:
    generate(fixture_repo, 20, seed=9, hostile=True)  # beside the upstream runs
    before = snapshot(fixture_repo)
    result = run_script(SCRIPT, repo=fixture_repo)
    assert (result.returncode, result.stdout, result.stderr) == (0, "Report written to .runs/0001/report.html\n", "")
    page = (fixture_repo / ".runs" / "0001" / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>\n")
    assert page.count('<tr id="run-') == 26
    assert not re.search(r"<script|https?://", page, re.IGNORECASE)
    after = snapshot(fixture_repo)
    assert without_report(after) == before  # the page is the only thing written
    assert sorted(set(after) - set(before)) == [".runs/0001/report.html"]


def test_rewrites_in_place_and_honours_limit_and_task(repo: Path) -> None:
    generate(repo, 12, seed=1)
    generate(repo, 4, seed=2, task_id="0002")
    assert run_script(SCRIPT, repo=repo).returncode == 0
    first = (repo / ".runs" / "0001" / "report.html").read_text(encoding="utf-8")
    assert first.count('<tr id="run-') == 12
    result = run_script(SCRIPT, "--limit", "3", repo=repo)
    assert result.returncode == 0
    assert (repo / ".runs" / "0001" / "report.html").read_text(encoding="utf-8").count('<tr id="run-') == 3
    assert sorted(p.name for p in (repo / ".runs" / "0001").iterdir()) == ["mcp", "metrics.json", "report.html"]
    result = run_script(SCRIPT, "--task", "0002", repo=repo)
    assert (result.returncode, result.stdout) == (0, "Report written to .runs/0002/report.html\n")
    assert (repo / ".runs" / "0002" / "report.html").read_text(encoding="utf-8").count('<tr id="run-') == 4


def test_progress_shows_on_a_terminal_only(repo: Path) -> None:
    generate(repo, 600, seed=4, artifacts=False, spacing_seconds=600)
    code, stdout, terminal = run_script_on_terminal(SCRIPT, "--limit", "600", repo=repo)
    assert (code, stdout) == (0, "Report written to .runs/0001/report.html\n")
    # Each stage counted on one redrawn line, erased when it ends.
    assert terminal.startswith("\r\x1b[KReading runs: 0/600 (0%)")
    assert "\r\x1b[KReading runs: 600/600 (100%)\r\x1b[K\r\x1b[KWriting the report: 1/600 (0%)" in terminal
    assert terminal.endswith("\r\x1b[KWriting the report: 600/600 (100%)\r\x1b[K")
    page = (repo / ".runs" / "0001" / "report.html").read_text(encoding="utf-8")
    assert "Writing" not in page and page.count('<tr id="run-') == 600
    piped = run_script(SCRIPT, "--limit", "600", repo=repo)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "Report written to .runs/0001/report.html\n", "")


def test_report_goes_under_the_repo_whatever_the_runs_root(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "runs-elsewhere"
    generate(repo, 3, seed=1)
    (repo / ".runs" / "0001" / "mcp").rename(elsewhere)
    env = runner_env(repo, MCP_RUNNER_TASK_RUNS_ROOT=str(elsewhere))
    result = run_script(SCRIPT, repo=repo, env=env)
    assert (result.returncode, result.stdout) == (0, "Report written to .runs/0001/report.html\n")
    page = (repo / ".runs" / "0001" / "report.html").read_text(encoding="utf-8")
    hrefs = re.findall(r'href="([^"#]+)"', page)
    assert hrefs and all((repo / ".runs" / "0001" / h).is_file() for h in hrefs)
    assert any(h.startswith(os.path.relpath(elsewhere, repo / ".runs" / "0001")) for h in hrefs)


def test_warns_about_unreadable_manifests(repo: Path) -> None:
    generate(repo, 2, seed=1)
    broken = repo / ".runs" / "0001" / "mcp" / "2020-01-01T00-00-00-000Z-1"
    broken.mkdir()
    (broken / "manifest.json").write_text("", encoding="utf-8")
    result = run_script(SCRIPT, repo=repo)
    assert result.returncode == 0
    assert result.stderr == (
        "Warning: skipping .runs/0001/mcp/2020-01-01T00-00-00-000Z-1/manifest.json: "
        "not valid JSON: Expecting value at line 1 column 1\n"
    )


def test_help(repo: Path) -> None:
    result = run_script(SCRIPT, "--help", repo=repo)
    assert (result.returncode, result.stdout, result.stderr) == (0, USAGE, "")
    assert USAGE.splitlines()[0] == "Usage: scripts/mcp-runner-report.sh [--task ID] [--limit N]"
    assert not (repo / ".runs").exists()


def test_cannot_write(repo: Path) -> None:
    (repo / ".runs").mkdir()
    (repo / ".runs" / "0001").write_text("a file where the task folder should be", encoding="utf-8")
    result = run_script(SCRIPT, repo=repo)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Cannot write the report: ") and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "Unknown option for report: --bogus"),
        (["report.html"], "Unknown option for report: report.html"),
        (["--limit"], "--limit requires a numeric value"),
        (["--limit", "x"], "--limit requires a numeric value"),
        (["--limit", "0"], "--limit must be a positive number"),
        (["--limit", "1.5"], "--limit requires a whole number"),
        (["--task"], "--task requires a value"),
        (["--task", ".."], "Invalid task id: '..' (expected letters, digits, '.', '_' or '-')."),
        (["--format", "json"], "Unknown option for report: --format"),
    ],
)
def test_bad_input(
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
    [(["--bogus"], "Unknown option for report: --bogus"), (["--limit", "x"], "--limit requires a numeric value")],
)
def test_bad_input_as_a_process(runs_repo: Path, args: list[str], message: str) -> None:
    before = snapshot(runs_repo)
    result = run_script(SCRIPT, *args, repo=runs_repo)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n")
    assert snapshot(runs_repo) == before
