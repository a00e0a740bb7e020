"""scripts/mcp-runner-migrate.js as callers run it: real processes, run directly (no
Node needed) and with ``node`` in front, against temp copies of the upstream fixture
(docs/interface.md sections 1 and 9). Expected lines and logs are written out by hand."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CHECKOUT, SCRIPTS, run_script, runner_env, snapshot

from mcp_core import pointers
from mcp_core.paths import locate

MIGRATE = "mcp-runner-migrate.js"
USAGE_LINE = "Usage: scripts/mcp-runner-migrate.js [--dry-run] [--run-id <id>]"
NODE = shutil.which("node")
NO_CANDIDATES = "No legacy MCP runs found to migrate.\n"

# The fixture's legacy directories (real `codex mcp-server` transcripts; manifests
# without run ids), then one old-runner run left in the legacy root, then the
# compatibility pointers of runs already in .runs/0001/mcp (skipped on every pass).
LEGACY = [
    "2025-10-18T13-37-27Z", "2025-10-18T13-38-00Z", "2025-10-18T13-42-22Z", "2025-10-18T13-56-35Z",
    "2025-10-18T14-02-29Z", "2025-10-18T14-13-06Z", "2025-10-18T14-20-17Z", "2025-10-18T14-22-14Z",
    "2025-10-18T14-31-06Z", "2025-10-18T14-36-41Z", "2025-10-18T14-38-23Z", "2025-10-18T14-38-59Z",
    "2025-10-18T14-39-09Z", "2025-10-18T14-39-19Z",
]  # fmt: skip
OLD_RUN = "2025-10-18T16-21-54-691Z-25347"
POINTERS = [
    "2025-10-18T18-26-16-688Z-39463",
    "2025-10-18T18-30-06-976Z-41083",
    "2025-10-18T18-31-38-655Z-41397",
    "2025-10-19T06-30-08-316Z-55446",
    "2025-10-19T06-54-01-535Z-diagnostics",
    "demo-legacy",
]
PLANNED = "planned — Would migrate directory."
SKIPPED = "skipped — Destination already exists; no action taken."
# Printed for a run whose legacy directory is its compatibility pointer; its log
# entry keeps the contract's message (SKIPPED's).
ALREADY = "skipped — Already migrated; its compatibility pointer stays. No action taken."
MIGRATED = "migrated — Migrated successfully."
LOG_LINE = re.compile(
    r"^Migration log written to "
    r"(\.runs/0001/migrations/\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z-(dry-run|migration)\.log)$"
)
OLD_RUN_KEYS = [
    "runner", "script", "status", "commands", "started_at", "updated_at", "completed_at", "run_id",
    "repo_root", "approval_policy", "timeout_seconds", "runner_pid", "runner_log",
]  # fmt: skip
GAINED = ["task_id", "artifact_root", "compat_path", "metrics_recorded", "resume_token", "resume_events"]


def run_node(*args: str, repo: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if NODE is None:
        pytest.skip("node is not installed here; the direct form is tested without it")
    return subprocess.run(
        [NODE, str(SCRIPTS / MIGRATE), *args],
        cwd=repo,
        env=env or runner_env(repo),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def run_form(form: str, *args: str, repo: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if form == "node":
        return run_node(*args, repo=repo, env=env)
    return run_script(MIGRATE, *args, repo=repo, env=env, timeout=120)


FORMS = pytest.mark.parametrize("form", ["direct", "node"])


def split_output(stdout: str) -> tuple[list[str], str]:
    """The per-run lines, and the log's path from the last line."""
    *lines, last = stdout.rstrip("\n").split("\n")
    match = LOG_LINE.match(last)
    assert match, last
    return lines, match.group(1)


def expected_log(repo: Path, dry_run: bool, statuses: list[tuple[str, str, str]], generated_at: str) -> str:
    runs = ",\n".join(
        "    {\n"
        f'      "run_id": "{run_id}",\n'
        f'      "source": ".runs/local-mcp/{run_id}",\n'
        f'      "destination": ".runs/0001/mcp/{run_id}",\n'
        f'      "status": "{status}",\n'
        f'      "message": "{message}"\n'
        "    }"
        for run_id, status, message in statuses
    )
    return (
        "{\n"
        f'  "generated_at": "{generated_at}",\n'
        f'  "dry_run": {"true" if dry_run else "false"},\n'
        f'  "repo_root": "{repo}",\n'
        '  "legacy_root": ".runs/local-mcp",\n'
        '  "task_runs_root": ".runs/0001/mcp",\n'
        f'  "runs": [\n{runs}\n  ]\n'
        "}\n"
    )


