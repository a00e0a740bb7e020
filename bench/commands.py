#!/usr/bin/env python3
"""Trivial commands through the bundled executor: start -> run finished.

Starts runs of 1 and of 50 ``true`` commands (MCP_RUNNER_SERVER=local, so the
bundled MCP server really runs each with ``bash -c``) and times each from
spawning ``scripts/mcp-runner-start.sh`` to the moment the run's manifest holds
its terminal status (what a poll would report). The cost of one more
command is the difference of the two medians over the 49 extra commands; the
budget is that it exceeds the ``bash -c true`` floor by at most 3 ms.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

BUDGET_BEYOND_BASH_S = 0.003
BUDGET_ONE_COMMAND_RUN_S = common.OLD_RUNNER["start_to_finished"]


def time_run(repo: common.Path, count: int, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawning start to the run's terminal status on disk, and start's own share."""
    started = time.perf_counter()
    run_id, worker_pid, start_wall = common.start_run(repo, ["true"] * count, env)
    finished = common.wait_for_terminal(common.manifest_path(repo, run_id)) - started
    manifest = common.wait_for_run(repo, run_id, worker_pid)  # and its worker gone, untimed
    statuses = [c["status"] for c in manifest["commands"]]
    if manifest["status"] != "succeeded" or statuses != ["succeeded"] * count:
        raise SystemExit(f"run {run_id} ended {manifest['status']} ({statuses.count('succeeded')}/{count} succeeded)")
    return finished, start_wall


def main(argv: list[str] | None = None) -> int:
    parser = common.arguments(__doc__.splitlines()[0], runs=7, warmup=1)
    parser.add_argument("--commands", type=int, default=50)
    args = common.parse(parser, argv)
    many = 3 if args.smoke else args.commands
    report = common.Report("commands", args, f"{many} trivial commands, start -> run finished (local executor)")
    with common.temp_repo(args.keep) as repo:
        env = common.runner_env(repo, MCP_RUNNER_SERVER="local")
        timings: dict[int, list[float]] = {1: [], many: []}
        bash = common.bash_floor(env)
        for round_number in range(args.warmup + args.runs):
            for count in (1, many):
                total, _ = time_run(repo, count, env)
                if round_number >= args.warmup:
                    timings[count].append(total)
            for _ in range(5):
                sample = bash.sample()
                if round_number >= args.warmup:
                    bash.samples.append(sample)
    stats = [
        common.Stats.of("run of 1 command (start -> finished)", timings[1]),
        common.Stats.of(f"run of {many} commands (start -> finished)", timings[many]),
        bash.stats(),
    ]
    report.table(stats)
    per_command = (stats[1].median - stats[0].median) / (many - 1)
    # the spread of the per-command figure, from the extreme pairs
    low = (stats[1].min - stats[0].max) / (many - 1)
    high = (stats[1].max - stats[0].min) / (many - 1)
    beyond = per_command - stats[2].median
    report.figure("per_command_s", per_command,
                  f"one more command: {common.ms(per_command)} (range {common.ms(low)} .. {common.ms(high)})")
    report.figure("per_command_beyond_bash_s", beyond, f"beyond bash -c true: {common.ms(beyond)}")
    report.figure("total_s", stats[1].median, f"{many} commands, start -> finished: {common.ms(stats[1].median)}")
    report.figure("fixed_s", stats[0].median - per_command,
                  f"fixed cost of a run (start, worker, server start-up): {common.ms(stats[0].median - per_command)}")
    report.budget("one more command beyond bash -c true", common.ms(beyond),
                  f"<= {BUDGET_BEYOND_BASH_S * 1000:.0f} ms", beyond <= BUDGET_BEYOND_BASH_S,
                  value=per_command, floor=("bash -c true", stats[2].median), old="per_command")
    report.budget("start -> a one-command run finished", common.ms(stats[0].median),
                  f"<= {BUDGET_ONE_COMMAND_RUN_S * 1000:.0f} ms (the old runner's)",
                  stats[0].median <= BUDGET_ONE_COMMAND_RUN_S,
                  value=stats[0].median, floor=("bash -c true", stats[2].median), old="start_to_finished")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
