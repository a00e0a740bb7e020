"""mcp_core.metrics_summary: the streaming summary (and what record_run writes, summarized).

The summary reads a block of lines with msgspec's C decoder when that cannot
read it differently from json line by line, and line by line with json
otherwise; it counts each run once over two passes, made by two processes for
a large file. Most cases below run three ways: with the usual 256 KiB reads,
with 64-byte ones (blocks of a line or two), and with 64-byte ones and two
processes whatever the file's size. A property test holds the whole thing to a
plain reference reading (json.loads line by line, a dict of the latest line per
run), which is what docs/interface.md section 8 describes.
"""

from __future__ import annotations

import errno
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURE_METRICS_FIGURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_core import metrics, metrics_summary
from mcp_core.jsfmt import dumps_compact
from mcp_core.paths import Locations, locate

# (read size, file size from which two processes make the summary): blocks of
# hundreds of lines, of a line or two, and of a line or two in two processes
WAYS = [(metrics_summary._READ_BYTES, metrics_summary._SPLIT_BYTES), (64, metrics_summary._SPLIT_BYTES), (64, 0)]


def set_way(patch: pytest.MonkeyPatch, way: tuple[int, int]) -> None:
    patch.setattr(metrics_summary, "_READ_BYTES", way[0])
    patch.setattr(metrics_summary, "_SPLIT_BYTES", way[1])


