"""poll's fast path prints and writes what the full command does, or hands over.

``mcp_core.commands.poll_fast`` repeats the full command's rules without its
imports; these tests hold each repeated rule to the original (random inputs
included), check that every unusual case reaches ``mcp_core.commands.poll``, and
that the usual call really stays light.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import SCRIPTS, run_script, runner_env
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_core import heartbeat, jsfmt
from mcp_core.commands import poll, poll_fast
from mcp_core.manifest import new_manifest
from mcp_core.paths import locate

CHECKOUT = SCRIPTS.parent
NOW_MS = 1_760_812_040_123


def fast_or_none(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except poll_fast._Unusual:
        return None


# --- the repeated rules, against the originals --------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats() | st.text(
    st.characters(blacklist_categories=()), max_size=12
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_encoding_matches_jsfmt_or_hands_over(value: Any) -> None:
    pretty = fast_or_none(poll_fast.dumps_pretty, value)
    if pretty is not None:
        assert pretty == jsfmt.dumps_pretty(value)
        assert poll_fast.dumps_compact(value) == jsfmt.dumps_compact(value)


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_numbers_match_js_number_or_hand_over(value: float) -> None:
    text = fast_or_none(poll_fast._number, value)
    if text is None:
        assert "e" in repr(value) or not math.isfinite(value)
    else:
        assert text == jsfmt.js_number(value)


def test_common_numbers_are_answered() -> None:
    for value in (12.345, 0.5, 3600.0, 1e-4, 123456789.125, -2.5, -0.0):
        assert poll_fast._number(value) == jsfmt.js_number(value)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=())))
def test_strings_match_jsfmt(value: str) -> None:
    assert poll_fast._string(value) == jsfmt._string(value)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(), st.integers(0, 999), st.sampled_from(["", " ", "\n"]))
def test_runner_timestamps_parse_as_jsfmt_parses_them(m: Any, millis: int, pad: str) -> None:
    text = f"{pad}{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{millis:03d}Z{pad}"
    assert poll_fast.timestamp_ms(text) == jsfmt.parse_timestamp_ms(text)


@pytest.mark.parametrize(
    "value",
    ["2025-10-18T18-26-16-688Z", "2025-10-18T18:26:16Z", "2025-10-18T18:26:16.6894Z", "2025-02-30T00:00:00.000Z",
     "2025-10-18T24:00:00.000Z", "2025-10-18T18:26:60.000Z", "2025-10-18 18:26:16.689Z", "yesterday",
     "2025-10-18T18:26:16.689+00:00", "0000-01-01T00:00:00.000Z", "２０２５-10-18T18:26:16.689Z"],
)
def test_other_timestamp_shapes_hand_over(value: str) -> None:
    with pytest.raises(poll_fast._Unusual):
        poll_fast.timestamp_ms(value)


@pytest.mark.parametrize("value", [None, 12, "", "   ", ["2025-10-18T18:26:16.689Z"]])
def test_what_is_no_timestamp_is_none(value: object) -> None:
    assert poll_fast.timestamp_ms(value) is None
    assert jsfmt.parse_timestamp_ms(value) is None


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.floats(0, 1e12), st.integers(0, 10**9).map(lambda n: n / 1000), st.integers(0, 10**6).map(
    lambda n: n / 100)))
def test_ages_round_as_to_fixed(value: float) -> None:
    assert poll_fast.to_fixed_1(value) == heartbeat.to_fixed_1(value)


def test_half_up_on_the_binary_value() -> None:
    assert [poll_fast.to_fixed_1(v) for v in (12.25, 0.05, 0.15, 2.675, 0.0)] == ["12.3", "0.1", "0.1", "2.7", "0.0"]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 253402300799999))
def test_iso_from_ms_matches(epoch_ms: int) -> None:
    assert poll_fast.iso_from_ms(epoch_ms) == jsfmt.iso_from_ms(epoch_ms)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_loads_matches_json_or_hands_over(value: Any) -> None:
    text = json.dumps(value)
    # compared as text: NaN is not equal to itself
    assert json.dumps(poll_fast._loads(text)) == json.dumps(json.loads(text))


@pytest.mark.parametrize("text", ["{not json", "", "  ", "{} x", "\ufeff{}", '{"a": [1,]}', "[" * 100000])
def test_what_json_refuses_hands_over(text: str) -> None:
    with pytest.raises(poll_fast._Unusual):
        poll_fast._loads(text)


manifest_values = st.dictionaries(
    st.sampled_from(["run_id", "status", "status_detail", "summary", "started_at", "completed_at", "artifact_root",
                     "compat_path", "heartbeat_at", "heartbeat_interval_seconds", "heartbeat_stale_after_seconds",
                     "commands", "extra"]),
    json_values | st.sampled_from(["2025-10-18T18:26:16.689Z", "succeeded", "failed", "in_progress"]),
)
command_values = st.lists(
    st.dictionaries(st.sampled_from(poll._COMMAND_KEYS + ("other",)), json_values, max_size=6) | json_scalars,
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(manifest_values, command_values, st.booleans())
def test_snapshot_and_text_match_the_full_command(manifest: dict[str, Any], commands: Any, with_commands: bool) -> None:
    if with_commands:
        manifest["commands"] = commands
    repo = Path("/repo")
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    path = loc.run_dir("r1") / "manifest.json"
    try:
        fast_state = poll_fast.heartbeat_state(manifest, NOW_MS)
        fast_json = poll_fast.dumps_pretty(
            poll_fast.snapshot(str(repo), manifest, str(path), fast_state, poll_fast.iso_from_ms(NOW_MS)))
        fast_text = poll_fast.render_text(manifest, fast_state)
    except poll_fast._Unusual:
        return
    state = heartbeat.heartbeat_state(manifest, NOW_MS)
    assert fast_state == state or json.dumps(state) == json.dumps(fast_state)
    assert fast_json == jsfmt.dumps_pretty(poll.snapshot(loc, manifest, path, state, jsfmt.iso_from_ms(NOW_MS)))
    assert fast_text == poll.render_text(manifest, state)


# --- whole processes ------------------------------------------------------------------------


def make_run(repo: Path, run_id: str, status: str, beat: str, **extra: Any) -> Path:
    loc = locate(runner_env(repo))
    record = new_manifest(loc, run_id, ["echo é", "bash scripts/spec-guard.sh --dry-run"], approval_policy="never",
                          timeout_seconds=3600, now="2025-10-18T18:26:16.689Z", resume_token="ab" * 32)
    record.update(status=status, heartbeat_at=beat, **extra)
    record["commands"][0].update(status="succeeded", exit_code=0, summary="done \u2603")
    run_dir = loc.run_dir(run_id)
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(jsfmt.dumps_pretty(record))
    return run_dir


def full_poll(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = runner_env(repo, PYTHONPATH=str(CHECKOUT))
    return subprocess.run([sys.executable, "-m", "mcp_core.commands.poll", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)


def without_clock(text: str) -> str:
    """The output with the clock-dependent values (age, polled_at) masked."""
    lines = []
    for line in text.splitlines():
        if line.startswith("Heartbeat age: ") or '"age_seconds"' in line or '"polled_at"' in line:
            line = line.split(":")[0] + ": <clock>" + (" (STALE)" if "(STALE)" in line else "")
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.parametrize("fmt", [[], ["--format", "json"], ["--format", "text"]])
@pytest.mark.parametrize("status", ["succeeded", "in_progress", "failed"])
def test_processes_print_the_same(repo: Path, fmt: list[str], status: str) -> None:
    run_dir = make_run(repo, "run-1", status, jsfmt.iso_now(), summary="a\nb", completed_at=None, runner_pid=None)
    fast = run_script("mcp-runner-poll.sh", "run-1", *fmt, repo=repo)
    fast_snapshot = (run_dir / "poll.json").read_text() if fmt[1:] == ["json"] else None
    full = full_poll(repo, "run-1", *fmt)
    assert fast.returncode == full.returncode == 0
    assert fast.stderr == full.stderr == ""
    assert without_clock(fast.stdout) == without_clock(full.stdout)
    if fast_snapshot is not None:
        assert fast_snapshot == fast.stdout
        assert without_clock((run_dir / "poll.json").read_text()) == without_clock(fast_snapshot)


def test_a_stale_live_run_is_marked_by_the_full_command(repo: Path) -> None:
    run_dir = make_run(repo, "run-1", "in_progress", "2025-10-18T18:26:16.689Z")
    result = run_script("mcp-runner-poll.sh", "run-1", "--format", "json", repo=repo)
    assert result.returncode == 0
    assert json.loads(result.stdout)["status_detail"] == "stale-heartbeat"
    assert json.loads((run_dir / "manifest.json").read_text())["status_detail"] == "stale-heartbeat"


def test_a_run_reached_through_its_pointer_is_answered(repo: Path) -> None:
    make_run(repo, "run-1", "succeeded", "2025-10-18T18:26:16.689Z")
    loc = locate(runner_env(repo))
    runs = loc.runs_root
    moved = repo / "elsewhere"
    (runs / "run-1").rename(moved)
    loc.pointer_dir("run-1").mkdir(parents=True)
    (loc.pointer_dir("run-1") / "manifest.json").symlink_to(moved / "manifest.json")
    result = run_script("mcp-runner-poll.sh", "run-1", repo=repo)
    full = full_poll(repo, "run-1")
    assert (result.returncode, without_clock(result.stdout), result.stderr) == (
        full.returncode, without_clock(full.stdout), full.stderr)


@pytest.mark.parametrize(
    "args",
    [["-h"], ["run-1", "--bogus"], ["run-1", "--format", "xml"], ["run-1", "--format"], ["../x"], ["missing"],
     ["run-1", "--watch", "--interval", "0.1"]],
)
def test_other_calls_are_answered_by_the_full_command(repo: Path, args: list[str]) -> None:
    make_run(repo, "run-1", "succeeded", "2025-10-18T18:26:16.689Z", completed_at="2025-10-18T18:27:16.689Z")
    fast = run_script("mcp-runner-poll.sh", *args, repo=repo)
    full = full_poll(repo, *args)
    assert (fast.returncode, without_clock(fast.stdout), fast.stderr) == (
        full.returncode, without_clock(full.stdout), full.stderr)


def test_broken_manifest_error_is_the_full_commands(repo: Path) -> None:
    run_dir = repo / ".runs" / "0001" / "mcp" / "broken"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text('{"status": "succeeded", oops}')
    result = run_script("mcp-runner-poll.sh", "broken", repo=repo)
    assert (result.returncode, result.stderr) == (1, "Manifest for run broken is not valid JSON: "
                                                      ".runs/0001/mcp/broken/manifest.json\n")


def test_the_usual_call_stays_light(repo: Path) -> None:
    make_run(repo, "run-1", "succeeded", "2025-10-18T18:26:16.689Z")
    python = CHECKOUT / ".venv/bin/python"
    result = subprocess.run(
        [str(python if python.exists() else sys.executable), "-X", "importtime", str(CHECKOUT / "bin/mcp-runner-poll"),
         "run-1", "--format", "json"],
        cwd=repo, env=runner_env(repo), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "mcp_core.commands.poll_fast" in modules
    heavy = {"json", "re", "pathlib", "dataclasses", "typing", "decimal", "datetime", "mcp_core.commands.poll"}
    assert modules & heavy == set()
