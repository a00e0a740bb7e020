"""mcp_core.migrate: candidates, checks, the migrated manifest, the log, and finishing
an interrupted pass (docs/interface.md section 9)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import snapshot

from mcp_core import migrate, pointers, store
from mcp_core.jsfmt import dumps_pretty
from mcp_core.paths import Locations, locate

LEGACY_KEYS = ["mode", "started_at", "repo", "command"]
GAINED = ["task_id", "artifact_root", "compat_path", "metrics_recorded", "resume_token", "resume_events", "updated_at"]


def loc_for(repo: Path, **env: str) -> Locations:
    return locate({"MCP_RUNNER_REPO_ROOT": str(repo), **env}, cwd=repo)


def legacy_run(repo: Path, run_id: str, manifest: Any = None, raw: bytes | None = None) -> Path:
    directory = repo / ".runs" / "local-mcp" / run_id
    directory.mkdir(parents=True)
    if raw is not None:
        (directory / "manifest.json").write_bytes(raw)
    else:
        value = manifest if manifest is not None else {"mode": "mcp", "started_at": "2025-10-18T13-37-27Z"}
        (directory / "manifest.json").write_text(dumps_pretty(value))
    (directory / "mcp-server.log").write_text(f"log of {run_id}\n")
    return directory


def points_at_run(loc: Locations, run_id: str) -> bool:
    """The compatibility pointer leads to the run's manifest, as poll would follow it."""
    pointer = loc.legacy_root / run_id / "manifest.json"
    compat = json.loads((loc.legacy_root / run_id / "compat.json").read_text())
    return (
        pointer.is_symlink()
        and os.path.realpath(pointer) == os.path.realpath(loc.runs_root / run_id / "manifest.json")
        and compat["manifest"] == loc.rel(loc.runs_root / run_id / "manifest.json")
        and compat["pointer"] == "symlink"
        and pointers.resolve_manifest(loc, run_id) == loc.runs_root / run_id / "manifest.json"
    )


# -- the migrated manifest -----------------------------------------------------


def test_keys_are_gained_at_the_end_in_order(repo: Path) -> None:
    loc = loc_for(repo)
    legacy = {"mode": "mcp", "started_at": "2025-10-18T13-37-27Z", "repo": "/x", "command": "codex mcp-server"}
    result = migrate.migrated_manifest(legacy, loc, "r1", "2025-11-01T00:00:00.000Z")
    assert list(result) == LEGACY_KEYS + GAINED
    assert result == {
        **legacy,
        "task_id": "0001",
        "artifact_root": ".runs/0001/mcp/r1",
        "compat_path": ".runs/local-mcp/r1",
        "metrics_recorded": True,
        "resume_token": None,
        "resume_events": [],
        "updated_at": "2025-11-01T00:00:00.000Z",
    }
    assert legacy == {"mode": "mcp", "started_at": "2025-10-18T13-37-27Z", "repo": "/x", "command": "codex mcp-server"}


def test_present_keys_keep_their_place(repo: Path) -> None:
    loc = loc_for(repo, MCP_RUNNER_TASK_ID="0007")
    legacy = {
        "artifact_root": ".runs/local-mcp/r1",  # always set to the new place, in place
        "updated_at": "old",
        "task_id": None,  # null counts as absent: set in place
        "resume_token": "abc",  # kept
        "metrics_recorded": False,  # kept: only missing or null is filled
        "run_id": "r1",
    }
    result = migrate.migrated_manifest(legacy, loc, "r1", "now")
    assert list(result) == [
        "artifact_root", "updated_at", "task_id", "resume_token", "metrics_recorded", "run_id",
        "compat_path", "resume_events",
    ]  # fmt: skip
    assert result["artifact_root"] == ".runs/0007/mcp/r1"
    assert (result["task_id"], result["resume_token"], result["metrics_recorded"]) == ("0007", "abc", False)
    assert (result["updated_at"], result["compat_path"], result["resume_events"]) == ("now", ".runs/local-mcp/r1", [])


# -- reading a legacy manifest ---------------------------------------------------

