"""scripts/mcp-runner-metrics.js as callers run it: run directly (no Node needed) and
with ``node`` in front, as real processes against temp repositories (docs/interface.md sections 1 and 8)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CHECKOUT, FIXTURE_METRICS_FIGURES, SCRIPTS, run_script, runner_env, snapshot

METRICS = "mcp-runner-metrics.js"
USAGE_LINE = "Usage: node scripts/mcp-runner-metrics.js [--summarize]"
WRITTEN = "Metrics summary written to .runs/0001/metrics-summary.json\n"
NODE = shutil.which("node")


def run_node(*args: str, repo: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if NODE is None:
        pytest.skip("node is not installed here; the direct form is tested without it")
    return subprocess.run(
        [NODE, str(SCRIPTS / METRICS), *args],
        cwd=repo,
        env=env or runner_env(repo),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def run_form(form: str, *args: str, repo: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if form == "node":
        return run_node(*args, repo=repo, env=env)
    return run_script(METRICS, *args, repo=repo, env=env)


FORMS = pytest.mark.parametrize("form", ["direct", "node"])
def summary_file(repo: Path) -> Path:
    return repo / ".runs" / "0001" / "metrics-summary.json"


@FORMS
@pytest.mark.parametrize("args", [[], ["--summarize"]])
def test_fixture_summary(fixture_repo: Path, form: str, args: list[str]) -> None:
    metrics_before = (fixture_repo / ".runs/0001/metrics.json").read_bytes()
    result = run_form(form, *args, repo=fixture_repo)
    assert (result.returncode, result.stdout, result.stderr) == (0, WRITTEN, "")
    text = summary_file(fixture_repo).read_text()
    data = json.loads(text)
    assert list(data) == ["generated_at", *FIXTURE_METRICS_FIGURES]
    assert {k: v for k, v in data.items() if k != "generated_at"} == FIXTURE_METRICS_FIGURES
    # Byte for byte as the old runner wrote it (fixture's metrics-summary.json), but the time.
    assert text == (
        "{\n"
        f'  "generated_at": "{data["generated_at"]}",\n'
        '  "task_id": "0001",\n'
        '  "metrics_file": ".runs/0001/metrics.json",\n'
        '  "entries_total": 5,\n'
        '  "entries_succeeded": 1,\n'
        '  "entries_failed": 4,\n'
        '  "success_rate": 0.2,\n'
        '  "guardrail_coverage": 0.2,\n'
        '  "average_duration_seconds": 31.3668,\n'
        '  "parse_errors": []\n'
        "}\n"
    )
    assert (fixture_repo / ".runs/0001/metrics.json").read_bytes() == metrics_before


@FORMS
def test_no_metrics_file(repo: Path, form: str) -> None:
    result = run_form(form, repo=repo)
    assert (result.returncode, result.stdout, result.stderr) == (0, WRITTEN, "")
    data = json.loads(summary_file(repo).read_text())
    assert data["entries_total"] == 0 and data["success_rate"] is None and data["average_duration_seconds"] is None


def test_table_format(fixture_repo: Path) -> None:
    result = run_script(METRICS, "--format", "table", repo=fixture_repo)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == WRITTEN + "\n" + (
        "Metric              Value\n"
        "------------------  -------\n"
        "Entries (runs)      5\n"
        "Succeeded           1\n"
        "Failed              4\n"
        "Success rate        20.0%\n"
        "Guardrail coverage  20.0%\n"
        "Average duration    31.4s\n"  # rounded for people; the file keeps 31.3668
        "Median duration     36.0s\n"
        "p95 duration        58.6s\n"
        "Parse errors        0\n"
        "Status failed       4\n"
        "Status succeeded    1\n"
    )
    # The file is written as always, without the table's extra figures.
    assert {k: v for k, v in json.loads(summary_file(fixture_repo).read_text()).items() if k != "generated_at"} == (
        FIXTURE_METRICS_FIGURES
    )


def test_parse_errors_reach_the_file(repo: Path) -> None:
    metrics = repo / ".runs/0001/metrics.json"
    metrics.parent.mkdir(parents=True)
    good = '{"run_id":"a","status":"succeeded","duration_seconds":3,"guardrails_present":true}'
    metrics.write_bytes(b"null\r\n[1]\r\n\r\n" + good.encode() + b"\r\n\x00garbage\r\n")
    result = run_script(METRICS, repo=repo)
    assert result.returncode == 0
    data = json.loads(summary_file(repo).read_text())
    assert data["parse_errors"] == [
        {"error": "Not a JSON object: the line holds null", "raw": "null"},
        {"error": "Not a JSON object: the line holds an array", "raw": "[1]"},
        {"error": "Invalid JSON: Expecting value at column 1", "raw": "\x00garbage"},
    ]
    assert (data["entries_total"], data["success_rate"], data["average_duration_seconds"]) == (1, 1, 3)


@FORMS
@pytest.mark.parametrize("args", [["-h"], ["--help"], ["-h", "--bogus"], ["--summarize", "--help", "--format"]])
def test_help(repo: Path, form: str, args: list[str]) -> None:
    result = run_form(form, *args, repo=repo)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == USAGE_LINE
    assert lines[1].startswith("Writes the metrics summary")
    assert "--format" in result.stdout
    assert not (repo / ".runs").exists()


BAD_ARGS = [
    (["--bogus"], "Unknown option: --bogus"),
    (["--bogus", "-h"], "Unknown option: --bogus"),
    (["--summarize=1"], "Unknown option: --summarize=1"),
    (["--summ"], "Unknown option: --summ"),
    (["summarize"], "Unknown option: summarize"),
    (["--summarize", "-x"], "Unknown option: -x"),
    (["--format"], "--format requires a value"),
    (["--format", ""], "--format requires a value"),
    (["--format", "json"], 'Unsupported format: json. Expected "text" or "table".'),
    (["--format=table"], "Unknown option: --format=table"),
]


@FORMS
@pytest.mark.parametrize(("args", "error"), BAD_ARGS, ids=[" ".join(a) or "empty" for a, _ in BAD_ARGS])
def test_bad_arguments_change_nothing(fixture_repo: Path, form: str, args: list[str], error: str) -> None:
    before = snapshot(fixture_repo)
    result = run_form(form, *args, repo=fixture_repo)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", error + "\n")
    assert snapshot(fixture_repo) == before


def test_roots_from_the_environment(fixture_repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(fixture_repo / ".runs/0001/metrics.json", elsewhere / "metrics.json")
    env = runner_env(fixture_repo, MCP_RUNNER_METRICS_ROOT="../elsewhere", MCP_RUNNER_TASK_ID="0042")
    result = run_script(METRICS, repo=fixture_repo, env=env, cwd=fixture_repo)
    assert (result.returncode, result.stdout) == (0, "Metrics summary written to ../elsewhere/metrics-summary.json\n")
    data = json.loads((elsewhere / "metrics-summary.json").read_text())
    assert (data["task_id"], data["metrics_file"], data["entries_total"]) == ("0042", "../elsewhere/metrics.json", 5)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_metrics(fixture_repo: Path) -> None:
    # -o: take the venv as set up (a fresh clone's `make metrics` would first create it).
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed-stamp", "metrics"],
        cwd=CHECKOUT,
        env=runner_env(fixture_repo),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "scripts/mcp-runner-metrics.js\n" + WRITTEN
    assert json.loads(summary_file(fixture_repo).read_text())["average_duration_seconds"] == 31.3668


def test_exit_status_and_signals_pass_through_node(tmp_path: Path) -> None:
    """The Node form runs the same wrapper and exits as it does (128+n on a signal)."""
    if NODE is None:
        pytest.skip("node is not installed here")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (tmp_path / "package.json").write_text('{"type": "module"}\n')  # a consumer's repo may say so
    shutil.copy(SCRIPTS / METRICS, scripts / METRICS)
    fake = scripts / "_runner-python.sh"
    node_form = [NODE, str(scripts / METRICS)]
    direct_form = [str(scripts / METRICS)]
    cases = [
        ('echo "got: $*"; exit 3', node_form, 3, "got: metrics a b c\n"),
        ('echo "got: $*"; exit 3', direct_form, 3, "got: metrics a b c\n"),
        ("kill -TERM $$", node_form, 128 + 15, ""),
        ("kill -TERM $$", direct_form, -15, ""),  # exec'ed: the caller sees the signal itself
    ]
    for body, command, status, out in cases:
        fake.write_text(f"#!/bin/sh\n{body}\n")
        fake.chmod(0o755)
        result = subprocess.run(
            [*command, "a", "b c"], capture_output=True, text=True, timeout=60, env=dict(os.environ)
        )
        assert (result.returncode, result.stdout) == (status, out)