def as_statuses(lines: list[str]) -> list[tuple[str, str, str]]:
    result = []
    for line in lines:
        run_id, rest = line.split(": ", 1)
        status, message = rest.split(" — ", 1)
        if f"{status} — {message}" == ALREADY:
            message = SKIPPED.split(" — ", 1)[1]
        result.append((run_id, status, message))
    return result


def without(before: dict[str, Any], after: dict[str, Any], *new: str) -> dict[str, Any]:
    assert set(after) - set(before) == set(new)
    return {k: v for k, v in after.items() if k not in new}


# -- the fixture -----------------------------------------------------------------


@FORMS
def test_dry_run_of_the_fixture(fixture_repo: Path, form: str) -> None:
    before = snapshot(fixture_repo)
    result = run_form(form, "--dry-run", repo=fixture_repo)
    assert (result.returncode, result.stderr) == (0, "")
    lines, log = split_output(result.stdout)
    assert lines == (
        [f"{run_id}: {PLANNED}" for run_id in [*LEGACY, OLD_RUN]] + [f"{run_id}: {ALREADY}" for run_id in POINTERS]
    )
    assert log.endswith("-dry-run.log")
    text = (fixture_repo / log).read_text()
    generated_at = json.loads(text)["generated_at"]
    assert text == expected_log(fixture_repo, True, as_statuses(lines), generated_at)
    assert without(before, snapshot(fixture_repo), log.removeprefix(".runs/").join([".runs/", ""])) == before


def test_real_migration_of_the_fixture_then_again(fixture_repo: Path) -> None:
    runs = fixture_repo / ".runs"
    originals = {run_id: snapshot(runs / "local-mcp" / run_id) for run_id in [*LEGACY, OLD_RUN]}
    legacy_manifests = {
        run_id: json.loads((runs / "local-mcp" / run_id / "manifest.json").read_text()) for run_id in originals
    }
    metrics_before = (runs / "0001/metrics.json").read_bytes()
    pointer_dirs = {run_id: snapshot(runs / "local-mcp" / run_id) for run_id in POINTERS}
    kept_runs = snapshot(runs / "0001" / "mcp")

    result = run_script(MIGRATE, repo=fixture_repo)
    assert (result.returncode, result.stderr) == (0, "")
    lines, log = split_output(result.stdout)
    assert lines == (
        [f"{run_id}: {MIGRATED}" for run_id in [*LEGACY, OLD_RUN]] + [f"{run_id}: {ALREADY}" for run_id in POINTERS]
    )
    text = (fixture_repo / log).read_text()
    assert text == expected_log(fixture_repo, False, as_statuses(lines), json.loads(text)["generated_at"])

    loc = locate({"MCP_RUNNER_REPO_ROOT": str(fixture_repo)}, cwd=fixture_repo)
    for run_id, files in originals.items():
        moved = runs / "0001" / "mcp" / run_id
        # Every file moved as it was, the manifest aside.
        assert {k: v for k, v in snapshot(moved).items() if k != "manifest.json"} == {
            k: v for k, v in files.items() if k != "manifest.json"
        }
        manifest = json.loads((moved / "manifest.json").read_text())
        legacy = legacy_manifests[run_id]
        if run_id == OLD_RUN:
            assert list(manifest) == OLD_RUN_KEYS + GAINED  # updated_at keeps its place
        else:
            assert list(manifest) == [*legacy, *GAINED, "updated_at"]
        assert {k: manifest[k] for k in legacy if k != "updated_at"} == {
            k: v for k, v in legacy.items() if k != "updated_at"
        }
        assert {k: manifest[k] for k in GAINED} == {
            "task_id": "0001",
            "artifact_root": f".runs/0001/mcp/{run_id}",
            "compat_path": f".runs/local-mcp/{run_id}",
            "metrics_recorded": True,
            "resume_token": None,
            "resume_events": [],
        }
        # The pointer left behind.
        pointer = runs / "local-mcp" / run_id
        assert sorted(os.listdir(pointer)) == ["compat.json", "manifest.json"]
        assert os.readlink(pointer / "manifest.json") == f"../../0001/mcp/{run_id}/manifest.json"
        compat = json.loads((pointer / "compat.json").read_text())
        assert list(compat) == ["artifact_root", "manifest", "pointer", "created_at"]
        assert compat["artifact_root"] == f".runs/0001/mcp/{run_id}"
        assert compat["manifest"] == f".runs/0001/mcp/{run_id}/manifest.json"
        assert compat["pointer"] == "symlink"
        assert pointers.resolve_manifest(loc, run_id) == moved / "manifest.json"
    # Pointer directories and the runs already in place are untouched; no metrics line.
    assert {run_id: snapshot(runs / "local-mcp" / run_id) for run_id in POINTERS} == pointer_dirs
    after_runs = snapshot(runs / "0001" / "mcp")
    assert {k: v for k, v in after_runs.items() if k in kept_runs} == kept_runs
    assert (runs / "0001/metrics.json").read_bytes() == metrics_before
    assert not (runs / "local-mcp" / ".mcp-migrate-journal.json").exists()

    # Again: everything is a pointer now, skipped; nothing but a new log changes.
    before = snapshot(fixture_repo)
    again = run_script(MIGRATE, repo=fixture_repo)
    lines, log = split_output(again.stdout)
    assert (again.returncode, again.stderr) == (0, "")
    assert lines == [f"{run_id}: {ALREADY}" for run_id in sorted([*LEGACY, OLD_RUN, *POINTERS])]
    assert without(before, snapshot(fixture_repo), log) == before


