"""Durable files: atomic writes, the manifest lock, and metrics appends from many processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CHECKOUT

from mcp_core import store
from mcp_core.paths import locate


def test_atomic_write_text_writes_whole_with_mode_and_no_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    store.atomic_write_text(target, "é\n")
    assert target.read_bytes() == "é\n".encode()
    assert (target.stat().st_mode & 0o777) == 0o644
    store.atomic_write_text(target, "secret\n", mode=0o600)
    assert target.read_text() == "secret\n" and (target.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.json"]


def test_what_each_kind_of_write_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A durable write syncs the file and its directory; a response file only its data
    (the manifest's save names it and syncs the directory); poll's snapshot nothing."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("directory" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    kinds = {
        "durable": {},
        "named by the next save": {"sync_directory": False},
        "snapshot": {"durable": False},
    }
    seen = {}
    for kind, options in kinds.items():
        synced.clear()
        store.atomic_write_text(tmp_path / "f.json", kind, **options)  # type: ignore[arg-type]
        assert (tmp_path / "f.json").read_text() == kind
        seen[kind] = list(synced)
    assert seen == {"durable": ["file", "directory"], "named by the next save": ["file"], "snapshot": []}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    store.write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        store.write_json(target, {"a": object()})  # fails before anything is written
    with pytest.raises(FileNotFoundError):
        store.atomic_write_text(tmp_path / "missing-dir" / "x.json", "{}")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.json"]


def test_read_json_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"a": [1, 2]}')
    assert store.read_json(path) == {"a": [1, 2]}
    path.write_text("{broken")
    with pytest.raises(ValueError):
        store.read_json(path)
    with pytest.raises(OSError):
        store.read_json(tmp_path / "absent.json")


def test_update_json_changes_in_place_or_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    store.write_json(path, {"a": 1, "b": 2})
    saved = store.update_json(path, lambda data: data.update(b=3, c=4))
    assert saved == {"a": 1, "b": 3, "c": 4}
    assert path.read_text() == '{\n  "a": 1,\n  "b": 3,\n  "c": 4\n}\n'
    before = path.stat().st_mtime_ns, path.stat().st_ino
    assert store.update_json(path, lambda data: False) == {"a": 1, "b": 3, "c": 4}
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before  # not rewritten
    path.write_text("[1]")
    with pytest.raises(ValueError):
        store.update_json(path, lambda data: None)
    assert path.read_text() == "[1]"


def test_a_saves_note_holds_only_while_the_file_is_that_save(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    store.write_json(path, {"n": 0})
    assert store.saved_note(path) is None  # never saved through update_json here
    store.update_json(path, lambda data: data.update(n=1), note=lambda data: ("saved", data["n"]))
    assert store.saved_note(path) == ("saved", 1)
    store.update_json(path, lambda data: False, note=lambda data: "unused")
    assert store.saved_note(path) == ("saved", 1)  # not rewritten: still that save
    store.update_json(path, lambda data: data.update(n=2))
    assert store.saved_note(path) is None  # saved again, with no note

    store.update_json(path, lambda data: data.update(n=3), note=lambda data: data["n"])
    store.write_json(path, {"n": 4})  # another writer (same size: "3" -> "4")
    assert store.saved_note(path) is None

    store.update_json(path, lambda data: data.update(n=5), note=lambda data: data["n"])
    assert store.saved_note(path) == 5
    path.write_text('{\n  "n": 60\n}\n')  # rewritten in place, not renamed
    assert store.saved_note(path) is None

    store.update_json(path, lambda data: data.update(n=7), note=lambda data: data["n"])
    path.unlink()
    assert store.saved_note(path) is None


def test_saves_noted_stay_few_and_their_files_are_closed(tmp_path: Path) -> None:
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    paths = [tmp_path / f"{n}.json" for n in range(store._SAVED_MAX * 3)]
    for number, path in enumerate(paths):
        store.write_json(path, {"n": number})
        store.update_json(path, lambda data: None, note=lambda data: data["n"])
    assert open_files() - before <= store._SAVED_MAX
    assert [store.saved_note(path) for path in paths[-2:]] == [len(paths) - 2, len(paths) - 1]
    assert store.saved_note(paths[0]) is None


# --- several processes ------------------------------------------------------------------------


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, str(CHECKOUT), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


# The children's side of the starting gate: say "ready", then wait (bounded) for the go file.
_GATE = """
def wait_at_the_gate(go):
    import os, time
    Path(f"{go}.ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 120
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("never released from the gate")
        time.sleep(0.001)
"""


def _release(go: Path, procs: list[subprocess.Popen[str]]) -> None:
    """Touch ``go`` once every process waits at the gate, so they race from the same moment."""
    deadline = time.monotonic() + 120
    while len(list(go.parent.glob(f"{go.name}.ready-*"))) < len(procs):
        assert all(proc.poll() is None for proc in procs), "a process ended before reaching the gate"
        assert time.monotonic() < deadline, "the processes never reached the gate"
        time.sleep(0.01)
    go.touch()


def _finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


_RMW = _GATE + """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from mcp_core import run_record
path, role, count, go = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
wait_at_the_gate(go)
for n in range(count):
    if role == "events":
        def change(m, n=n):
            m["resume_events"].append({"n": n})
    else:
        def change(m):
            m["counter"] += 1
            m["status_detail"] = "stale-heartbeat" if m["counter"] % 2 else None
    run_record.update(path, change)
"""


@pytest.mark.slow
def test_two_processes_updating_one_manifest_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "run" / "manifest.json"
    path.parent.mkdir()
    store.write_json(path, {"status": "in_progress", "status_detail": None, "counter": 0, "resume_events": []})
    go = tmp_path / "go"
    count = 150
    procs = [_spawn(_RMW, str(path), role, str(count), str(go)) for role in ("events", "counter")]
    _release(go, procs)
    _finish(procs)
    final = json.loads(path.read_text())
    assert final["resume_events"] == [{"n": n} for n in range(count)]
    assert final["counter"] == count
    assert list(final) == ["status", "status_detail", "counter", "resume_events", "updated_at"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.json"]


_WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from mcp_core import store
path, rounds = Path(sys.argv[2]), int(sys.argv[3])
big = {"padding": "x" * 300_000}
for n in range(rounds):
    store.write_json(path, {"n": n, **big, "tail": n})
Path(sys.argv[4]).touch()
"""

_READER = """
import json, sys
from pathlib import Path
path, done = Path(sys.argv[2]), Path(sys.argv[3])
reads = bad = 0
while not done.exists():
    try:
        text = path.read_text()
    except FileNotFoundError:
        bad += 1
        continue
    try:
        data = json.loads(text)
        if data["n"] != data["tail"]:
            bad += 1
    except ValueError:
        bad += 1
    reads += 1
print(reads, bad)
"""


@pytest.mark.slow
def test_a_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    done = tmp_path / "done"
    store.write_json(path, {"n": -1, "tail": -1})
    reader = _spawn(_READER, str(path), str(done))
    writer = _spawn(_WRITER, str(path), "60", str(done))
    _finish([writer])
    (output,) = _finish([reader])
    reads, bad = map(int, output.split())
    assert reads > 0 and bad == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done", "manifest.json"]


_RECORD = _GATE + """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from mcp_core import metrics
from mcp_core.paths import locate
repo, run_id, go = sys.argv[2], sys.argv[3], Path(sys.argv[4])
loc = locate({"MCP_RUNNER_REPO_ROOT": repo})
manifest = {
    "run_id": run_id, "task_id": "0001", "status": "failed",
    "started_at": "2025-10-18T18:26:16.689Z", "completed_at": "2025-10-18T18:27:10.396Z",
    "commands": [
        {"command": "bash scripts/spec-guard.sh", "status": "succeeded"},
        {"command": "x", "status": "failed"},
    ],
    "artifact_root": ".runs/0001/mcp/" + run_id,
}
wait_at_the_gate(go)
print(metrics.record_run(loc, manifest))
"""


@pytest.mark.slow
def test_many_processes_recording_metrics_at_once(repo: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    run_ids = [f"run-{n:02d}" for n in range(10)]
    # run-00 is recorded by three processes at once: one line only
    names = [*run_ids, "run-00", "run-00"]
    procs = [_spawn(_RECORD, str(repo), run_id, str(go)) for run_id in names]
    _release(go, procs)
    outputs = [out.strip() for out in _finish(procs)]
    assert outputs.count("True") == len(run_ids) and outputs.count("False") == 2
    metrics_file = locate({"MCP_RUNNER_REPO_ROOT": str(repo)}).metrics_file
    text = metrics_file.read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    entries = [json.loads(line) for line in lines]
    assert sorted(e["run_id"] for e in entries) == run_ids
    for line, entry in zip(lines, entries, strict=True):
        assert list(entry) == [
            "run_id", "task_id", "started_at", "completed_at", "duration_seconds", "status",
            "commands_passed", "commands_failed", "guardrails_present", "artifact_path", "recorded_at",
        ]
        assert (entry["duration_seconds"], entry["commands_passed"], entry["commands_failed"]) == (53.707, 1, 1)
        assert entry["guardrails_present"] is True
        assert line.startswith(f'{{"run_id":"{entry["run_id"]}","task_id":"0001",')  # compact
    assert os.stat(metrics_file).st_size == len(text.encode())


@pytest.mark.parametrize(
    "text",
    ['{"a": [1, 2.5, -0.0, 1e400, "é\\ud800"], "b": null}', ' \n{"a":1}\t', "[]", '"x"', "12", "NaN",
     '{"a": 1, "a": 2}', "", "{", '{"a":1} x', "\ufeff{}", '{"a": "\x01"}', "[" * 100_000],
)
def test_loads_is_json_loads(text: str) -> None:
    # store.loads calls json's C scanner directly; every outcome must be json.loads's
    try:
        expected: object = json.loads(text)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)) as caught:
            store.loads(text)
        assert str(caught.value) == str(exc)
        return
    assert json.dumps(store.loads(text)) == json.dumps(expected)
