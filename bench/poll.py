#!/usr/bin/env python3
"""poll of a finished run, through the whole chain callers run.

``scripts/mcp-runner-poll.sh <id> --format json`` goes through
``scripts/_runner-python.sh`` to ``bin/mcp-runner-poll``; all of it is timed.
The shorter chains (the inner wrapper, the Python entry point alone) are timed
beside it to show what each hop costs. Budgets: median <= 1.5 x the bare
``.venv/bin/python -c pass``, peak RSS <= 20 MiB.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

RATIO_BUDGET = 1.5
RSS_BUDGET_MIB = 20


def main(argv: list[str] | None = None) -> int:
    args = common.parse(common.arguments(__doc__.splitlines()[0], runs=40, warmup=3), argv)
    report = common.Report(
        "poll", args, "scripts/mcp-runner-poll.sh <id> --format json, a finished run of 4 commands"
    )
    with common.temp_repo(args.keep) as repo:
        run_id = common.run_id_at(1_760_000_000_000, 4242)
        common.write_run(repo, run_id, 1_760_000_000_000, "succeeded")
        env = common.runner_env(repo)
        chain = common.Subject(
            "scripts/mcp-runner-poll.sh <id> --format json",
            [common.script("mcp-runner-poll.sh"), run_id, "--format", "json"], env=env, cwd=repo,
        )
        subjects = [
            chain,
            common.Subject(
                "  scripts/_runner-python.sh poll <id> --format json",
                [common.script("_runner-python.sh"), "poll", run_id, "--format", "json"], env=env, cwd=repo,
            ),
            common.Subject(
                "  .venv/bin/python bin/mcp-runner-poll <id> --format json",
                [common.PYTHON, str(common.CHECKOUT / "bin" / "mcp-runner-poll"), run_id, "--format", "json"],
                env=env, cwd=repo,
            ),
            common.Subject(
                "scripts/mcp-runner-poll.sh <id> (text)",
                [common.script("mcp-runner-poll.sh"), run_id], env=env, cwd=repo,
            ),
            common.python_floor(env),
            common.bash_floor(env),
        ]
        stats = common.round_robin(subjects, args.runs, args.warmup)
        report.table(stats)
        first = chain.samples[-1].stdout.decode()
        if f'"run_id": "{run_id}"' not in first or '"status": "succeeded"' not in first:
            raise SystemExit(f"poll printed something unexpected:\n{first}")
    poll_stats, python_stats = stats[0], stats[4]
    ratio = poll_stats.median / python_stats.median
    report.figure("ratio_to_python", ratio, f"ratio to .venv/bin/python -c pass (medians): {ratio:.2f}")
    if poll_stats.cpu and python_stats.cpu:  # what to compare when the machine is loaded (BENCHMARKS.md)
        cpu_ratio = poll_stats.cpu / python_stats.cpu
        report.figure("cpu_ratio_to_python", cpu_ratio, f"the same ratio in CPU time (user + system): {cpu_ratio:.2f}")
    report.budget("median / python -c pass", f"{ratio:.2f}", f"<= {RATIO_BUDGET}", ratio <= RATIO_BUDGET,
                  value=poll_stats.median, floor=("python -c pass", python_stats.median), old="poll")
    rss = poll_stats.peak_rss_mib or 0.0
    report.budget("peak RSS", common.mib(rss), f"<= {RSS_BUDGET_MIB} MiB", rss <= RSS_BUDGET_MIB,
                  value=rss, floor=("the budget", RSS_BUDGET_MIB), old="poll_rss")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