@pytest.fixture(params=WAYS, ids=["256KiB-reads", "64B-reads", "64B-reads-two-processes"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    set_way(monkeypatch, request.param)


EACH_WAY = pytest.mark.usefixtures("way")


def summarize_each_way(loc: Locations) -> list[metrics_summary.MetricsSummary]:
    """The summary each of the three ways (for tests that cannot take a fixture per example)."""
    summaries = []
    for way in WAYS:
        with pytest.MonkeyPatch.context() as patch:
            set_way(patch, way)
            summaries.append(metrics_summary.summarize(loc))
    return summaries


def loc_for(repo: Path) -> Locations:
    return locate({"MCP_RUNNER_REPO_ROOT": str(repo)}, cwd=repo)


def entry(
    run_id: Any = "run-1", status: Any = "succeeded", duration: Any = 1.5, guard: Any = True, **extra: Any
) -> dict[str, Any]:
    line = {
        "run_id": run_id,
        "task_id": "0001",
        "started_at": "2025-10-18T18:26:16.689Z",
        "completed_at": "2025-10-18T18:27:10.396Z",
        "duration_seconds": duration,
        "status": status,
        "commands_passed": 4,
        "commands_failed": 0,
        "guardrails_present": guard,
        "artifact_path": f".runs/0001/mcp/{run_id}",
        "recorded_at": "2025-10-18T18:27:10.397Z",
    }
    line.update(extra)
    return line


def line_of(value: Any) -> str:
    return dumps_compact(value)


def write_metrics(repo: Path, content: str | bytes) -> Path:
    path = repo / ".runs" / "0001" / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


# -- the reference reading -----------------------------------------------------

_JS_WS = metrics_summary._JS_WHITESPACE


def reference(content: bytes) -> dict[str, Any]:
    """docs/interface.md section 8 read literally, one json.loads a line, no cleverness."""

    def no_constants(name: str) -> Any:
        raise ValueError(name)

    counted: dict[Any, dict[str, Any]] = {}
    errors: list[str] = []
    for number, raw in enumerate(content.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")):
        text = raw.strip(_JS_WS)
        if not text:
            continue
        try:
            value = json.loads(text, parse_constant=no_constants)
        except (ValueError, RecursionError):
            errors.append(text)
            continue
        if not isinstance(value, dict):
            errors.append(text)
            continue
        run_id = value.get("run_id")
        key = ("id", run_id) if isinstance(run_id, str) else ("line", number)
        counted.pop(key, None)  # the latest line of a run counts, in its own place
        counted[key] = value
    entries = list(counted.values())
    durations = [
        float(e["duration_seconds"])
        for e in entries
        if isinstance(e.get("duration_seconds"), (int, float))
        and not isinstance(e.get("duration_seconds"), bool)
        and math.isfinite(float(e["duration_seconds"]))
        and float(e["duration_seconds"]) >= 0
    ]
    total = len(entries)
    return {
        "entries_total": total,
        "entries_succeeded": sum(1 for e in entries if e.get("status") == "succeeded"),
        "entries_failed": sum(1 for e in entries if e.get("status") == "failed"),
        "success_rate": sum(1 for e in entries if e.get("status") == "succeeded") / total if total else None,
        "guardrail_coverage": sum(1 for e in entries if e.get("guardrails_present") is True) / total if total else None,
        "average_duration_seconds": math.fsum(durations) / len(durations) if durations else None,
        "raw_errors": errors,
    }


def figures(summary: metrics_summary.MetricsSummary) -> dict[str, Any]:
    data = summary.to_json()
    return {
        **{k: data[k] for k in ("entries_total", "entries_succeeded", "entries_failed", "success_rate")},
        "guardrail_coverage": data["guardrail_coverage"],
        "average_duration_seconds": data["average_duration_seconds"],
        "raw_errors": [e["raw"] for e in data["parse_errors"]],
    }


# -- the fixture ---------------------------------------------------------------


@EACH_WAY
def test_fixture_figures(fixture_repo: Path) -> None:
    summary = metrics_summary.summarize(loc_for(fixture_repo), keep_durations=True)
    data = summary.to_json()
    assert list(data) == ["generated_at", *FIXTURE_METRICS_FIGURES]
    assert {k: v for k, v in data.items() if k != "generated_at"} == FIXTURE_METRICS_FIGURES
    assert summary.status_counts == {"failed": 4, "succeeded": 1}
    assert summary.median_duration_seconds() == 35.977
    assert sorted(summary.durations) == [0.0, 7.284, 35.977, 53.707, 59.866]


def test_missing_metrics_file_gives_zero_totals(repo: Path) -> None:
    data = metrics_summary.summarize(loc_for(repo)).to_json()
    assert {k: data[k] for k in list(data)[3:]} == {
        "entries_total": 0,
        "entries_succeeded": 0,
        "entries_failed": 0,
        "success_rate": None,
        "guardrail_coverage": None,
        "average_duration_seconds": None,
        "parse_errors": [],
    }
    assert not (repo / ".runs").exists()  # summarizing reads only


def test_a_metrics_file_that_is_no_regular_file_is_refused_at_once(repo: Path) -> None:
    """A FIFO in its place would block the summary for ever (a worker's append: metrics_test.py)."""
    loc = loc_for(repo)
    loc.metrics_root.mkdir(parents=True)
    os.mkfifo(loc.metrics_file)
    with pytest.raises(OSError, match="not a regular file"):
        metrics_summary.summarize(loc)


def test_the_summary_imports_msgspec_without_typing_extensions(fixture_repo: Path) -> None:
    """typing_extensions (and the inspect, ast, dis and tokenize it imports) is held off
    msgspec's import in the command's process, and importable afterwards as usual."""
    program = (
        "import sys, io\n"
        "from mcp_core.commands.metrics import main\n"
        "sys.stdout = io.StringIO()\n"
        "code = main([])\n"
        "sys.stdout = sys.__stdout__\n"
        "print(code, sorted({'typing_extensions', 'inspect'} & set(sys.modules)))\n"
        "import typing_extensions\n"
        "print(typing_extensions.get_type_hints is not None)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "MCP_RUNNER_REPO_ROOT": str(fixture_repo)},
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert result.stdout.split("\n")[:2] == ["0 []", "True"], result.stdout + result.stderr
    summary = json.loads((fixture_repo / ".runs" / "0001" / "metrics-summary.json").read_text())
    assert summary["entries_total"] == 5


# -- bad lines (docs/interface.md section 8) --------------------------------------------

BAD_LINES = [
    ("null", "Not a JSON object: the line holds null"),
    ("[1, 2]", "Not a JSON object: the line holds an array"),
    ("[]", "Not a JSON object: the line holds an array"),
    ("42", "Not a JSON object: the line holds a number"),
    ('"run"', "Not a JSON object: the line holds a string"),
    ("true", "Not a JSON object: the line holds a boolean"),
    ("{broken", "Invalid JSON: Expecting property name enclosed in double quotes at column 2"),
    ('{"run_id":"x","status":"failed"', "Invalid JSON: Expecting ',' delimiter at column 32"),
    ('{"a": NaN}', "Invalid JSON: NaN is not valid JSON"),
    ('{"a": 1} {"b": 2}', "Invalid JSON: Extra data at column 10"),
    ("not json at all", "Invalid JSON: Expecting value at column 1"),
    ('{"a": "open', "Invalid JSON: Unterminated string starting at column 7"),
    ('{"a": "tab\there"}', "Invalid JSON: Invalid control character at column 11"),
]


@EACH_WAY
def test_lines_that_are_not_objects_are_parse_errors(repo: Path) -> None:
    good = [entry("a", "succeeded", 10, True), entry("b", "failed", 20, False)]
    lines = [line_of(good[0])] + [text for text, _ in BAD_LINES] + [line_of(good[1])]
    write_metrics(repo, "\n".join(lines) + "\n")
    data = metrics_summary.summarize(loc_for(repo)).to_json()
    assert data["parse_errors"] == [{"error": message, "raw": text} for text, message in BAD_LINES]
    assert (data["entries_total"], data["entries_succeeded"], data["entries_failed"]) == (2, 1, 1)
    assert (data["success_rate"], data["guardrail_coverage"], data["average_duration_seconds"]) == (0.5, 0.5, 15)


@EACH_WAY
def test_binary_garbage_crlf_blank_lines_and_whitespace(repo: Path) -> None:
    content = (
        b"\r\n"
        + line_of(entry("a", "succeeded", 1.25)).encode()
        + b"\r\n   \r\n\t\n"
        + b"\x00\xff\xfe garbage \x01\r\n"
        + b"  "
        + line_of(entry("b", "failed", 2.75, False)).encode()
        + b"  \r\n"
        + b"\xef\xbb\xbf"  # a byte-order mark, which JavaScript's trim() removes
        + line_of(entry("c", "cancelled", 3)).encode()
        + b"\n\n"
        + line_of(entry("d", "failed", 4, False)).encode()  # no newline at the end
    )
    write_metrics(repo, content)
    data = metrics_summary.summarize(loc_for(repo)).to_json()
    assert data["parse_errors"] == [
        {"error": "Invalid JSON: Expecting value at column 1", "raw": "\x00\ufffd\ufffd garbage \x01"}
    ]
    assert (data["entries_total"], data["entries_succeeded"], data["entries_failed"]) == (4, 1, 2)
    assert data["guardrail_coverage"] == 0.5
    assert data["average_duration_seconds"] == (1.25 + 2.75 + 3 + 4) / 4


@EACH_WAY
def test_only_real_non_negative_numbers_are_durations(repo: Path) -> None:
    lines = [
        entry("a", duration=None),  # null is not 0
        entry("b", duration="12"),  # a numeric string is not a number
        entry("c", duration=True),  # true is not 1
        entry("d", duration=-3),  # negative
        entry("e", duration=[5]),
        entry("f", duration=6),
        entry("g", duration=0),
        entry("h", duration=9),
    ]
    text = "\n".join(line_of(e) for e in lines) + "\n" + '{"run_id":"i","duration_seconds":1e400}\n'
    write_metrics(repo, text)
    summary = metrics_summary.summarize(loc_for(repo), keep_durations=True)
    assert summary.entries_total == 9
    assert sorted(summary.durations) == [0.0, 6.0, 9.0]
    assert summary.average_duration_seconds == 5


@EACH_WAY
def test_status_and_guardrail_counts(repo: Path) -> None:
    lines = [
        entry("a", "succeeded", guard=True),
        entry("b", "failed", guard=False),
        entry("c", "cancelled", guard=True),  # counted, in neither succeeded nor failed
        entry("d", None, guard="true"),  # only true is true
        entry("e", "failed", guard=1),
        {"run_id": "f", "guardrails_present": True},  # no status at all
    ]
    write_metrics(repo, "\n".join(line_of(e) for e in lines) + "\n")
    summary = metrics_summary.summarize(loc_for(repo))
    data = summary.to_json()
    assert (data["entries_total"], data["entries_succeeded"], data["entries_failed"]) == (6, 1, 2)
    assert data["success_rate"] == 1 / 6
    assert data["guardrail_coverage"] == 0.5
    assert summary.status_counts == {"failed": 2, "succeeded": 1, "cancelled": 1, "null": 1, "(missing)": 1}


def test_status_counts_keep_the_order_of_first_appearance(repo: Path) -> None:
    """Equal counts are listed in the order the statuses first appear (the table's
    rows), however the blocks count them (succeeded and failed are counted by
    comparison once seen, other statuses by hashing)."""
    rng = random.Random(5)
    statuses = ["failed", "cancelled", None, "succeeded"] + [
        rng.choice(["succeeded", "failed", "succeeded", "cancelled", "timed_out", None]) for _ in range(3000)
    ]
    succeeded, failed = statuses.count("succeeded"), statuses.count("failed")
    statuses += ["failed"] * (succeeded - failed) + ["succeeded"] * (failed - succeeded)  # a tie at the top
    lines = [line_of(entry(f"r{n}", status)) for n, status in enumerate(statuses)]
    lines.insert(1500, '{"run_id":"no-status"}')
    write_metrics(repo, "\n".join(lines) + "\n")
    labels = ["null" if status is None else status for status in statuses]
    labels.insert(1500, "(missing)")
    expected = list(Counter(labels).most_common())
    assert expected[0][1] == expected[1][1]
    for summary in summarize_each_way(loc_for(repo)):
        assert list(summary.status_counts.items()) == expected


# -- each run once, by its latest line (docs/interface.md section 8) --------------------


@EACH_WAY
def test_a_retried_run_counts_once_by_its_latest_line(repo: Path) -> None:
    lines = [
        entry("retried", "failed", 10, False),
        entry("other", "succeeded", 1, True),
        entry("retried", "failed", 20, False),
        {"status": "failed", "duration_seconds": 100},  # no run_id: counted on its own
        {"status": "failed", "duration_seconds": 100},
        {"run_id": None, "status": "succeeded"},
        {"run_id": 7, "status": "succeeded"},
        {"run_id": 7, "status": "succeeded"},
        entry("retried", "succeeded", 30, True),  # the latest line of "retried"
    ]
    write_metrics(repo, "\n".join(line_of(e) for e in lines) + "\n")
    summary = metrics_summary.summarize(loc_for(repo), keep_durations=True)
    data = summary.to_json()
    assert (data["entries_total"], data["entries_succeeded"], data["entries_failed"]) == (7, 5, 2)
    assert data["guardrail_coverage"] == 2 / 7
    assert sorted(summary.durations) == [1, 30, 100, 100]


@EACH_WAY
def test_latest_line_wins_across_fast_and_json_lines(repo: Path) -> None:
    spaced = json.dumps(entry("r", "succeeded", 5, True))  # ", " separators: not the runner's own shape
    lines = [line_of(entry("r", "failed", 1, False)), spaced, line_of(entry("s", "failed", 2)), spaced]
    lines.append(line_of(entry("r", "cancelled", 9, False)))
    write_metrics(repo, "\n".join(lines) + "\n")
    summary = metrics_summary.summarize(loc_for(repo), keep_durations=True)
    assert summary.status_counts == {"cancelled": 1, "failed": 1}
    assert sorted(summary.durations) == [2, 9]


@EACH_WAY
def test_duplicate_run_id_keys_use_the_last_one(repo: Path) -> None:
    first = line_of(entry("x", "failed", 1))
    # Same object syntax as the runner's up to the end, then a second run_id: json's last key wins.
    twice = line_of(entry("y", "succeeded", 2))[:-1] + ',"run_id":"x"}'
    write_metrics(repo, first + "\n" + twice + "\n")
    summary = metrics_summary.summarize(loc_for(repo))
    assert summary.status_counts == {"succeeded": 1}


# -- bounds --------------------------------------------------------------------


def test_parse_errors_are_capped_and_the_rest_counted(repo: Path) -> None:
    count = metrics_summary.PARSE_ERRORS_KEPT + 25
    write_metrics(repo, "".join(f"garbage {n}\n" for n in range(count)) + line_of(entry()) + "\n")
    data = metrics_summary.summarize(loc_for(repo)).to_json()
    assert len(data["parse_errors"]) == metrics_summary.PARSE_ERRORS_KEPT
    assert data["parse_errors"][-1]["raw"] == f"garbage {metrics_summary.PARSE_ERRORS_KEPT - 1}"
    assert list(data)[-1] == "parse_errors_omitted" and data["parse_errors_omitted"] == 25
    assert data["entries_total"] == 1


def test_an_overlong_line_is_an_error_and_the_next_lines_count(repo: Path) -> None:
    huge = '{"run_id":"' + "x" * (metrics_summary.MAX_LINE_BYTES + 10) + '"}'
    write_metrics(repo, line_of(entry("a")) + "\n" + huge + "\n" + line_of(entry("b", "failed")) + "\n")
    data = metrics_summary.summarize(loc_for(repo)).to_json()
    assert data["entries_total"] == 2
    [error] = data["parse_errors"]
    assert (
        error["error"]
        == f"Line too long to be a metrics entry: {len(huge)} bytes (limit {metrics_summary.MAX_LINE_BYTES})"
    )
    assert error["raw"] == huge[:1024] + "…"


@pytest.mark.parametrize("read_bytes", [7, 64, 99])  # less than the limit, as 256 KiB is
def test_lines_at_the_length_limit_whatever_the_reads(
    repo: Path, monkeypatch: pytest.MonkeyPatch, read_bytes: int
) -> None:
    """Lines up to the limit count and longer ones are errors (their start shown), wherever
    the reads cut them: one line over many reads, several in one, an overlong one last, unended."""
    monkeypatch.setattr(metrics_summary, "MAX_LINE_BYTES", 100)
    monkeypatch.setattr(metrics_summary, "_READ_BYTES", read_bytes)

    def padded(run_id: str, length: int) -> str:
        line = '{"run_id":"' + run_id + '","status":"failed","pad":""}'
        return line[:-2] + "p" * (length - len(line)) + '"}'

    lengths = [20, 100, 101, 30, 99, 350, 1, 100, 25, 101, 100, 40, 230]
    lines = [padded(f"r{n}", length) if length >= 40 else "garbage"[:length] for n, length in enumerate(lengths)]
    write_metrics(repo, "\n".join(lines))  # the last line (overlong) has no line break
    summary = metrics_summary.summarize(loc_for(repo))
    too_long = [(len(line), line) for line in lines if len(line) > 100]
    assert [e["error"] for e in summary.parse_errors if e["error"].startswith("Line too long")] == [
        f"Line too long to be a metrics entry: {length} bytes (limit 100)" for length, _ in too_long
    ]
    heads = [e["raw"] for e in summary.parse_errors if e["error"].startswith("Line too long")]
    assert all(raw.endswith("…") and line.startswith(raw[:-1]) for raw, (_, line) in zip(heads, too_long, strict=True))
    counted = [line for line in lines if 40 <= len(line) <= 100]
    assert summary.entries_total == len(counted) == 5
    assert [e["raw"] for e in summary.parse_errors if e["raw"].startswith("garbage"[:1])] == [
        line for line in lines if len(line) < 40
    ]


def test_lines_across_read_blocks(repo: Path) -> None:
    """Several MiB, so lines straddle the reads, with a long (2 MiB) valid line too."""
    rng = random.Random(7)
    lines = []
    for n in range(12000):
        lines.append(
            line_of(entry(f"run-{rng.randrange(9000)}", rng.choice(["succeeded", "failed", "cancelled"]), n / 7))
        )
        if n == 5000:
            lines.append(line_of(entry("long", "succeeded", 1, extra_field="y" * (2 << 20))))
        if n % 997 == 0:
            lines.append("garbage")
    content = ("\n".join(lines) + "\n").encode()
    write_metrics(repo, content)
    expected = reference(content)
    for summary in summarize_each_way(loc_for(repo)):
        assert figures(summary) == expected


# -- the whole thing against the reference ----------------------------------------

_IDS = st.sampled_from(["a", "b", "c", "é", "run-1", ""])
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 100), st.floats(-10, 1e3, allow_nan=False), st.text(max_size=5)
)


def _entry_line(draw: Any) -> str:
    line = entry(
        draw(st.one_of(_IDS, st.none(), st.integers(0, 2))),
        draw(st.one_of(st.sampled_from(["succeeded", "failed", "cancelled"]), _VALUES)),
        draw(st.one_of(st.floats(0, 1e4, allow_nan=False), _VALUES)),
        draw(st.one_of(st.booleans(), _VALUES)),
    )
    style = draw(st.sampled_from(["runner", "runner", "spaced", "reordered", "escaped", "nulls"]))
    if style == "spaced":
        return json.dumps(line)
    if style == "reordered":
        return dumps_compact(dict(reversed(list(line.items()))))
    if style == "escaped":
        return json.dumps(line, ensure_ascii=True, separators=(",", ":")).replace("run_id", "run\\u005fid")
    if style == "nulls":
        line["task_id"] = None
        line["completed_at"] = None
    return dumps_compact(line)


@st.composite
def metrics_files(draw: Any) -> bytes:
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["entry", "entry", "entry", "blank", "garbage", "scalar", "binary", "torn"]))
        if kind == "entry":
            text = _entry_line(draw).encode()
        elif kind == "blank":
            text = draw(st.sampled_from([b"", b"  ", b"\t", b"\xc2\xa0"]))
        elif kind == "garbage":
            text = draw(st.text(max_size=12)).encode("utf-8", "surrogatepass")
        elif kind == "scalar":
            text = draw(st.sampled_from([b"null", b"[]", b"[1]", b"3", b'"s"', b"true", b"{}"]))
        elif kind == "binary":
            text = draw(st.binary(max_size=12))
        else:
            full = _entry_line(draw).encode()
            text = full[: draw(st.integers(0, len(full)))]
        parts.append(text)
        parts.append(draw(st.sampled_from([b"\n", b"\n", b"\r\n"])))
    return b"".join(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=metrics_files())