PROBLEMS = [
    (b"{not json", "Manifest is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    (b"", "Manifest is not valid JSON (Expecting value at line 1 column 1)"),
    (b'{"a": "open', "Manifest is not valid JSON (Unterminated string starting at line 1 column 7)"),
    (b'{"a": NaN}', "Manifest is not valid JSON (NaN is not valid JSON)"),
    (b"null", "Manifest is not a JSON object (it holds null)"),
    (b"[1, 2]", "Manifest is not a JSON object (it holds an array)"),
    (b"12", "Manifest is not a JSON object (it holds a number)"),
    (b'"text"', "Manifest is not a JSON object (it holds a string)"),
    (b"\x00\xff\xfe", "Manifest is not valid JSON (Expecting value at line 1 column 1)"),
    (b"../../0001/mcp/x/manifest.json", "Manifest is not valid JSON (Expecting value at line 1 column 1)"),
    (
        b'{"redirect_to": ".runs/0001/mcp/x", "manifest": ".runs/0001/mcp/x/manifest.json"}',
        "Manifest is a compatibility pointer stub (redirect_to)",
    ),
]


@pytest.mark.parametrize(("raw", "message"), PROBLEMS)
def test_manifest_problems(repo: Path, raw: bytes, message: str) -> None:
    directory = legacy_run(repo, "r1", raw=raw)
    with pytest.raises(migrate.ManifestProblem) as caught:
        migrate.read_legacy_manifest(directory / "manifest.json")
    assert str(caught.value) == message + "; nothing moved."


def test_a_fifo_is_refused_without_blocking(repo: Path) -> None:
    directory = repo / "r1"
    directory.mkdir()
    os.mkfifo(directory / "manifest.json")
    with pytest.raises(migrate.ManifestProblem, match="not a regular file"):
        migrate.read_legacy_manifest(directory / "manifest.json")


# -- candidates and checks --------------------------------------------------------


def test_candidates_are_real_directories_in_byte_order(repo: Path, tmp_path: Path) -> None:
    for name in ["b", "B", "a", "é", "z-9", "Z"]:
        legacy_run(repo, name)
    root = repo / ".runs" / "local-mcp"
    (root / "plain-file").write_text("x")
    (root / migrate.JOURNAL_NAME).write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text("{}")
    (root / "link-out").symlink_to(outside)
    (root / "link-in").symlink_to(root / "a")
    (root / "loop").symlink_to(root / "loop")
    assert migrate.legacy_run_ids(loc_for(repo)) == ["B", "Z", "a", "b", "z-9", "é"]
    assert migrate.legacy_run_ids(loc_for(repo), "link-out") == []
    assert migrate.legacy_run_ids(loc_for(repo), "plain-file") == []
    assert migrate.legacy_run_ids(loc_for(repo), "a") == ["a"]
    assert migrate.legacy_run_ids(loc_for(repo / "nowhere")) == []


def test_checks_in_order(repo: Path, tmp_path: Path) -> None:
    loc = loc_for(repo)
    root = repo / ".runs" / "local-mcp"
    root.mkdir(parents=True)
    (root / "no-manifest").mkdir()
    (root / "dangling").mkdir()
    (root / "dangling" / "manifest.json").symlink_to("../../0001/mcp/dangling/manifest.json")
    (root / "looping").mkdir()
    (root / "looping" / "manifest.json").symlink_to("manifest.json")
    legacy_run(repo, "exists")
    (repo / ".runs/0001/mcp/exists").mkdir(parents=True)
    legacy_run(repo, "fine")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (root / "hostile").mkdir()
    (root / "hostile" / "manifest.json").symlink_to(outside)
    legacy_run(repo, "other")
    (root / "pointer").mkdir()
    (root / "pointer" / "manifest.json").symlink_to("../other/manifest.json")

    def line(run_id: str) -> str:
        outcome = migrate.check(loc, run_id)
        return f"{outcome.status}: {outcome.message}"

    assert line("no-manifest") == (
        "error: Manifest missing: ENOENT: no such file or directory, access '.runs/local-mcp/no-manifest/manifest.json'"
    )
    assert line("dangling").startswith("error: Manifest missing: ENOENT: no such file or directory, access ")
    assert line("looping").startswith("error: Manifest missing: ELOOP: too many levels of symbolic links")
    assert line("exists") == "skipped: Destination already exists; no action taken."
    assert migrate.check(loc, "exists").printed_message == migrate.SKIPPED_MESSAGE  # not a pointer: a conflict
    assert line("fine") == "planned: Would migrate directory."
    assert line("hostile") == f"error: Manifest is a symbolic link to a file outside .runs ({outside}); nothing moved."
    assert line("pointer") == (
        "error: Manifest is a symbolic link (../other/manifest.json), a compatibility pointer; nothing moved."
    )
    assert migrate.check(loc, "fine").to_json() == {
        "run_id": "fine",
        "source": ".runs/local-mcp/fine",
        "destination": ".runs/0001/mcp/fine",
        "status": "planned",
        "message": "Would migrate directory.",
    }


# -- a whole pass --------------------------------------------------------------


def test_a_pass_moves_validated_runs_only(repo: Path) -> None:
    loc = loc_for(repo)
    legacy_run(repo, "good", {"mode": "mcp"})
    legacy_run(repo, "bad", raw=b"{oops")
    before_bad = snapshot(repo / ".runs/local-mcp/bad")
    outcomes, log = migrate.migrate(loc, dry_run=False)
    assert [(o.run_id, o.status) for o in outcomes] == [("bad", "error"), ("good", "migrated")]
    assert outcomes[0].message == (
        "Manifest is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2); "
        "nothing moved."
    )
    assert snapshot(repo / ".runs/local-mcp/bad") == before_bad
    assert not (repo / ".runs/0001/mcp/bad").exists()
    manifest = json.loads((repo / ".runs/0001/mcp/good/manifest.json").read_text())
    assert list(manifest) == ["mode", *GAINED]
    assert (repo / ".runs/0001/mcp/good/mcp-server.log").read_text() == "log of good\n"
    assert os.readlink(repo / ".runs/local-mcp/good/manifest.json") == "../../0001/mcp/good/manifest.json"
    assert points_at_run(loc, "good")
    assert not (repo / ".runs/local-mcp" / migrate.JOURNAL_NAME).exists()
    assert log is not None and log.parent == repo / ".runs/0001/migrations"
    assert not (repo / ".runs/0001/metrics.json").exists()  # migration records no metrics


def test_only_invalid_runs_change_nothing_but_the_log(repo: Path) -> None:
    legacy_run(repo, "bad", raw=b"[]")
    before = snapshot(repo)
    outcomes, log = migrate.migrate(loc_for(repo), dry_run=False)
    assert [(o.run_id, o.status) for o in outcomes] == [("bad", "error")]
    assert log is not None
    after = snapshot(repo)
    new = set(after) - set(before)
    assert new == {".runs/0001", ".runs/0001/migrations", str(log.relative_to(repo))}
    assert {k: after[k] for k in before} == before


def test_log_text_is_dumps_pretty(repo: Path) -> None:
    outcomes = [
        migrate.Outcome("plain", "s", "d", "planned", "Would migrate directory."),
        migrate.Outcome('we\u00efrd"\\\n\x01\u2028\udcff', "s\x7f", "d é", "error", "Manifest missing: x 'é'"),
    ]
    header = {"generated_at": "t", "dry_run": True, "repo_root": "/r", "legacy_root": "l", "task_runs_root": "t"}
    expected = dumps_pretty({**header, "runs": [o.to_json() for o in outcomes]})
    assert migrate.log_text({**header, "runs": []}, outcomes) == expected
    assert migrate.log_text({**header, "runs": []}, []) == dumps_pretty({**header, "runs": []})


# -- finishing an interrupted pass ---------------------------------------------


def _interrupted_after_rename(repo: Path, run_id: str) -> Locations:
    """The state a pass leaves when it dies between the rename and the pointer."""
    loc = loc_for(repo)
    source = legacy_run(repo, run_id, {"mode": "mcp"})
    manifest = migrate.read_legacy_manifest(source / "manifest.json")
    store.write_json(source / "manifest.json", migrate.migrated_manifest(manifest, loc, run_id, "then"))
    store.write_json(loc.legacy_root / migrate.JOURNAL_NAME, {"generated_at": "then", "run_ids": [run_id]})
    loc.runs_root.mkdir(parents=True)
    os.rename(source, loc.runs_root / run_id)
    return loc


def test_a_rerun_finishes_a_run_moved_without_its_pointer(repo: Path) -> None:
    loc = _interrupted_after_rename(repo, "r1")
    assert migrate.legacy_run_ids(loc) == []  # no longer a candidate: only the journal knows
    outcomes, _log = migrate.migrate(loc, dry_run=False)
    assert [(o.run_id, o.status) for o in outcomes] == [("r1", "skipped")]
    assert points_at_run(loc, "r1")
    assert json.loads((loc.legacy_root / "r1" / "compat.json").read_text())["artifact_root"] == ".runs/0001/mcp/r1"
    assert not (loc.legacy_root / migrate.JOURNAL_NAME).exists()
    manifest = json.loads((loc.runs_root / "r1" / "manifest.json").read_text())
    assert manifest["updated_at"] == "then"  # already complete: not rewritten


def test_a_rerun_finishes_a_half_made_pointer(repo: Path) -> None:
    loc = _interrupted_after_rename(repo, "r1")
    (loc.legacy_root / "r1").mkdir()
    (loc.legacy_root / "r1" / "manifest.json").symlink_to("../../0001/mcp/r1/manifest.json")  # no compat.json yet
    outcomes, _log = migrate.migrate(loc, dry_run=False)
    assert [(o.run_id, o.status) for o in outcomes] == [("r1", "skipped")]
    assert sorted(os.listdir(loc.legacy_root / "r1")) == ["compat.json", "manifest.json"]


def test_a_rerun_restores_keys_lost_with_the_page_cache(repo: Path) -> None:
    loc = _interrupted_after_rename(repo, "r1")
    (loc.runs_root / "r1" / "manifest.json").write_text('{"mode": "mcp"}')  # as if the rewrite never reached disk
    migrate.migrate(loc, dry_run=False)
    manifest = json.loads((loc.runs_root / "r1" / "manifest.json").read_text())
    assert list(manifest) == ["mode", *GAINED]


def test_a_rerun_migrates_a_run_whose_manifest_was_already_rewritten(repo: Path) -> None:
    loc = loc_for(repo)
    source = legacy_run(repo, "r1", {"mode": "mcp"})
    store.write_json(source / "manifest.json", migrate.migrated_manifest({"mode": "mcp"}, loc, "r1", "then"))
    store.write_json(loc.legacy_root / migrate.JOURNAL_NAME, {"run_ids": ["r1"]})
    outcomes, _log = migrate.migrate(loc, dry_run=False)
    assert [(o.run_id, o.status) for o in outcomes] == [("r1", "migrated")]
    assert list(json.loads((loc.runs_root / "r1" / "manifest.json").read_text())) == ["mode", *GAINED]


def test_recovery_leaves_a_new_legacy_run_alone(repo: Path) -> None:
    loc = _interrupted_after_rename(repo, "r1")
    newer = legacy_run(repo, "r1", {"mode": "mcp", "note": "a new legacy run of the same name"})
    before = snapshot(newer)
    outcomes, _log = migrate.migrate(loc, dry_run=False)
    assert [(o.run_id, o.status) for o in outcomes] == [("r1", "skipped")]
    assert snapshot(newer) == before


def test_a_rerun_removes_the_source_of_an_interrupted_copy(repo: Path) -> None:
    """Across filesystems a move is copy, rename, remove: killed before the removal
    ended, the source is still there (its manifest already rewritten), maybe in part."""
    loc = _interrupted_after_rename(repo, "r1")
    leftover = loc.legacy_root / "r1"
    shutil.copytree(loc.runs_root / "r1", leftover)
    (leftover / "mcp-server.log").unlink()  # half removed: the manifest goes last
    outcomes, _log = migrate.migrate(loc, dry_run=False)
    assert [(o.run_id, o.status) for o in outcomes] == [("r1", "skipped")]
    assert points_at_run(loc, "r1")
    assert sorted(os.listdir(leftover)) == ["compat.json", "manifest.json"]
    assert (loc.runs_root / "r1" / "mcp-server.log").read_text() == "log of r1\n"


def test_across_filesystems(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second, writable filesystem at /dev/shm")
    import tempfile

    with tempfile.TemporaryDirectory(dir=shm) as other:
        repo = tmp_path / "repo"
        repo.mkdir()
        loc = loc_for(repo, MCP_RUNNER_LEGACY_ROOT=str(Path(other) / "legacy"))
        source = loc.legacy_root / "r1"
        source.mkdir(parents=True)
        (source / "manifest.json").write_text('{"mode": "mcp"}')
        (source / "sub").mkdir()
        (source / "sub" / "file").write_text("data")
        outcomes, _log = migrate.migrate(loc, dry_run=False)
        assert [(o.run_id, o.status) for o in outcomes] == [("r1", "migrated")]
        assert (loc.runs_root / "r1" / "sub" / "file").read_text() == "data"
        assert not (loc.runs_root / ("r1" + migrate._COPY_SUFFIX)).exists()
        assert points_at_run(loc, "r1")
        assert json.loads((loc.runs_root / "r1" / "manifest.json").read_text())["artifact_root"] == ".runs/0001/mcp/r1"
