"""scripts/mcp-runner-list.sh as people and scripts run it: real processes, real trees.

The overview reads manifests only, so every test also proves that nothing under
``.runs/`` changed. The 10,000-run tree is built once per session.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CHECKOUT, SCRIPTS, in_repo, run_script, run_script_on_terminal, runner_env, snapshot
from gen_runs import GeneratedRun, generate

from mcp_core.commands.list import USAGE, main
from mcp_core.jsfmt import parse_timestamp_ms

SCRIPT = "mcp-runner-list.sh"
HEADERS = ["RUN ID", "STATUS", "PASSED", "STARTED", "DURATION", "LAST ACTIVITY", "SUMMARY"]
FIXTURE_ORDER = [
    "2025-10-19T06-54-01-535Z-diagnostics",
    "2025-10-19T06-30-08-316Z-55446",
    "2025-10-18T18-31-38-655Z-41397",
    "2025-10-18T18-30-06-976Z-41083",
    "2025-10-18T18-26-16-688Z-39463",
    "demo-legacy",
]


def parse_table(stdout: str) -> tuple[list[dict[str, str]], list[str]]:
    """The rows of a tabulate 'simple' table (by the column spans of its dashes), and the lines after it."""
    lines = stdout.splitlines()
    assert lines[0].split("  ")[0] == "RUN ID"
    spans = [match.span() for match in re.finditer(r"-+", lines[1])]
    header = [lines[0][start:end].strip() for start, end in spans]
    assert header == HEADERS
    rows = []
    rest = []
    for line in lines[2:]:
        if not line.startswith(("Showing ",)) and line.strip():
            rows.append({name: line[start:end].strip() for name, (start, end) in zip(header, spans, strict=True)})
        else:
            rest.append(line)
    return rows, rest


def list_json(repo: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    result = run_script(SCRIPT, "--format", "json", *args, repo=repo, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


# ----------------------------------------------------------------- the upstream fixture


def test_fixture_table(fixture_repo: Path) -> None:
    before = snapshot(fixture_repo)
    result = run_script(SCRIPT, repo=fixture_repo)
    assert (result.returncode, result.stderr) == (0, "")
    rows, rest = parse_table(result.stdout)
    assert rest == []
    assert [row["RUN ID"] for row in rows] == FIXTURE_ORDER
    by_id = {row["RUN ID"]: row for row in rows}
    assert by_id["2025-10-18T18-26-16-688Z-39463"] == {
        "RUN ID": "2025-10-18T18-26-16-688Z-39463",
        "STATUS": "succeeded",
        "PASSED": "4/4",
        "STARTED": "2025-10-18T18:26:16.689Z",
        "DURATION": "53.7s",
        "LAST ACTIVITY": by_id["2025-10-18T18-26-16-688Z-39463"]["LAST ACTIVITY"],
        "SUMMARY": "",
    }
    # Ended runs: when they ended, never a heartbeat age that grows for ever.
    assert all(re.fullmatch(r"ended \d+d \d\dh ago", row["LAST ACTIVITY"]) for row in rows)
    assert by_id["2025-10-19T06-30-08-316Z-55446"]["SUMMARY"] == "Command exited with status 2"
    assert by_id["2025-10-19T06-54-01-535Z-diagnostics"]["SUMMARY"].startswith("Guardrail command failed; re-run")
    assert by_id["2025-10-19T06-54-01-535Z-diagnostics"]["SUMMARY"].endswith("…")  # cut at 60 characters
    assert len(by_id["2025-10-19T06-54-01-535Z-diagnostics"]["SUMMARY"]) == 60
    assert by_id["demo-legacy"]["DURATION"] == "10m 00s"
    assert by_id["2025-10-18T18-31-38-655Z-41397"]["PASSED"] == "0/1"
    assert snapshot(fixture_repo) == before


def test_fixture_json(fixture_repo: Path) -> None:
    before = snapshot(fixture_repo)
    listing = list_json(fixture_repo)
    assert list(listing) == ["task_id", "runs_root", "listed_at", "runs_total", "runs", "skipped"]
    assert (listing["task_id"], listing["runs_root"], listing["runs_total"]) == ("0001", ".runs/0001/mcp", 6)
    assert listing["skipped"] == []
    assert [run["run_id"] for run in listing["runs"]] == FIXTURE_ORDER
    assert parse_timestamp_ms(listing["listed_at"]) is not None
    first = listing["runs"][4]
    assert first == {
        "run_id": "2025-10-18T18-26-16-688Z-39463",
        "status": "succeeded",
        "status_detail": None,
        "stale": False,
        "commands_passed": 4,
        "commands_failed": 0,
        "commands_total": 4,
        "started_at": "2025-10-18T18:26:16.689Z",
        "completed_at": "2025-10-18T18:27:10.396Z",
        "duration_seconds": 53.707,
        "heartbeat_age_seconds": None,  # it has ended: its heartbeat says nothing more
        "summary": "",
        "manifest": ".runs/0001/mcp/2025-10-18T18-26-16-688Z-39463/manifest.json",
        "latest_event": None,
    }
    assert listing["runs"][0]["heartbeat_age_seconds"] is None
    assert snapshot(fixture_repo) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--status", "failed"], FIXTURE_ORDER[:4]),
        (["--status", "succeeded"], [FIXTURE_ORDER[4], FIXTURE_ORDER[5]]),
        (["--status", "cancelled,succeeded"], [FIXTURE_ORDER[4], FIXTURE_ORDER[5]]),
        (["--status", "in_progress"], []),
        (["--limit", "2"], FIXTURE_ORDER[:2]),
        (["--status", "failed", "--limit", "3"], FIXTURE_ORDER[:3]),
        (["--limit", "100"], FIXTURE_ORDER),
    ],
)
def test_fixture_filters(fixture_repo: Path, args: list[str], expected: list[str]) -> None:
    listing = list_json(fixture_repo, *args)
    assert [run["run_id"] for run in listing["runs"]] == expected


def test_runs_total_counts_matches_before_the_limit(fixture_repo: Path) -> None:
    listing = list_json(fixture_repo, "--status", "failed", "--limit", "1")
    assert (len(listing["runs"]), listing["runs_total"]) == (1, 4)


def test_table_limit_footer(fixture_repo: Path) -> None:
    result = run_script(SCRIPT, "--limit", "2", repo=fixture_repo)
    rows, rest = parse_table(result.stdout)
    assert [row["RUN ID"] for row in rows] == FIXTURE_ORDER[:2]
    assert rest == ["Showing the 2 newest of 6 runs (--limit N to change)."]


def test_empty_results(fixture_repo: Path) -> None:
    result = run_script(SCRIPT, "--status", "queued", repo=fixture_repo)
    expected = "No runs match --status (6 runs in .runs/0001/mcp).\n"
    assert (result.returncode, result.stdout, result.stderr) == (0, expected, "")
    result = run_script(SCRIPT, "--task", "0042", repo=fixture_repo)
    assert (result.returncode, result.stdout, result.stderr) == (0, "No runs to list in .runs/0042/mcp.\n", "")


def test_task_flag_overrides_the_environment(fixture_repo: Path) -> None:
    env = runner_env(fixture_repo, MCP_RUNNER_TASK_ID="0002")
    assert list_json(fixture_repo, env=env)["runs"] == []
    listing = list_json(fixture_repo, "--task", "0001", env=env)
    assert (listing["task_id"], len(listing["runs"])) == ("0001", 6)


def test_runs_root_from_the_environment(fixture_repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (fixture_repo / ".runs" / "0001" / "mcp").rename(elsewhere)
    env = runner_env(fixture_repo, MCP_RUNNER_TASK_RUNS_ROOT=str(elsewhere))
    listing = list_json(fixture_repo, env=env)
    assert listing["runs_root"] == os.path.relpath(elsewhere, fixture_repo)
    assert len(listing["runs"]) == 6


def test_unreadable_manifests_are_skipped_with_one_warning_each(fixture_repo: Path) -> None:
    runs = fixture_repo / ".runs" / "0001" / "mcp"
    (runs / "2025-10-20T00-00-00-000Z-1").mkdir()
    (runs / "2025-10-20T00-00-00-000Z-1" / "manifest.json").write_text("{half", encoding="utf-8")
    (runs / "2025-10-21T00-00-00-000Z-2").mkdir()
    (runs / "2025-10-21T00-00-00-000Z-2" / "manifest.json").write_text("[]", encoding="utf-8")
    before = snapshot(fixture_repo)
    result = run_script(SCRIPT, repo=fixture_repo)
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "Warning: skipping .runs/0001/mcp/2025-10-20T00-00-00-000Z-1/manifest.json: not valid JSON: "
        "Expecting property name enclosed in double quotes at line 1 column 2",
        "Warning: skipping .runs/0001/mcp/2025-10-21T00-00-00-000Z-2/manifest.json: not a JSON object",
    ]
    rows, _ = parse_table(result.stdout)
    assert [row["RUN ID"] for row in rows] == FIXTURE_ORDER
    json_result = run_script(SCRIPT, "--format", "json", repo=fixture_repo)
    assert json_result.stderr == result.stderr
    assert json.loads(json_result.stdout)["skipped"] == [
        {
            "manifest": ".runs/0001/mcp/2025-10-20T00-00-00-000Z-1/manifest.json",
            "reason": "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        },
        {"manifest": ".runs/0001/mcp/2025-10-21T00-00-00-000Z-2/manifest.json", "reason": "not a JSON object"},
    ]
    assert snapshot(fixture_repo) == before


# ----------------------------------------------------------------- generated runs


def test_stale_runs_are_shown_and_never_marked(repo: Path) -> None:
    generated = generate(repo, 10, seed=2)
    stale_run, live_run = generated[-2], generated[-1]
    before = snapshot(repo)
    result = run_script(SCRIPT, repo=repo)
    rows, _ = parse_table(result.stdout)
    statuses = {row["RUN ID"]: row["STATUS"] for row in rows}
    assert statuses[stale_run.run_id] == "in_progress (STALE)"
    assert statuses[live_run.run_id] == "in_progress"
    assert [row["RUN ID"] for row in rows] == [g.run_id for g in reversed(generated)]
    activity = {row["RUN ID"]: row["LAST ACTIVITY"] for row in rows}
    assert re.fullmatch(r"heartbeat 45m 0\ds ago", activity[stale_run.run_id])
    assert re.fullmatch(r"heartbeat \d+\.\ds ago", activity[live_run.run_id])
    for run in generated:
        ended = run.status in ("succeeded", "failed", "cancelled")
        assert activity[run.run_id].startswith("ended " if ended else "heartbeat "), run
    listed = {run["run_id"]: run for run in list_json(repo)["runs"]}
    assert all((listed[g.run_id]["heartbeat_age_seconds"] is None) == (g.status not in ("in_progress", "queued"))
               for g in generated)
    stale_only = list_json(repo, "--status", "stale")
    assert [run["run_id"] for run in stale_only["runs"]] == [stale_run.run_id]
    assert stale_only["runs"][0]["stale"] is True
    assert stale_only["runs"][0]["status_detail"] is None  # poll would mark it; list never does
    assert snapshot(repo) == before


def test_terminal_escapes_in_summaries_are_neutralised(repo: Path) -> None:
    generated = generate(repo, 3, seed=1)
    manifest_path = repo / ".runs" / "0001" / "mcp" / generated[0].run_id / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["summary"] = "\x1b]0;pwned\x07\x1b[2Jcleared"
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    result = run_script(SCRIPT, repo=repo)
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b]0;pwned\\x07\\x1b[2Jcleared" in result.stdout
    assert list_json(repo)["runs"][-1]["summary"] == "\x1b]0;pwned\x07\x1b[2Jcleared"  # JSON keeps it, escaped


def test_fast_path_imports(fixture_repo: Path) -> None:
    """JSON output never imports tabulate; neither form imports the MCP SDK or msgspec (the
    metrics summary's decoder)."""
    program = (
        "import sys, io\n"
        "from mcp_core.commands.list import main\n"
        "sys.stdout = io.StringIO()\n"
        "code = main(sys.argv[1:])\n"
        "sys.stdout = sys.__stdout__\n"
        "print(code, 'tabulate' in sys.modules, any(m == 'mcp' or m.startswith('mcp.') for m in sys.modules),\n"
        "      'msgspec' in sys.modules)\n"
    )
    env = runner_env(fixture_repo)
    for args, expected in ((["--format", "json"], "0 False False False"), ([], "0 True False False")):
        result = subprocess.run(
            [sys.executable, "-c", program, *args],
            cwd=CHECKOUT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert result.stdout.strip() == expected


# ----------------------------------------------------------------- 10,000 runs

TEN_THOUSAND = 10_000


@pytest.fixture(scope="session")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[GeneratedRun]]]:
    """10,000 runs, manifests only (what the overview reads), shaped as the runner writes them.

    In memory (/dev/shm) where there is one: 20,000 file creations on a busy
    disk can take longer than everything else in this file together.
    """
    shm = Path("/dev/shm")
    in_memory = shm.is_dir() and os.access(shm, os.W_OK)
    base = Path(tempfile.mkdtemp(prefix="mcp-runner-list-", dir=shm)) if in_memory else tmp_path_factory.mktemp("big")
    repo = base / "repo"
    repo.mkdir()
    try:
        yield repo, generate(repo, TEN_THOUSAND, seed=11, artifacts=False, spacing_seconds=600)
    finally:
        if in_memory:
            shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_ten_thousand_runs(big_tree: tuple[Path, list[GeneratedRun]]) -> None:
    repo, generated = big_tree
    newest_first = [g.run_id for g in reversed(generated)]
    before = snapshot(repo / ".runs")

    table = run_script(SCRIPT, repo=repo)
    assert (table.returncode, table.stderr) == (0, "")
    rows, rest = parse_table(table.stdout)
    assert [row["RUN ID"] for row in rows] == newest_first[:50]
    assert rest == [f"Showing the 50 newest of {TEN_THOUSAND} runs (--limit N to change)."]

    failed = list_json(repo, "--status", "failed")
    expected_failed = [g.run_id for g in reversed(generated) if g.status == "failed"]
    assert failed["runs_total"] == len(expected_failed) > 1000
    assert [run["run_id"] for run in failed["runs"]] == expected_failed

    counts = Counter(g.status for g in generated)
    limited = list_json(repo, "--status", "succeeded,cancelled", "--limit", "5")
    assert limited["runs_total"] == counts["succeeded"] + counts["cancelled"]
    assert [run["run_id"] for run in limited["runs"]] == [
        g.run_id for g in reversed(generated) if g.status in ("succeeded", "cancelled")
    ][:5]

    # A reader that stops early (`| head -1`) gets no traceback on stderr.
    piped = subprocess.run(
        ["bash", "-c", f"'{SCRIPTS / SCRIPT}' --limit {TEN_THOUSAND} | head -1"],
        cwd=repo, env=runner_env(repo), capture_output=True, text=True, timeout=60,
    )
    assert (piped.stdout.split(), piped.stderr) == (" ".join(HEADERS).split(), "")

    assert snapshot(repo / ".runs") == before