def test_summary_agrees_with_the_reference(repo: Path, content: bytes) -> None:
    write_metrics(repo, content)
    expected = reference(content)
    for summary in summarize_each_way(loc_for(repo)):
        assert figures(summary) == expected


# -- record_run and the summary together -----------------------------------------


def test_recorded_runs_are_summarized(repo: Path) -> None:
    loc = loc_for(repo)
    base = {
        "task_id": "0001",
        "started_at": "2025-10-18T18:26:16.689Z",
        "completed_at": "2025-10-18T18:26:26.689Z",
        "commands": [{"command": "bash scripts/spec-guard.sh", "status": "succeeded"}],
    }
    assert metrics.record_run(loc, {**base, "run_id": "one", "status": "succeeded", "artifact_root": "x"})
    assert metrics.record_run(loc, {**base, "run_id": "two", "status": "failed", "artifact_root": "y"})
    # "two" retried and ended again, later: a second line, counted instead of the first.
    later = {
        **base,
        "completed_at": "2025-10-18T18:26:46.689Z",
        "run_id": "two",
        "status": "succeeded",
        "artifact_root": "y",
    }
    assert metrics.record_run(loc, later)
    assert len(loc.metrics_file.read_text().splitlines()) == 3
    data = metrics_summary.summarize(loc).to_json()
    assert (data["entries_total"], data["entries_succeeded"], data["average_duration_seconds"]) == (2, 2, 20)


