"""Every benchmark script runs at its smoke size, so that they keep working.

``make bench`` runs them at full size (not in CI). Here each runs with
``--smoke`` (tiny inputs, one sample) as a real process; the test checks that it
finishes, prints its figures and writes them as JSON. Nothing here judges a
timing: the machine CI runs on says nothing about the budgets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
# name -> a line its report must hold; the slow ones start real runs (worker, MCP server)
SCRIPTS = {
    "poll": "median / python -c pass:",
    "start": "median start:",
    "commands": "one more command beyond bash -c true:",
    "watch": "the watch's end after the run's",
    "metrics_summary": "peak summed PSS growth from",
    "migrate": "migration, median:",
    "list": "runs: --format json (all)",
    "worker_rss": "worker + server, peak RSS:",
    "heartbeat_gap": "start -> the worker's first heartbeat:",
    "save": "save, 50 commands",
}
SLOW = {"start", "commands", "watch", "worker_rss", "heartbeat_gap"}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in SCRIPTS]
)
def test_benchmark_runs_at_smoke_size(name: str, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), "--smoke", "--json", str(out)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"== {name}: " in result.stdout
    assert SCRIPTS[name] in result.stdout
    assert "MISSED" not in result.stdout and " met)" not in result.stdout  # smoke figures are never judged
    (figures,) = json.loads(out.read_text())
    assert figures["benchmark"] == name and figures["smoke"] is True


def test_all_knows_every_script() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    assert sorted(run_all.BENCHMARKS) == sorted(SCRIPTS)
    assert sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in ("common", "run_all")) == sorted(SCRIPTS)


def test_all_runs_a_chosen_script(tmp_path: Path) -> None:
    out = tmp_path / "all.json"
    result = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--smoke", "--only", "poll", "--json", str(out)],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "machine: " in result.stdout and "== budgets ==" in result.stdout
    data = json.loads(out.read_text())
    assert [r["benchmark"] for r in data["results"]] == ["poll"]
    assert data["machine"]["nproc"] >= 1
