"""Hostile and broken input, one test each: the real CLIs (scripts/) as callers run
them. Each refusal is one clear line on stderr, a non-zero exit, and nothing on
disk changed that should not be (``snapshot``). Where the right answer is to
carry on (poll of a manifest with missing fields, the metrics summary of a
metrics.json holding garbage) the test says what is shown instead.

A NUL byte cannot be passed in argv (execve ends the string there), so run ids
with NUL are tried on the core functions every command goes through.

The read-only and full-disk cases need a read-only bind mount and a 64 KiB
tmpfs: tests run as root in CI, where chmod stops nobody. Where mounting is not
permitted they are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_script, runner_env, snapshot

from mcp_core import manifest as manifest_mod
from mcp_core import metrics, pointers, store, tokens
from mcp_core.commands import cancel, resume
from mcp_core.errors import RunnerError
from mcp_core.jsfmt import dumps_compact
from mcp_core.paths import locate, validate_run_id

RUN_ID = "2026-01-02T03-04-05-678Z-4242"
STALE = "2020-01-01T00:00:00.000Z"


def env_of(repo: Path, **extra: str) -> dict[str, str]:
    # A server that cannot start: a resume that wrongly went through would end at once.
    return runner_env(repo, MCP_RUNNER_SERVER="/bin/false", **extra)


def make_run(repo: Path, run_id: str = RUN_ID, **fields: Any) -> Path:
    """A run as start leaves it, its worker long gone and its heartbeat stale; the manifest path."""
    loc = locate(env_of(repo))
    run_dir = loc.run_dir(run_id)
    run_dir.mkdir(parents=True)
    token = tokens.new_token()
    record = manifest_mod.new_manifest(
        loc, run_id, ["echo one"], approval_policy="never", timeout_seconds=60, now=STALE, resume_token=token
    )
    record.update({"status": "in_progress", "runner_pid": None, **fields})
    store.write_json(run_dir / "manifest.json", record)
    tokens.write_token_file(run_dir, token)
    store.atomic_write_text(run_dir / ".heartbeat", STALE + "\n")
    (run_dir / "runner.log").touch()
    pointers.create_pointer(loc, run_id, STALE)
    return run_dir / "manifest.json"


def one_error_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    return result.stderr


# --- run ids ------------------------------------------------------------------------

HOSTILE_IDS = {
    "slash": "a/b",
    "dot-dot": "..",
    "traversal": "../victim",
    "newline": "a\nb",
    "absolute": "/etc",
    "long": "x" * 300,
    "dot": ".",
}

COMMANDS = {
    "poll": lambda rid: ("mcp-runner-poll.sh", rid, "--format", "json"),
    "resume": lambda rid: ("mcp-runner-start.sh", "--resume", rid),
    "cancel": lambda rid: ("mcp-runner-cancel.sh", rid),
    "migrate": lambda rid: ("mcp-runner-migrate.js", "--run-id", rid),
    "list": lambda rid: ("mcp-runner-list.sh", "--task", rid),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", sorted(HOSTILE_IDS))
def test_hostile_run_id_is_refused(tmp_path: Path, kind: str, command: str) -> None:
    repo = tmp_path / "repo"
    # What the old runner read and rewrote for `poll ../victim`: a stale manifest
    # beside the runs root, and one at an absolute path.
    make_run(repo)
    victim = repo / ".runs" / "0001" / "victim" / "manifest.json"
    victim.parent.mkdir(parents=True)
    victim.write_text(json.dumps({"run_id": "victim", "status": "in_progress", "heartbeat_at": STALE}))
    before = snapshot(tmp_path)
    run_id = HOSTILE_IDS[kind]
    if kind == "absolute":
        run_id = str(victim.parent)
    result = run_script(*COMMANDS[command](run_id), repo=repo, env=env_of(repo))
    line = one_error_line(result, "Invalid task id" if command == "list" else "Invalid run id")
    assert "\n" not in line[:-1]
    assert result.stdout == ""
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("run_id", ["a\x00b", "\x00", "../\x00", RUN_ID + "\x00"])
def test_nul_in_a_run_id_is_refused_by_the_core(tmp_path: Path, run_id: str) -> None:
    """argv cannot hold NUL: every command's own entry points get it instead."""
    repo = tmp_path / "repo"
    make_run(repo)
    loc = locate(env_of(repo))
    before = snapshot(tmp_path)
    calls = [
        lambda: validate_run_id(run_id),
        lambda: loc.run_dir(run_id),
        lambda: loc.pointer_dir(run_id),
        lambda: pointers.resolve_manifest(loc, run_id),
        lambda: resume.resume_run(loc, resume.Request(run_id, None, "cli", "r", False), env_of(repo)),
        lambda: cancel.cancel_run(loc, run_id, 1.0),
    ]
    for call in calls:
        with pytest.raises(RunnerError) as refused:
            call()
        assert "Invalid run id" in refused.value.message and "\n" not in refused.value.message
        assert "\x00" not in refused.value.message  # shown escaped (repr), never raw
    assert snapshot(tmp_path) == before