def test_a_dry_run_imports_neither_the_sdk_nor_msgspec(fixture_repo: Path) -> None:
    """migrate is a fast path: it reads legacy manifests with json, not the metrics decoder."""
    program = (
        "import sys, io\n"
        "from mcp_core.commands.migrate import main\n"
        "sys.stdout = io.StringIO()\n"
        "code = main(['--dry-run'])\n"
        "sys.stdout = sys.__stdout__\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'mcp', 'msgspec', 'anyio'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=CHECKOUT, env=runner_env(fixture_repo),
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert result.stdout.strip() == "0 []", result.stdout + result.stderr


@FORMS
def test_one_run_id(fixture_repo: Path, form: str) -> None:
    result = run_form(form, "--run-id", OLD_RUN, repo=fixture_repo)
    assert (result.returncode, result.stderr) == (0, "")
    lines, log = split_output(result.stdout)
    assert lines == [f"{OLD_RUN}: {MIGRATED}"]
    assert json.loads((fixture_repo / log).read_text())["runs"] == [
        {
            "run_id": OLD_RUN,
            "source": f".runs/local-mcp/{OLD_RUN}",
            "destination": f".runs/0001/mcp/{OLD_RUN}",
            "status": "migrated",
            "message": "Migrated successfully.",
        }
    ]
    assert (fixture_repo / ".runs/0001/mcp" / OLD_RUN / "01-npm-run-build.json").is_file()
    assert (fixture_repo / ".runs/local-mcp" / LEGACY[0] / "mcp-server.log").is_file()  # the others stay


@pytest.mark.parametrize(
    "args", [["--run-id", "no-such-run"], ["--run-id", "--dry-run"], ["--dry-run", "--run-id", "x"]]
)
def test_no_candidates_writes_nothing(fixture_repo: Path, args: list[str]) -> None:
    before = snapshot(fixture_repo)
    result = run_script(MIGRATE, *args, repo=fixture_repo)
    assert (result.returncode, result.stdout, result.stderr) == (0, NO_CANDIDATES, "")
    assert snapshot(fixture_repo) == before


@FORMS
@pytest.mark.parametrize("dry", [False, True])
def test_no_legacy_root(repo: Path, form: str, dry: bool) -> None:
    result = run_form(form, *(["--dry-run"] if dry else []), repo=repo)
    assert (result.returncode, result.stdout, result.stderr) == (0, NO_CANDIDATES, "")
    (repo / ".runs" / "local-mcp").mkdir(parents=True)
    (repo / ".runs" / "local-mcp" / "just-a-file").write_text("x")
    result = run_form(form, *(["--dry-run"] if dry else []), repo=repo)
    assert (result.returncode, result.stdout) == (0, NO_CANDIDATES)
    assert sorted(p.name for p in (repo / ".runs").iterdir()) == ["local-mcp"]


# -- bad manifests and hostile trees (docs/interface.md section 9) ----------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b'{"mode": "mcp",',
            "Manifest is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 16)",
        ),
        (b"null", "Manifest is not a JSON object (it holds null)"),
        (b"[]", "Manifest is not a JSON object (it holds an array)"),
        (b"\xff\xfe\x00garbage", "Manifest is not valid JSON (Expecting value at line 1 column 1)"),
    ],
)
def test_an_invalid_manifest_is_an_error_and_nothing_moves(fixture_repo: Path, raw: bytes, message: str) -> None:
    (fixture_repo / ".runs/local-mcp" / LEGACY[0] / "manifest.json").write_bytes(raw)
    before = snapshot(fixture_repo)
    result = run_script(MIGRATE, "--run-id", LEGACY[0], repo=fixture_repo)
    lines, log = split_output(result.stdout)
    assert (result.returncode, result.stderr) == (0, "")
    assert lines == [f"{LEGACY[0]}: error — {message}; nothing moved."]
    assert without(before, snapshot(fixture_repo), log) == before
    assert json.loads((fixture_repo / log).read_text())["runs"][0]["status"] == "error"


