"""mcp_core.metrics: a run's metrics line, appended once by every worker at the end of a run.

What record_run writes is read back by the summary in metrics_summary_test.py; its
exactly-once append is held by lifecycle_test.py, hostile_test.py and the chaos tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_core import metrics
from mcp_core.paths import locate

CHECKOUT = Path(__file__).resolve().parents[1]


# -- entries -------------------------------------------------------------------


def test_metrics_entry_shape_and_duration() -> None:
    manifest = {
        "run_id": "r",
        "task_id": "0001",
        "started_at": "2025-10-18T18:26:16.689Z",
        "completed_at": "2025-10-18T18:27:10.396Z",
        "status": "failed",
        "artifact_root": ".runs/0001/mcp/r",
        "commands": [
            {"command": "npm test", "status": "succeeded"},
            {"command": "bash scripts/spec-guard.sh --dry-run", "status": "failed"},
        ],
    }
    line = metrics.metrics_entry(manifest, "2025-10-18T18:27:10.397Z")
    assert list(line) == [
        "run_id", "task_id", "started_at", "completed_at", "duration_seconds", "status",
        "commands_passed", "commands_failed", "guardrails_present", "artifact_path", "recorded_at",
    ]  # fmt: skip
    assert line["duration_seconds"] == 53.707
    assert (line["commands_passed"], line["commands_failed"], line["guardrails_present"]) == (1, 1, False)


def test_a_metrics_file_that_is_no_regular_file_is_refused_at_once(repo: Path) -> None:
    """A FIFO in its place would block a worker's append for ever."""
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)}, cwd=repo)
    loc.metrics_root.mkdir(parents=True)
    os.mkfifo(loc.metrics_file)
    with pytest.raises(OSError, match="not a regular file"):
        metrics.record_run(loc, {"run_id": "r1", "status": "succeeded", "commands": []})


@pytest.mark.parametrize("module", ["mcp_core.metrics", "mcp_core.lifecycle", "mcp_core.worker"])
def test_recording_a_run_imports_no_msgspec(module: str) -> None:
    """Every worker imports lifecycle, which records a run's end: msgspec (the
    summary's decoder, ~15 ms to import) stays off that path."""
    program = f"import sys, {module}\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'msgspec'))\n"
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=CHECKOUT, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