# --- broken manifests -----------------------------------------------------------------

UNREADABLE = {
    "truncated": (b'{"run_id": "x", "status": "in_pro', "not valid JSON"),
    "not-json": (b"hello, world\n", "not valid JSON"),
    "binary": (bytes(range(256)) * 4, "not valid JSON"),
    "empty-file": (b"", "not valid JSON"),
    "nested-too-deep": (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    "array": (b"[1, 2, 3]\n", "not a JSON object"),
    "string": (b'"a manifest"\n', "not a JSON object"),
    "number": (b"42\n", "not a JSON object"),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
@pytest.mark.parametrize("command", ["poll", "poll-json", "resume", "cancel"])
def test_unreadable_manifest_is_refused(tmp_path: Path, kind: str, command: str) -> None:
    repo = tmp_path / "repo"
    path = make_run(repo)
    content, poll_says = UNREADABLE[kind]
    path.write_bytes(content)
    before = snapshot(repo)
    args = {
        "poll": ("mcp-runner-poll.sh", RUN_ID),
        "poll-json": ("mcp-runner-poll.sh", RUN_ID, "--format", "json"),
        "resume": ("mcp-runner-start.sh", "--resume", RUN_ID),
        "cancel": ("mcp-runner-cancel.sh", RUN_ID),
    }[command]
    result = run_script(*args, repo=repo, env=env_of(repo))
    expected = poll_says if command.startswith("poll") else "Manifest for run"
    one_error_line(result, expected, f".runs/0001/mcp/{RUN_ID}/manifest.json")
    assert snapshot(repo) == before


def test_list_skips_an_unreadable_manifest_with_a_warning(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_run(repo, run_id="2026-01-01T00-00-00-000Z-1")
    make_run(repo).write_bytes(b"[" * 100_000)
    before = snapshot(repo)
    result = run_script("mcp-runner-list.sh", "--format", "json", repo=repo, env=env_of(repo))
    assert result.returncode == 0
    assert result.stderr.count("\n") == 1 and "skipping" in result.stderr and RUN_ID in result.stderr
    assert [run["run_id"] for run in json.loads(result.stdout)["runs"]] == ["2026-01-01T00-00-00-000Z-1"]
    assert snapshot(repo) == before


WRONG_SHAPES: dict[str, dict[str, Any]] = {
    "commands-not-a-list": {"commands": "npm test"},
    "commands-entries-not-objects": {"commands": [1, "two", None, []]},
    "command-without-text": {"commands": [{"index": 1, "status": "pending"}]},
    "commands-missing": {"commands": None},
}


@pytest.mark.parametrize("kind", sorted(WRONG_SHAPES))
def test_resume_refuses_a_manifest_without_a_command_list(tmp_path: Path, kind: str) -> None:
    """Else the worker would find nothing to run and call the run succeeded."""
    repo = tmp_path / "repo"
    path = make_run(repo)
    record = json.loads(path.read_bytes())
    record.update(WRONG_SHAPES[kind])
    if record["commands"] is None:
        del record["commands"]
    store.write_json(path, record)
    before = snapshot(repo)
    result = run_script("mcp-runner-start.sh", "--resume", RUN_ID, repo=repo, env=env_of(repo))
    one_error_line(result, "has no valid command list")
    assert snapshot(repo) == before


@pytest.mark.parametrize("kind", sorted(WRONG_SHAPES))
def test_poll_shows_a_manifest_of_the_wrong_shape(tmp_path: Path, kind: str) -> None:
    repo = tmp_path / "repo"
    path = make_run(repo, status="succeeded")
    record = json.loads(path.read_bytes())
    record.update(WRONG_SHAPES[kind])
    store.write_json(path, record)
    for output in ("text", "json"):
        result = run_script("mcp-runner-poll.sh", RUN_ID, "--format", output, repo=repo, env=env_of(repo))
        assert result.returncode == 0 and result.stderr == "", result.stderr
    snapshot_json = json.loads(result.stdout)
    assert snapshot_json["run_id"] == RUN_ID
    assert all(isinstance(c, dict) for c in snapshot_json["commands"])


def test_poll_shows_a_manifest_with_every_field_missing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_run(repo).write_text("{}\n")
    text = run_script("mcp-runner-poll.sh", RUN_ID, repo=repo, env=env_of(repo))
    assert text.returncode == 0 and text.stderr == ""
    assert "Run undefined status: undefined" in text.stdout
    shown = run_script("mcp-runner-poll.sh", RUN_ID, "--format", "json", repo=repo, env=env_of(repo))
    data = json.loads(shown.stdout)
    assert "run_id" not in data and data["commands"] == [] and data["heartbeat"]["age_seconds"] is None


def test_poll_survives_huge_summaries(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    path = make_run(repo, status="succeeded")
    record = json.loads(path.read_bytes())
    # Up to the 16 MiB a run's file may have (store.MAX_RUN_FILE_BYTES).
    record["summary"] = "s" * 10_000_000
    record["commands"][0]["summary"] = "c" * 5_000_000 + "\n" + "é" * 1000
    store.write_json(path, record)
    before = path.read_bytes()
    text = run_script("mcp-runner-poll.sh", RUN_ID, repo=repo, env=env_of(repo))
    assert text.returncode == 0 and text.stderr == ""
    # The text view shows 64 Ki characters of a field and says how long it was (termtext.cut).
    assert "… (cut: 10000000 characters in all)" in text.stdout and len(text.stdout) < 1_000_000
    shown = run_script("mcp-runner-poll.sh", RUN_ID, "--format", "json", repo=repo, env=env_of(repo))
    assert shown.returncode == 0 and shown.stderr == ""
    assert json.loads(shown.stdout)["commands"][0]["summary"] == record["commands"][0]["summary"]
    assert json.loads((path.parent / "poll.json").read_bytes()) == json.loads(shown.stdout)
    assert path.read_bytes() == before


# --- metrics.json -------------------------------------------------------------------


def entry(run_id: str) -> str:
    return dumps_compact(
        metrics.metrics_entry(
            {
                "run_id": run_id,
                "task_id": "0001",
                "status": "succeeded",
                "started_at": "2026-01-01T00:00:00.000Z",
                "completed_at": "2026-01-01T00:00:02.000Z",
                "commands": [],
                "artifact_root": f".runs/0001/mcp/{run_id}",
            },
            "2026-01-01T00:00:02.000Z",
        )
    )


def summary_of(repo: Path) -> dict[str, Any]:
    result = run_script("mcp-runner-metrics.js", repo=repo, env=env_of(repo))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout == "Metrics summary written to .runs/0001/metrics-summary.json\n"
    data = json.loads((repo / ".runs" / "0001" / "metrics-summary.json").read_bytes())
    assert isinstance(data, dict)
    return data


METRICS_FILES = {
    "binary-garbage": (entry("a").encode() + b"\n" + bytes(range(256)) * 8 + b"\n" + entry("b").encode(), 2),
    "ten-megabyte-line": (
        entry("a").encode() + b'\n{"run_id":"big","pad":"' + b"y" * 10_000_000 + b"\n" + entry("b").encode(),
        2,
    ),
    "crlf-line-ends": ((entry("a") + "\r\n" + entry("b") + "\r\n").encode(), 2),
}


@pytest.mark.parametrize("kind", sorted(METRICS_FILES))
def test_metrics_summary_of_a_broken_metrics_file(tmp_path: Path, kind: str) -> None:
    """Garbage is data here, not an error: the summary counts the good lines, lists
    the bad ones (cut short) as parse errors, and metrics.json is left alone."""
    repo = tmp_path / "repo"
    metrics_file = repo / ".runs" / "0001" / "metrics.json"
    metrics_file.parent.mkdir(parents=True)
    content, good = METRICS_FILES[kind]
    metrics_file.write_bytes(content)
    data = summary_of(repo)
    assert data["entries_total"] == good and data["entries_succeeded"] == good
    if kind == "crlf-line-ends":
        assert data["parse_errors"] == []
    else:
        assert data["parse_errors"] and all(len(e["raw"]) < 1_100_000 for e in data["parse_errors"])
    assert (repo / ".runs" / "0001" / "metrics-summary.json").stat().st_size < 3_000_000
    assert metrics_file.read_bytes() == content


def test_a_metrics_line_appended_after_garbage_stays_whole(tmp_path: Path) -> None:
    """A file cut short by a crash (no final newline): the next line starts on its own."""
    repo = tmp_path / "repo"
    metrics_file = repo / ".runs" / "0001" / "metrics.json"
    metrics_file.parent.mkdir(parents=True)
    metrics_file.write_bytes(entry("a").encode() + b"\n\xff\xfe{garbage")
    loc = locate(env_of(repo))
    record = json.loads(entry("c"))
    run = {**record, "artifact_root": record["artifact_path"], "commands": []}
    assert metrics.record_run(loc, run) is True
    assert metrics.record_run(loc, run) is False  # once
    last = metrics_file.read_bytes().split(b"\n")[-2]
    assert json.loads(last)["run_id"] == "c"
    assert summary_of(repo)["entries_total"] == 2


def test_a_metrics_line_cut_short_by_a_kill_is_written_again(tmp_path: Path) -> None:
    """SIGKILL in the middle of an append can leave the start of the run's own line.
    Recovery must not take that for the line: the ending gets one whole line."""
    repo = tmp_path / "repo"
    metrics_file = repo / ".runs" / "0001" / "metrics.json"
    metrics_file.parent.mkdir(parents=True)
    whole = entry("c")
    metrics_file.write_bytes(entry("a").encode() + b"\n" + whole[:150].encode())
    loc = locate(env_of(repo))
    record = json.loads(whole)
    run = {**record, "artifact_root": record["artifact_path"], "commands": []}
    assert metrics.record_run(loc, run) is True
    assert metrics.record_run(loc, run) is False
    lines = metrics_file.read_bytes().split(b"\n")
    assert lines[1] == whole[:150].encode() and json.loads(lines[2])["run_id"] == "c" and lines[3:] == [b""]
    data = summary_of(repo)
    assert data["entries_total"] == 2 and len(data["parse_errors"]) == 1


# --- read-only and full filesystems ------------------------------------------------------


@contextlib.contextmanager
def mounted(target: Path, *options: str) -> Iterator[None]:
    """``mount <options> <target>``; skips the test where mounting is not permitted."""
    made = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True, timeout=60)
    if made.returncode != 0:
        pytest.skip(f"cannot mount here ({made.stderr.strip() or made.returncode}): needs root with CAP_SYS_ADMIN")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False, timeout=60)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    with mounted(directory, "--bind", str(directory)):
        remount = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True, text=True, timeout=60
        )
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        yield


@contextlib.contextmanager
def full_disk(directory: Path) -> Iterator[None]:
    """A 64 KiB tmpfs on ``directory``, with what was there copied in, then filled up."""
    saved = {p.relative_to(directory): p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    links = {p.relative_to(directory): os.readlink(p) for p in directory.rglob("*") if p.is_symlink()}
    modes = {p.relative_to(directory): p.stat().st_mode for p in directory.rglob("*") if p.is_file()}
    with mounted(directory, "-t", "tmpfs", "-o", "size=64k", "tmpfs"):
        for rel, data in saved.items():
            if rel in links:
                continue
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            (directory / rel).write_bytes(data)
            (directory / rel).chmod(modes[rel] & 0o777)
        for rel, target in links.items():
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, directory / rel)
        with open(directory / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 1024)
        yield


def _filesystem_cases(repo: Path) -> dict[str, tuple[tuple[str, ...], str]]:
    return {
        "start": (("mcp-runner-start.sh", "--command", "true"), "Failed to start run"),
        "resume": (("mcp-runner-start.sh", "--resume", RUN_ID), "Resume failed"),
        "cancel": (("mcp-runner-cancel.sh", RUN_ID), "Cancel failed"),
        "metrics": (("mcp-runner-metrics.js",), "Cannot write .runs/0001/metrics-summary.json"),
    }


@pytest.mark.parametrize("fault", ["read-only", "full"])
@pytest.mark.parametrize("command", ["start", "resume", "cancel", "metrics"])
def test_a_runs_directory_that_cannot_be_written(tmp_path: Path, fault: str, command: str) -> None:
    """One line, exit 1, and every manifest stays whole and as it was."""
    repo = tmp_path / "repo"
    manifest_path = make_run(repo)
    runs = repo / ".runs"
    args, expected = _filesystem_cases(repo)[command]
    with read_only(runs) if fault == "read-only" else full_disk(runs):
        before = snapshot(runs)
        result = run_script(*args, repo=repo, env=env_of(repo))
        one_error_line(result, expected, "Read-only file system" if fault == "read-only" else "No space left")
        json.loads(manifest_path.read_bytes())
        after = snapshot(runs)
        if fault == "full":  # a writer killed mid-write is not the case here: nothing may be left
            after.pop("filler")
            before.pop("filler")
        assert after == before


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_poll_of_a_stale_run_it_cannot_mark(tmp_path: Path, fault: str) -> None:
    """Poll still shows the run (exit 0) and says, one line each, what it could not write."""
    repo = tmp_path / "repo"
    manifest_path = make_run(repo)
    runs = repo / ".runs"
    with read_only(runs) if fault == "read-only" else full_disk(runs):
        before = manifest_path.read_bytes()
        result = run_script("mcp-runner-poll.sh", RUN_ID, "--format", "json", repo=repo, env=env_of(repo))
        assert result.returncode == 0
        assert json.loads(result.stdout)["status_detail"] == "stale-heartbeat"
        warnings = result.stderr.splitlines()
        assert len(warnings) == 2 and all(w.startswith("Warning: could not ") for w in warnings), warnings
        assert manifest_path.read_bytes() == before
        assert not (manifest_path.parent / "poll.json").exists()
        assert not [p for p in manifest_path.parent.iterdir() if p.name.endswith(".tmp")]


# --- the legacy root: loops and pointers out of .runs ------------------------------------


def _legacy_traps(repo: Path, victim: Path) -> list[str]:
    legacy = repo / ".runs" / "local-mcp"
    legacy.mkdir(parents=True, exist_ok=True)
    (legacy / "self-loop").mkdir()
    (legacy / "self-loop" / "manifest.json").symlink_to("manifest.json")
    (legacy / "dir-loop").symlink_to("dir-loop")
    for a, b in (("ping", "pong"), ("pong", "ping")):
        (legacy / a).mkdir()
        (legacy / a / "manifest.json").symlink_to(f"../{b}/manifest.json")
    (legacy / "out-link").mkdir()
    (legacy / "out-link" / "manifest.json").symlink_to(victim / "manifest.json")
    (legacy / "out-dir").symlink_to(victim)
    (legacy / "out-stub").mkdir()
    (legacy / "out-stub" / "manifest.json").write_text(
        json.dumps({"redirect_to": "x", "manifest": os.path.relpath(victim / "manifest.json", repo)})
    )
    (legacy / "out-flat").mkdir()
    (legacy / "out-flat" / "manifest.json").write_text(os.path.relpath(victim / "manifest.json", legacy / "out-flat"))
    return ["self-loop", "dir-loop", "ping", "out-link", "out-dir", "out-stub", "out-flat"]


@pytest.fixture
def trapped(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    repo = tmp_path / "repo"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "manifest.json").write_text(
        json.dumps({"run_id": "victim", "status": "in_progress", "heartbeat_at": STALE, "commands": []})
    )
    return repo, victim, _legacy_traps(repo, victim)


def test_poll_refuses_loops_and_pointers_out_of_runs(trapped: tuple[Path, Path, list[str]]) -> None:
    repo, victim, names = trapped
    before = snapshot(repo.parent)
    for name in names:
        result = run_script("mcp-runner-poll.sh", name, repo=repo, env=env_of(repo))
        one_error_line(result, f"Manifest for run {name} not found.")
    assert snapshot(repo.parent) == before  # the victim outside .runs was neither marked nor copied


def test_migrate_moves_nothing_through_loops_and_pointers_out_of_runs(
    trapped: tuple[Path, Path, list[str]],
) -> None:
    repo, victim, names = trapped
    victim_before = snapshot(victim)
    legacy_before = snapshot(repo / ".runs" / "local-mcp")
    result = run_script("mcp-runner-migrate.js", repo=repo, env=env_of(repo))
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("Migration log written to ")
    assert not any(": migrated —" in line for line in lines), lines
    assert not (repo / ".runs" / "0001" / "mcp").exists() or not any((repo / ".runs" / "0001" / "mcp").iterdir())
    assert snapshot(victim) == victim_before
    assert snapshot(repo / ".runs" / "local-mcp") == legacy_before


# --- the resume token ---------------------------------------------------------------------


def test_a_resume_token_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    """Resume says so (one line) and carries on with its checks; it does not change
    the file's mode itself (documented: restrict it with chmod 600)."""
    repo = tmp_path / "repo"
    path = make_run(repo, status="succeeded", metrics_recorded=True, completed_at=STALE)
    token = path.parent / ".resume-token"
    token.chmod(0o644)
    result = run_script("mcp-runner-start.sh", "--resume", RUN_ID, repo=repo, env=env_of(repo))
    assert result.returncode == 1
    warning, refusal = result.stderr.splitlines()
    assert warning == (
        f"Warning: .runs/0001/mcp/{RUN_ID}/.resume-token is readable by other users; restrict it with chmod 600."
    )
    assert refusal == f"Run {RUN_ID} is already succeeded; cannot resume."
    assert token.stat().st_mode & 0o777 == 0o644
