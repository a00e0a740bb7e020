#!/usr/bin/env python3
"""Peak memory of a run's worker and its MCP server (the bundled local executor).

Starts a run of a few commands (one of them streams 200,000 lines of output
through the executor to runner.log) and samples /proc every 20 ms: the resident
set (VmRSS) of the worker and of the process beside it: the server process when
the executor runs as one, else (the default: the executor in the worker's own
process) its command guard. The commands' own processes are not counted.
Also their proportional set (Pss, shared pages split between the processes that
share them). Reported: the peak of the sum of the two RSS figures (the budget's
measure, <= 80 MiB), each process's own high-water mark (VmHWM), and the peak
summed PSS.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

from mcp_core.servers.common import GUARD_NAME  # noqa: E402

BUDGET_MIB = 80  # issue 11
COMMANDS = ["true", "echo hello", "seq 1 200000", "sleep 0.5", "bash scripts/spec-guard.sh --dry-run || true"]


def _is_server(pid: int) -> bool:
    """The MCP server process, or the in-process executor's command guard."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"mcp_core.servers" in argv or argv.startswith(GUARD_NAME.encode() + b"\0")


def sample_run(repo: Path, env: dict[str, str], commands: list[str]) -> dict[str, float]:
    run_id, worker, _ = common.start_run(repo, commands, env)
    peak_sum = peak_pss = 0
    hwm: dict[str, int] = {"worker": 0, "server": 0}
    server: int | None = None
    samples = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server is None:
            server = next((child for child in common.children(worker) if _is_server(child)), None)
        rss = common.status_kib(worker, "VmRSS")
        if rss == 0:
            break  # the worker is gone
        pids = {"worker": worker, **({"server": server} if server else {})}
        total = rss + (common.status_kib(server, "VmRSS") if server else 0)
        peak_sum = max(peak_sum, total)
        if samples % 5 == 0:  # smaps_rollup walks every mapping: read it less often
            peak_pss = max(peak_pss, sum(common.pss_kib(pid) for pid in pids.values()))
        for name, pid in pids.items():
            hwm[name] = max(hwm[name], common.status_kib(pid, "VmHWM"))
        samples += 1
        if common.wait_for_exit(worker, 0.02):
            break
    manifest = common.wait_for_run(repo, run_id, worker)
    if manifest["status"] != "succeeded":
        raise SystemExit(f"run {run_id} ended {manifest['status']}: {manifest.get('status_detail')}")
    if not hwm["server"]:
        raise SystemExit("neither a server process nor a command guard was seen")
    return {
        "peak_rss_sum_mib": peak_sum / 1024,
        "worker_hwm_mib": hwm["worker"] / 1024,
        "server_hwm_mib": hwm["server"] / 1024,
        "hwm_sum_mib": (hwm["worker"] + hwm["server"]) / 1024,
        "peak_pss_sum_mib": peak_pss / 1024,
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    args = common.parse(common.arguments(__doc__.splitlines()[0], runs=3, warmup=0), argv)
    report = common.Report("worker_rss", args, "peak memory of a run's worker + its MCP server (local executor)")
    commands = COMMANDS[:2] if args.smoke else COMMANDS
    results = []
    with common.temp_repo(args.keep) as repo:
        scripts_dir = repo / "scripts"
        scripts_dir.mkdir()
        (scripts_dir / "spec-guard.sh").write_text("#!/bin/sh\necho spec guard ok\n")
        env = common.runner_env(repo, MCP_RUNNER_SERVER="local")
        for _ in range(args.warmup + args.runs):
            results.append(sample_run(repo, env, commands))
    results = results[args.warmup:]
    worst = {key: max(r[key] for r in results) for key in results[0]}
    print(f"  {len(results)} runs of {len(commands)} commands; the largest figure of each:")
    for key, label in (
        ("peak_rss_sum_mib", "worker + server, peak of the summed RSS"),
        ("worker_hwm_mib", "worker alone, VmHWM"),
        ("server_hwm_mib", "server (or command guard) alone, VmHWM"),
        ("hwm_sum_mib", "sum of the two VmHWM (an upper bound)"),
        ("peak_pss_sum_mib", "worker + server, peak of the summed PSS"),
    ):
        report.figure(key, worst[key], f"{label}: {common.mib(worst[key])}")
    report.budget("worker + server, peak RSS", common.mib(worst["peak_rss_sum_mib"]), f"<= {BUDGET_MIB} MiB",
                  worst["peak_rss_sum_mib"] <= BUDGET_MIB,
                  value=worst["peak_rss_sum_mib"], floor=("the budget", BUDGET_MIB), old="worker_rss")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