@pytest.mark.slow
def test_progress_shows_on_a_terminal_and_is_erased(big_tree: tuple[Path, list[GeneratedRun]]) -> None:
    """stderr on a terminal: the reading is counted on one redrawn line, erased before the
    table; the table itself (stdout) is what it is without a terminal (test_ten_thousand_runs
    holds stderr empty there)."""
    repo, generated = big_tree
    code, stdout, terminal = run_script_on_terminal(SCRIPT, repo=repo)
    assert code == 0
    rows, _ = parse_table(stdout)
    assert [row["RUN ID"] for row in rows] == [g.run_id for g in reversed(generated)][:50]
    assert terminal.startswith(f"\r\x1b[KReading runs: 0/{TEN_THOUSAND} (0%)")
    assert terminal.endswith(f"\r\x1b[KReading runs: {TEN_THOUSAND}/{TEN_THOUSAND} (100%)\r\x1b[K")


# ----------------------------------------------------------------- the command line


def test_help(repo: Path) -> None:
    for flag in ("-h", "--help"):
        result = run_script(SCRIPT, flag, repo=repo)
        assert (result.returncode, result.stdout, result.stderr) == (0, USAGE, "")
    assert USAGE.splitlines()[0] == (
        "Usage: scripts/mcp-runner-list.sh [--status S] [--limit N] [--task ID] [--format table|json]"
    )
    assert run_script(SCRIPT, "-h", "--bogus", repo=repo).returncode == 0  # -h acts where it appears


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "Unknown option for list: --bogus"),
        (["extra"], "Unknown option for list: extra"),
        (["--bogus", "-h"], "Unknown option for list: --bogus"),
        (["--limit=3"], "Unknown option for list: --limit=3"),
        (["--lim", "3"], "Unknown option for list: --lim"),
        (["--limit"], "--limit requires a numeric value"),
        (["--limit", ""], "--limit requires a numeric value"),
        (["--limit", "abc"], "--limit requires a numeric value"),
        (["--limit", "0"], "--limit must be a positive number"),
        (["--limit", "-3"], "--limit must be a positive number"),
        (["--limit", "inf"], "--limit requires a numeric value"),
        (["--limit", "2.5"], "--limit requires a whole number"),
        (["--format"], "--format requires a value"),
        (["--format", "xml"], 'Unsupported format: xml. Expected "table" or "json".'),
        (["--format", "text"], 'Unsupported format: text. Expected "table" or "json".'),
        (["--status"], "--status requires a value"),
        (
            ["--status", "done"],
            "Unsupported status: done. Expected one of: queued, in_progress, succeeded, failed, cancelled, stale.",
        ),
        (["--task"], "--task requires a value"),
        (["--task", "../../etc"], "Invalid task id: '../../etc' (expected letters, digits, '.', '_' or '-')."),
        (["--task", "a/b"], "Invalid task id: 'a/b' (expected letters, digits, '.', '_' or '-')."),
        (["--limit", "--format"], "--limit requires a numeric value"),
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
    [
        (["--bogus"], "Unknown option for list: --bogus"),
        (["--limit", "abc"], "--limit requires a numeric value"),
        (["--task", "../../etc"], "Invalid task id: '../../etc' (expected letters, digits, '.', '_' or '-')."),
    ],
)
def test_bad_input_as_a_process(runs_repo: Path, args: list[str], message: str) -> None:
    before = snapshot(runs_repo)
    result = run_script(SCRIPT, *args, repo=runs_repo)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message + "\n")
    assert snapshot(runs_repo) == before


def test_bad_task_id_from_the_environment(fixture_repo: Path) -> None:
    result = run_script(SCRIPT, repo=fixture_repo, env=runner_env(fixture_repo, MCP_RUNNER_TASK_ID="../x"))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "Invalid task id: '../x' (expected letters, digits, '.', '_' or '-').\n"
