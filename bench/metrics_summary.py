#!/usr/bin/env python3
"""The metrics summary over metrics.json files of 10,000, 100,000 and 1,000,000 lines.

``scripts/mcp-runner-metrics.js`` run directly (no Node), as ``make metrics``
and callers without Node run it. Lines are shaped as the runner writes them
(about 358 bytes, so 1,000,000 lines make 341 MiB): 1 in 100 runs has a second
line (a retried run), and a few lines are not JSON. Budgets (issue 11): 100,000
lines in <= 0.25 x the old runner's 651 ms, with memory flat in the file size;
1,000,000 lines in <= 0.4 x its 3.36 s, and <= 64 MiB. Memory is sampled every
~2 ms over the summary and the child it forks for a large file: the budget is on
their summed PSS (what the two hold, each shared page once); their summed RSS
(shared pages twice) is printed beside it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

# issue 11: a quarter of the old runner's time at 100k lines, 0.4 of it at 1M
BUDGETS = {100_000: 0.25 * common.OLD_RUNNER["metrics_100k"], 1_000_000: 0.4 * common.OLD_RUNNER["metrics_1m"]}
OLD_KEYS = {100_000: "metrics_100k", 1_000_000: "metrics_1m"}
MEMORY_BUDGET_MIB = {1_000_000: 64}
FLAT_SLACK_MIB = 4.0  # "flat": the peak may not grow by more than this from the smallest file


def write_metrics(path: Path, lines: int) -> int:
    """``lines`` lines of metrics.json; returns the number of distinct runs with a valid line."""
    from mcp_core.jsfmt import iso_from_ms, stamp

    path.parent.mkdir(parents=True, exist_ok=True)
    base = 1_760_000_000_000
    runs = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        chunk: list[str] = []
        for position in range(lines):
            if position % 250_000 == 123:
                chunk.append(f"not json {position}\n")
                continue
            retried = position % 100 == 99  # the run of the line before, ended again
            run_number = position - 1 if retried else position
            runs += 0 if retried else 1
            started = base + run_number * 60_000
            duration = 30_000 + (run_number * 7919) % 90_000
            run_id = f"{stamp(iso_from_ms(started))}-{10_000 + run_number % 90_000}"
            status = "failed" if run_number % 7 == 2 and not retried else "succeeded"
            passed = 4 if status == "succeeded" else 2
            chunk.append(
                f'{{"run_id":"{run_id}","task_id":"0001","started_at":"{iso_from_ms(started)}",'
                f'"completed_at":"{iso_from_ms(started + duration)}","duration_seconds":{duration / 1000:g},'
                f'"status":"{status}","commands_passed":{passed},"commands_failed":{4 - passed},'
                f'"guardrails_present":{"true" if status == "succeeded" else "false"},'
                f'"artifact_path":".runs/0001/mcp/{run_id}","recorded_at":"{iso_from_ms(started + duration + 1)}"}}\n'
            )
            if len(chunk) >= 10_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = common.arguments(__doc__.splitlines()[0], runs=7, warmup=1)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated line counts")
    args = common.parse(parser, argv)
    sizes = [300, 3000] if args.smoke else [int(s) for s in args.sizes.split(",")]
    report = common.Report("metrics_summary", args, "scripts/mcp-runner-metrics.js (run directly), by file size")
    metrics_script = common.require_script("mcp-runner-metrics.js")
    if metrics_script is None:
        report.finish()
        return 0
    peaks: dict[int, float] = {}
    all_stats: list[common.Stats] = []
    verdicts: list[tuple[tuple[str, str, str, bool], dict[str, Any]]] = []
    with common.temp_repo(args.keep) as repo:
        env = common.runner_env(repo)
        metrics_file = repo / ".runs" / "0001" / "metrics.json"
        for lines in sizes:
            runs = write_metrics(metrics_file, lines)
            size_mib = metrics_file.stat().st_size / common.MIB

            def check(sample: common.Sample, runs: int = runs) -> None:
                summary = json.loads((repo / ".runs" / "0001" / "metrics-summary.json").read_text())
                if summary["entries_total"] != runs:  # each run once, by its latest line
                    raise SystemExit(f"entries_total {summary['entries_total']}, expected {runs}")

            subject = common.Subject(
                f"{lines:,} lines ({size_mib:.0f} MiB)", [metrics_script], env=env, cwd=repo, after=check
            )
            runs_here = args.runs if lines < 1_000_000 or args.smoke else max(1, min(args.runs, 5))
            (stats,) = common.round_robin([subject], runs_here, args.warmup, rss_runs=2)
            print(f"  measured {stats.label}: median {common.ms(stats.median)}")
            all_stats.append(stats)
            # A large file is summarized by two processes (the second a fork of the first): the
            # budget is on the memory of both, their summed PSS (each page they share counted
            # once); their summed RSS counts those pages twice, an upper bound, printed too.
            tree = [common.tree_peaks([metrics_script], env=env, cwd=repo) for _ in range(2)]
            rss_sum, pss_sum = max(rss for rss, _ in tree), max(pss for _, pss in tree)
            peaks[lines] = pss_sum
            report.figure(f"lines_{lines}", {"size_mib": size_mib, "peak_rss_sum_mib": rss_sum,
                                             "peak_pss_sum_mib": pss_sum, **stats.to_json()},
                          f"{lines:,} lines: peak summed PSS of the summary and its child {common.mib(pss_sum)}"
                          f" (summed RSS, shared pages twice: {common.mib(rss_sum)}; one process's RSS, by"
                          f" /usr/bin/time: {common.mib(stats.peak_rss_mib)})")
            if lines in BUDGETS:
                verdicts.append(((f"{lines:,} lines, median", common.ms(stats.median),
                                  f"<= {common.ms(BUDGETS[lines])}", stats.median <= BUDGETS[lines]),
                                 {"value": stats.median, "old": OLD_KEYS[lines]}))
            if lines in MEMORY_BUDGET_MIB:
                verdicts.append(((f"{lines:,} lines, peak summed PSS", common.mib(pss_sum),
                                  f"<= {MEMORY_BUDGET_MIB[lines]} MiB", pss_sum <= MEMORY_BUDGET_MIB[lines]),
                                 {"value": pss_sum, "old": OLD_KEYS[lines] + "_rss"}))
        floors = common.round_robin([common.python_floor(env)], args.runs, args.warmup, rss_runs=1)
    report.table(all_stats + floors)
    for verdict, compared in verdicts:
        report.budget(*verdict, floor=("python -c pass", floors[0].median) if compared["old"][-4:] != "_rss"
                      else None, **compared)
    smallest = min(peaks)
    growth = max(peaks.values()) - peaks[smallest]
    report.budget(f"peak summed PSS growth from {smallest:,} to {max(peaks):,} lines", common.mib(growth),
                  f"flat (<= {FLAT_SLACK_MIB:g} MiB)", growth <= FLAT_SLACK_MIB)
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