def test_errors_do_not_stop_the_pass(fixture_repo: Path) -> None:
    (fixture_repo / ".runs/local-mcp" / LEGACY[1] / "manifest.json").write_text("{broken")
    (fixture_repo / ".runs/local-mcp" / LEGACY[2] / "manifest.json").unlink()
    result = run_script(MIGRATE, repo=fixture_repo)
    lines, _log = split_output(result.stdout)
    assert result.returncode == 0
    statuses = {line.split(": ", 1)[0]: line.split(": ", 1)[1].split(" — ")[0] for line in lines}
    assert statuses[LEGACY[1]] == "error" and statuses[LEGACY[2]] == "error" and statuses[LEGACY[3]] == "migrated"
    assert lines[2] == (
        f"{LEGACY[2]}: error — Manifest missing: ENOENT: no such file or directory, "
        f"access '.runs/local-mcp/{LEGACY[2]}/manifest.json'"
    )
    assert (fixture_repo / ".runs/local-mcp" / LEGACY[1] / "mcp-server.log").is_file()


def test_hostile_symlinks_are_never_followed(fixture_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text('{"mode": "mcp"}')
    (outside / "secret").write_text("keep me")
    legacy = fixture_repo / ".runs/local-mcp"
    (legacy / "zz-link-out").symlink_to(outside)  # a directory symlink leading out of .runs
    (legacy / "zz-loop").symlink_to(legacy / "zz-loop")  # a symlink loop
    (legacy / "zz-manifest-out").mkdir()
    (legacy / "zz-manifest-out" / "manifest.json").symlink_to(outside / "manifest.json")
    (legacy / "zz-dangling").mkdir()
    (legacy / "zz-dangling" / "manifest.json").symlink_to(tmp_path / "gone.json")
    outside_before = snapshot(outside)
    before = snapshot(fixture_repo)
    result = run_script(MIGRATE, repo=fixture_repo)
    lines, _log = split_output(result.stdout)
    assert result.returncode == 0
    tail = lines[-2:]
    assert tail[0].startswith("zz-dangling: error — Manifest missing: ENOENT: no such file or directory, access ")
    assert tail[1] == (
        f"zz-manifest-out: error — Manifest is a symbolic link to a file outside .runs ({outside / 'manifest.json'}); "
        "nothing moved."
    )
    assert not any(line.startswith(("zz-link-out", "zz-loop")) for line in lines)
    assert snapshot(outside) == outside_before
    after = snapshot(fixture_repo)
    for name in ["zz-link-out", "zz-loop", "zz-manifest-out/manifest.json", "zz-dangling/manifest.json"]:
        assert after[f".runs/local-mcp/{name}"] == before[f".runs/local-mcp/{name}"]
    assert not (fixture_repo / ".runs/0001/mcp/zz-manifest-out").exists()
    only = run_script(MIGRATE, "--run-id", "zz-link-out", repo=fixture_repo)
    assert (only.returncode, only.stdout) == (0, NO_CANDIDATES)


# -- arguments -------------------------------------------------------------------


@FORMS
@pytest.mark.parametrize("args", [["-h"], ["--help"], ["-h", "--bogus"], ["--dry-run", "--help", "--run-id"]])
def test_help(fixture_repo: Path, form: str, args: list[str]) -> None:
    before = snapshot(fixture_repo)
    result = run_form(form, *args, repo=fixture_repo)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0] == USAGE_LINE
    assert lines[1].startswith("Moves legacy .runs/local-mcp/<run-id> directories")
    assert snapshot(fixture_repo) == before


