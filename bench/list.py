#!/usr/bin/env python3
"""The runs overview (scripts/mcp-runner-list.sh) over 1,000 and 10,000 runs.

Runs are written as the runner leaves them (manifest, response files, error
artifacts, pointers), a mix of succeeded, failed, cancelled and abandoned
in-progress runs. Timed: the default table (the 50 newest), and ``--format
json`` (every run). The issue sets no budget for it; the figures show how the
cost grows with the number of runs.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = common.arguments(__doc__.splitlines()[0], runs=7, warmup=1)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated run counts")
    args = common.parse(parser, argv)
    sizes = [20, 60] if args.smoke else [int(s) for s in args.sizes.split(",")]
    report = common.Report("list", args, "scripts/mcp-runner-list.sh, by number of runs")
    list_script = common.require_script("mcp-runner-list.sh")
    if list_script is None:
        report.finish()
        return 0
    stats: list[common.Stats] = []
    with common.temp_repo(args.keep) as repo:
        env = common.runner_env(repo)
        written = 0
        for count in sorted(sizes):
            # grow the same tree: the first runs stay, newer ones are added
            for position in range(written, count):
                started = 1_760_000_000_000 + position * 60_000
                common.write_run(repo, common.run_id_at(started, 10_000 + position), started,
                                 common.status_for(position))
            written = count

            def check_json(sample: common.Sample, count: int = count) -> None:
                data = json.loads(sample.stdout)
                if data["runs_total"] != count:
                    raise SystemExit(f"list --format json: runs_total {data['runs_total']}, expected {count}")

            subjects = [
                common.Subject(f"{count:,} runs: table (50 newest)", [list_script], env=env, cwd=repo),
                common.Subject(f"{count:,} runs: --format json (all)", [list_script, "--format", "json"],
                               env=env, cwd=repo, after=check_json),
            ]
            stats += common.round_robin(subjects, args.runs, args.warmup, rss_runs=2)
        stats += common.round_robin([common.python_floor(env)], args.runs, args.warmup, rss_runs=1)
    report.table(stats)
    if len(sizes) > 1:
        small, large = sorted(sizes)[0], sorted(sizes)[-1]
        for kind, first, last in (("table", stats[0], stats[-3]), ("json", stats[1], stats[-2])):
            per_run = (last.median - first.median) / (large - small)
            report.figure(f"per_run_{kind}_s", per_run, f"{kind}: {per_run * 1e6:.0f} µs per run")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
