#!/usr/bin/env python3
"""poll --watch (default interval, 10 s) on a 1-second run: from the run's end to the watch's.

Starts a run of one ``sleep 1`` (bundled local executor), at once starts
``scripts/mcp-runner-poll.sh <id> --watch``, and measures from the moment the
run's manifest holds its terminal status (watched here by the file's mtime
every millisecond) to the moment the watch has printed its final block and
exited. The old runner printed the end at its next 10 s tick. Budget (issue 11):
<= 0.5 s after the run ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

BUDGET_S = 0.5


def watch_delay(repo: common.Path, env: dict[str, str], seconds: float) -> float:
    """Seconds from the run's terminal status on disk to the end of its watch."""
    run_id, worker_pid, _ = common.start_run(repo, [f"sleep {seconds:g}"], env)
    watch = subprocess.Popen(
        [common.script("mcp-runner-poll.sh"), run_id, "--watch"],
        cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        ended = common.wait_for_terminal(common.manifest_path(repo, run_id))
        out, err = watch.communicate(timeout=60)
        exited = time.perf_counter()
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    common.wait_for_run(repo, run_id, worker_pid)
    if watch.returncode != 0 or f"Run {run_id} status: succeeded" not in out.decode(errors="replace"):
        raise SystemExit(f"watch of {run_id}: exit {watch.returncode}\n{out.decode(errors='replace')[-800:]}"
                         f"\n{err.decode(errors='replace')[-800:]}")
    return exited - ended


def main(argv: list[str] | None = None) -> int:
    args = common.parse(common.arguments(__doc__.splitlines()[0], runs=5, warmup=1), argv)
    report = common.Report("watch", args, "poll --watch (interval 10 s): the run's end -> the watch's end")
    seconds = 0.2 if args.smoke else 1.0
    with common.temp_repo(args.keep) as repo:
        env = common.runner_env(repo, MCP_RUNNER_SERVER="local")
        delays = [watch_delay(repo, env, seconds) for _ in range(args.warmup + args.runs)][args.warmup :]
    stats = common.Stats.of(f"run of sleep {seconds:g}: its end -> the watch's end", delays)
    report.table([stats])
    report.budget("the watch's end after the run's, worst of the runs", common.ms(stats.max),
                  f"<= {BUDGET_S * 1000:.0f} ms", stats.max <= BUDGET_S,
                  value=stats.max, floor=("the budget", BUDGET_S))
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