_GOOD = line_of(entry("ok", "succeeded", 1))
_TORN = line_of(entry("torn", "failed", 2))
RUNNER_SHAPED_BUT_INVALID = {
    # raw control characters inside strings
    "tab": [line_of(entry("tab", "failed", 2)).replace('"status":"failed"', '"status":"fai\tled"')],
    "control": [line_of(entry("ctl", "failed", 2)).replace("0001", "00\x0101")],
    "bare CR": [line_of(entry("cr", "failed", 2)).replace("0001", "00\r01")],
    # an unterminated string that the next line "closes": one regex match over two lines
    "split": [_TORN[:14], _TORN[14:]],
    # a number JSON does not allow
    "leading zero": [line_of(entry("z", "failed", 2)).replace('"duration_seconds":2', '"duration_seconds":02')],
    # an object over two lines, and two objects on one line: as many objects as lines
    "spread and doubled": ['{"run_id":"spread","status":', '"failed"}', '{"run_id":"a"} {"run_id":"b"}'],
    "spread and comma": ['{"run_id":"spread","status":', '"failed"}', '{"run_id":"a"},{"run_id":"b"}'],
    # a valid line held inside an object over three lines
    "swallowed": ['{"a":[', line_of(entry("inner", "failed", 2)), "]} {} {}"],
    "blank inside": ['{"run_id":"x",', "", '"status":"failed"}'],
    # a JSON text the runner never writes: a status that is not a string, a bool for a duration
    "other types": ['{"run_id":"n","status":7,"duration_seconds":true,"guardrails_present":1}'],
}


