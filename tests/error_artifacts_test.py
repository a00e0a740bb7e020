"""Error artifacts: shape, place, and long strings cut with a note."""

from __future__ import annotations

from pathlib import Path

from runs import create_run

from mcp_core import store
from mcp_core.error_artifacts import MAX_STRING_BYTES, cut_long_strings, write_error_artifact


def test_short_values_are_kept() -> None:
    value = {"a": ["x" * MAX_STRING_BYTES, 1, None, True, {"b": "é"}]}
    assert cut_long_strings(value) == value


def test_long_strings_are_cut_on_a_character_boundary() -> None:
    text = "é" * MAX_STRING_BYTES  # two bytes each
    cut = cut_long_strings({"deep": [text]})["deep"][0]
    head, note = cut.split("\n[truncated: ")
    assert head == "é" * (MAX_STRING_BYTES // 2)
    assert note == f"{2 * MAX_STRING_BYTES} bytes, first {MAX_STRING_BYTES} kept]"


def test_write_error_artifact(repo: Path) -> None:
    run = create_run(repo, ["bash -lc 'exit 2'"])
    manifest = run.manifest()
    command = manifest["commands"][0]
    relative = write_error_artifact(
        run.loc, run.run_dir, manifest, command, "command-failed", {"exit_code": 2}, "2025-01-01T00:00:00.000Z"
    )
    assert relative == f"{manifest['artifact_root']}/errors/01-bash-lc-exit-2.json"
    assert store.read_json(repo / relative) == {
        "run_id": run.run_id,
        "task_id": "0001",
        "command_index": 1,
        "command": "bash -lc 'exit 2'",
        "created_at": "2025-01-01T00:00:00.000Z",
        "reason": "command-failed",
        "details": {"exit_code": 2},
    }