BAD_ARGS = [
    (["--bogus"], "Unknown option: --bogus"),
    (["--bogus", "-h"], "Unknown option: --bogus"),
    (["--dry-run", "extra"], "Unknown option: extra"),
    (["--dry"], "Unknown option: --dry"),
    (["--run-id=x"], "Unknown option: --run-id=x"),
    (["--run-id"], "--run-id requires a value."),
    (["--run-id", ""], "--run-id requires a value."),
    (["--dry-run", "--run-id"], "--run-id requires a value."),
    (["--run-id", "../../../victim"], "Invalid run id: '../../../victim' (expected a single plain path segment)."),
    (["--run-id", ".."], "Invalid run id: '..' (expected a single plain path segment)."),
    (["--run-id", "a/b", "--bogus"], "Invalid run id: 'a/b' (expected a single plain path segment)."),
    (["--run-id", "x", "--bogus"], "Unknown option: --bogus"),
    (
        ["--dry-run", "--run-id", "--bogus", "--run-id", "../x"],
        "Invalid run id: '../x' (expected a single plain path segment).",
    ),
    (["--bogus", "--run-id", "../x"], "Unknown option: --bogus"),
]


@FORMS
@pytest.mark.parametrize(("args", "error"), BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_bad_arguments_change_nothing(fixture_repo: Path, form: str, args: list[str], error: str) -> None:
    victim = fixture_repo.parent / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "manifest.json").write_text("{}")
    before = snapshot(fixture_repo.parent)
    result = run_form(form, *args, repo=fixture_repo)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", error + "\n")
    assert snapshot(fixture_repo.parent) == before


# -- a pass killed half-way, then run again -------------------------------------------


@pytest.mark.parametrize("moved_before_kill", [1, 100, 300])
def test_a_killed_pass_is_finished_by_the_next(repo: Path, moved_before_kill: int) -> None:
    legacy = repo / ".runs" / "local-mcp"
    count = 400
    for n in range(count):
        directory = legacy / f"run-{n:04d}"
        directory.mkdir(parents=True)
        (directory / "manifest.json").write_text(json.dumps({"mode": "mcp", "n": n}))
        (directory / "data.txt").write_text(str(n))
    process = subprocess.Popen(
        [str(SCRIPTS / MIGRATE)],
        cwd=repo,
        env=runner_env(repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    runs_root = repo / ".runs" / "0001" / "mcp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if runs_root.is_dir() and len(os.listdir(runs_root)) >= moved_before_kill:
            break
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    result = run_script(MIGRATE, repo=repo, timeout=300)
    assert result.returncode == 0
    lines, _log = split_output(result.stdout)
    assert len(lines) == count and all(line.endswith((MIGRATED, ALREADY)) for line in lines)
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)}, cwd=repo)
    for n in range(count):
        run_id = f"run-{n:04d}"
        manifest = json.loads((runs_root / run_id / "manifest.json").read_text())
        assert list(manifest) == ["mode", "n", *GAINED, "updated_at"] and manifest["n"] == n
        assert (runs_root / run_id / "data.txt").read_text() == str(n)
        assert sorted(os.listdir(runs_root / run_id)) == ["data.txt", "manifest.json"]
        assert sorted(os.listdir(legacy / run_id)) == ["compat.json", "manifest.json"]
        assert pointers.resolve_manifest(loc, run_id) == runs_root / run_id / "manifest.json"
        assert os.path.realpath(legacy / run_id / "manifest.json") == str(runs_root / run_id / "manifest.json")
    assert sorted(os.listdir(legacy)) == [f"run-{n:04d}" for n in range(count)]  # no journal, no leftovers


def test_progress_shows_on_stderr_only_when_it_is_a_terminal(repo: Path) -> None:
    import pty

    legacy = repo / ".runs" / "local-mcp"
    for n in range(600):  # progress.MIN_TOTAL is 500
        (legacy / f"run-{n:04d}").mkdir(parents=True)
        (legacy / f"run-{n:04d}" / "manifest.json").write_text('{"run_id": "x"}')
    leader, follower = pty.openpty()
    try:
        with subprocess.Popen(
            [str(SCRIPTS / MIGRATE), "--dry-run"], cwd=repo, env=runner_env(repo),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower,
        ) as process:
            os.close(follower)
            follower = -1
            seen = b""
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the process closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            stdout = process.stdout.read() if process.stdout else b""
            assert process.wait(timeout=120) == 0
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert b"Checking runs: 600/600 (100%)" in seen
    assert stdout.decode().count(" — Would migrate directory.\n") == 600  # stdout as without a terminal
    plain = run_script(MIGRATE, "--dry-run", repo=repo)
    assert (plain.returncode, plain.stderr) == (0, "")