@EACH_WAY
@pytest.mark.parametrize("case", sorted(RUNNER_SHAPED_BUT_INVALID))
def test_runner_shaped_lines_that_json_rejects(repo: Path, case: str) -> None:
    """A block's one C call must not take what JSON.parse refuses, nor read lines
    differently. Each case is alone in its file with good lines, since one odd
    line sends its whole block line by line."""
    bad = RUNNER_SHAPED_BUT_INVALID[case]
    content = "\n".join([_GOOD, *bad, line_of(entry("last", "failed", 5))]).encode() + b"\n"
    write_metrics(repo, content)
    summary = metrics_summary.summarize(loc_for(repo))
    assert figures(summary) == reference(content)  # the parse errors' raw lines included


def given_to_two_passes(monkeypatch: pytest.MonkeyPatch, keyword: str) -> list[Any]:
    """What each start of the two passes is given as ``keyword``, in order (filled as the summary runs)."""
    given: list[Any] = []
    two_passes = metrics_summary._two_passes

    def recorded(*args: Any, **kwargs: Any) -> Any:
        given.append(kwargs[keyword])
        return two_passes(*args, **kwargs)

    monkeypatch.setattr(metrics_summary, "_two_passes", recorded)
    return given


@pytest.mark.parametrize(("case", "attempts"), [("swallowed", [False, True]), ("other types", [False])])
def test_only_lines_decode_lines_misread_start_the_passes_again(
    repo: Path, monkeypatch: pytest.MonkeyPatch, case: str, attempts: list[bool]
) -> None:
    """The first pass reads a block by decode_lines alone; when the second pass finds
    that its lines are not one object each, both start again, the first one checking
    every block itself. A line of other types only is read in halves, no new start."""
    content = "\n".join([_GOOD, *RUNNER_SHAPED_BUT_INVALID[case], line_of(entry("last", "failed", 5))]).encode() + b"\n"
    write_metrics(repo, content)
    checked = given_to_two_passes(monkeypatch, "check_first")
    assert figures(metrics_summary.summarize(loc_for(repo))) == reference(content)
    assert checked == attempts


@EACH_WAY
def test_invalid_utf8_inside_a_string_reads_as_node_reads_it(repo: Path) -> None:
    latin = line_of(entry("bytes", "failed", 3)).encode().replace(b"0001", b"00\xff01")  # U+FFFD for Node
    content = _GOOD.encode() + b"\n" + latin + b"\n"
    write_metrics(repo, content)
    summary = metrics_summary.summarize(loc_for(repo))
    assert (summary.parse_errors, summary.status_counts) == ([], {"succeeded": 1, "failed": 1})


def test_the_average_is_exact_whatever_the_durations_held(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Durations are folded into their exact sum every few (here 7): the average is
    still math.fsum of them all over their count, to the last bit."""
    rng = random.Random(11)
    durations = [rng.choice([0.1, 1e-9, 3.3, 1e15, 7e-300]) * rng.random() for _ in range(500)]
    write_metrics(repo, "".join(line_of(entry(f"r{n}", "succeeded", d)) + "\n" for n, d in enumerate(durations)))
    monkeypatch.setattr(metrics_summary, "_DURATIONS_HELD", 7)
    summary = metrics_summary.summarize(loc_for(repo))
    assert summary.average_duration_seconds == math.fsum(durations) / len(durations)
    assert summary.durations is None  # not kept unless asked: memory does not grow with the runs
    kept = metrics_summary.summarize(loc_for(repo), keep_durations=True)
    assert kept.average_duration_seconds == summary.average_duration_seconds
    assert sorted(kept.durations or []) == sorted(durations)  # in no particular order: repeated runs' come last


@pytest.mark.parametrize(
    "values", [[], [0.1] * 10, [1e308, -1e308, 1.0], [2.0**-1074, 1e-300, 1e300, 0.1, 0.2, 0.3], [0.1, -0.1, 1e-17]]
)
def test_exact_parts_sum_to_the_exact_sum(values: list[float]) -> None:
    from fractions import Fraction

    parts = metrics_summary._exact_parts(values[:1], values[1:])
    assert sum(map(Fraction, parts), Fraction(0)) == sum(map(Fraction, values), Fraction(0))
    assert math.fsum(parts) == math.fsum(values)


@pytest.mark.parametrize("split_bytes", [metrics_summary._SPLIT_BYTES, 0], ids=["one-process", "two-processes"])
def test_a_wrong_guess_of_the_line_count_starts_again(
    repo: Path, monkeypatch: pytest.MonkeyPatch, split_bytes: int
) -> None:
    """A first block of one long line makes the file look short: the first pass's
    table is made small, and once more ids come than it was made for, both passes
    start again with room for as many as the file can hold. Same result."""
    monkeypatch.setattr(metrics_summary, "_SPLIT_BYTES", split_bytes)
    lines = [line_of(entry("big", "succeeded", 1, padding="p" * (1536 << 10))), "garbage"]
    lines += [line_of({"run_id": f"r{n % 9000}", "status": "failed", "duration_seconds": n}) for n in range(10_000)]
    content = ("\n".join(lines) + "\n").encode()
    write_metrics(repo, content)
    attempts = given_to_two_passes(monkeypatch, "most_ids")
    children = children_started(monkeypatch)
    summary = metrics_summary.summarize(loc_for(repo))
    assert figures(summary) == reference(content)
    assert [e["raw"] for e in summary.parse_errors] == ["garbage"]
    assert summary.entries_total == 9001
    assert len(attempts) == 2 and attempts[0] < 100 < 10_000 < attempts[1]
    assert len(children) == (2 if split_bytes == 0 and metrics_summary.usable_cpus() > 1 else 0)
    assert_reaped(children)


def test_thousands_of_statuses_are_folded(repo: Path) -> None:
    lines = [line_of(entry(f"r{n}", f"status-{n}", n)) for n in range(3000)]
    lines += [line_of(entry("s", "succeeded")), line_of(entry("f", "failed")), '{"run_id":"j","status":"weird"}']
    lines.append(line_of(entry("r7", "late")))  # a repeated run: its latest line is counted at the end, folded too
    write_metrics(repo, "\n".join(lines) + "\n")
    summary = metrics_summary.summarize(loc_for(repo))
    assert (summary.entries_total, summary.entries_succeeded, summary.entries_failed) == (3003, 1, 1)
    assert summary.status_counts == {"(other statuses)": 3001, "succeeded": 1, "failed": 1}


def test_the_summary_scans_without_the_lock_up_to_the_size_it_saw(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker appending (under the file's exclusive lock) never waits for a
    summary's scan: the summary holds the shared lock only to read the size."""
    import fcntl
    import os

    path = write_metrics(repo, line_of(entry("one", "succeeded", 1)) + "\n")
    appended: list[int] = []
    whole_lines = metrics_summary._whole_lines

    def append_during_the_scan(*args: Any, **kwargs: Any) -> Any:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if the summary held a lock
            appended.append(os.write(fd, (line_of(entry("two", "failed", 2)) + "\n").encode()))
        finally:
            os.close(fd)
        return whole_lines(*args, **kwargs)

    monkeypatch.setattr(metrics_summary, "_whole_lines", append_during_the_scan)
    assert metrics_summary.summarize(loc_for(repo)).entries_total == 1  # the line appended meanwhile waits for the next
    monkeypatch.undo()
    assert appended and metrics_summary.summarize(loc_for(repo)).entries_total == 2


def test_the_summary_takes_the_size_between_two_appends(repo: Path) -> None:
    """An append seen half made is not read: the size is taken under the shared lock."""
    import fcntl
    import os
    import threading

    path = write_metrics(repo, line_of(entry("one", "succeeded", 1)) + "\n")
    line = (line_of(entry("two", "failed", 2)) + "\n").encode()
    results: list[metrics_summary.MetricsSummary] = []
    writer = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        fcntl.flock(writer, fcntl.LOCK_EX)
        os.write(writer, line[:20])  # an append under way
        reader = threading.Thread(target=lambda: results.append(metrics_summary.summarize(loc_for(repo))), daemon=True)
        reader.start()
        reader.join(timeout=0.5)  # it waits for the append (not for long: one write)
        os.write(writer, line[20:])
    finally:
        os.close(writer)  # releases the lock
    reader.join(timeout=120)
    assert not reader.is_alive()
    assert (results[0].entries_total, results[0].parse_errors) == (2, [])


# -- two processes ---------------------------------------------------------------


def children_started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the children the summary forks (filled as it runs)."""
    pids: list[int] = []
    start_child = metrics_summary._start_child

    def recorded(*args: Any) -> Any:
        child = start_child(*args)
        pids.append(child[0])
        return child

    monkeypatch.setattr(metrics_summary, "_start_child", recorded)
    return pids


def in_the_child(monkeypatch: pytest.MonkeyPatch, action: Any, before: str) -> None:
    """``action()`` runs in the forked child before it calls ``before`` (a function of metrics_summary)."""
    parent = os.getpid()
    function = getattr(metrics_summary, before)

    def hooked(*args: Any) -> Any:
        if os.getpid() != parent:
            action()
        return function(*args)

    monkeypatch.setattr(metrics_summary, before, hooked)


def assert_reaped(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def many_runs_file(repo: Path) -> bytes:
    """Runs repeated across the whole file (their latest lines late), statuses new
    to each half, parse errors in both halves, a duration only the child counts."""
    lines = [line_of(entry(f"r{n % 40}", "failed" if n % 3 else "succeeded", n / 7)) for n in range(120)]
    lines[10] = "not json, first half"
    lines[100] = "not json, second half"
    lines.insert(60, line_of(entry("once", "cancelled", 1e-300)))
    lines += [line_of(entry("r5", "late", 0.1)), line_of(entry("solo", None, 2.5)), '{"run_id":"r6"}']
    content = ("\n".join(lines) + "\n").encode()
    write_metrics(repo, content)
    return content


@pytest.mark.skipif(metrics_summary.usable_cpus() < 2, reason="one CPU: never two processes")
@pytest.mark.parametrize("keep_durations", [False, True])
def test_the_second_half_is_counted_in_a_child(
    repo: Path, monkeypatch: pytest.MonkeyPatch, keep_durations: bool
) -> None:
    content = many_runs_file(repo)
    set_way(monkeypatch, (256, 0))
    pids = children_started(monkeypatch)
    split = metrics_summary.summarize(loc_for(repo), keep_durations=keep_durations)
    assert len(pids) == 1
    assert_reaped(pids)
    monkeypatch.undo()
    whole = metrics_summary.summarize(loc_for(repo), keep_durations=keep_durations)
    assert figures(split) == figures(whole) == reference(content)
    assert (split.average_duration_seconds, split.parse_errors) == (whole.average_duration_seconds, whole.parse_errors)
    if keep_durations:
        assert sorted(split.durations or []) == sorted(whole.durations or [])


@pytest.mark.skipif(metrics_summary.usable_cpus() < 2, reason="one CPU: never two processes")
@pytest.mark.parametrize("before", ["_run_id_hashes", "_repeated_hashes", "_second_pass"])
def test_what_fails_in_the_child_fails_the_summary(repo: Path, before: str) -> None:
    """In the first pass's reading, before its table (after the first swap), or in the second pass."""
    many_runs_file(repo)

    def unreadable() -> None:
        raise OSError(errno.EIO, "Input/output error")

    pids: list[int] = []
    for action, message in [(unreadable, "Input/output error"), (lambda: os.kill(os.getpid(), signal.SIGKILL),
                                                                 "second process ended before it was done")]:
        with pytest.MonkeyPatch.context() as patch:
            set_way(patch, (256, 0))
            started = children_started(patch)
            in_the_child(patch, action, before)
            with pytest.raises(OSError, match=message):
                metrics_summary.summarize(loc_for(repo))
        pids += started
    assert len(pids) == 2
    assert_reaped(pids)


@pytest.mark.skipif(metrics_summary.usable_cpus() < 2, reason="one CPU: never two processes")
def test_a_misread_block_in_the_childs_half_starts_the_passes_again(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two blocks (4 KiB reads): the second, the child's, holds the lines decode_lines misreads."""
    lines = [line_of(entry(f"r{n}", "succeeded", n)) for n in range(20)] + RUNNER_SHAPED_BUT_INVALID["swallowed"]
    content = ("\n".join(lines) + "\n").encode()
    write_metrics(repo, content)
    assert 4096 < len(content) < 8192
    set_way(monkeypatch, (4096, 0))
    pids = children_started(monkeypatch)
    checked = given_to_two_passes(monkeypatch, "check_first")
    assert figures(metrics_summary.summarize(loc_for(repo))) == reference(content)
    assert checked == [False, True]
    assert len(pids) == 2
    assert_reaped(pids)


@EACH_WAY
def test_a_run_id_hashed_like_none_still_counts_once(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines without a run id each count on their own, even when a run id that
    repeats has the same hash as None (a collision made here by hand)."""
    import builtins

    def colliding_hash(value: object) -> int:
        return builtins.hash(None) if value == "collider" else builtins.hash(value)

    monkeypatch.setattr(metrics_summary, "hash", colliding_hash, raising=False)
    lines = [line_of(entry("collider", "failed", 1)), '{"status":"succeeded"}', '{"run_id":null,"status":"failed"}']
    lines += [line_of(entry(f"r{n}", "succeeded", n)) for n in range(30)]
    lines += ['{"status":"succeeded"}', line_of(entry("collider", "succeeded", 2)), '{"status":"failed"}']
    content = ("\n".join(lines) + "\n").encode()
    write_metrics(repo, content)
    summary = metrics_summary.summarize(loc_for(repo))
    assert figures(summary) == reference(content)
    assert (summary.entries_total, summary.entries_succeeded) == (35, 33)


def _ended(pid: int) -> bool:
    """Gone, or a zombie that whoever adopted it has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(metrics_summary.usable_cpus() < 2, reason="one CPU: never two processes")
def test_the_child_ends_when_the_summary_is_killed(repo: Path) -> None:
    """A summary SIGKILLed before it answers its child: the child, waiting for it,
    ends instead of staying behind."""
    from conftest import CHECKOUT

    many_runs_file(repo)
    code = f"""
import os, sys, time
sys.path.insert(0, {str(CHECKOUT)!r})
from mcp_core import metrics_summary
from mcp_core.paths import locate
metrics_summary._SPLIT_BYTES, metrics_summary._READ_BYTES = 0, 256
parent, read = os.getpid(), metrics_summary._run_id_hashes
def stuck(*args):
    if os.getpid() == parent:
        print("stuck", flush=True)
        time.sleep(600)
    return read(*args)
metrics_summary._run_id_hashes = stuck
metrics_summary.summarize(locate({{"MCP_RUNNER_REPO_ROOT": {str(repo)!r}}}, cwd={str(repo)!r}))
"""
    summary = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert summary.stdout is not None and summary.stdout.readline() == "stuck\n"
        with open(f"/proc/{summary.pid}/task/{summary.pid}/children") as listed:
            [child] = [int(pid) for pid in listed.read().split()]
        assert not _ended(child)
    finally:
        summary.kill()
        summary.wait()
    deadline = time.monotonic() + 60
    while not _ended(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _ended(child)
