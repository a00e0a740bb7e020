#!/usr/bin/env python3
"""start: from spawning the wrapper to its exit after printing the run id.

``scripts/mcp-runner-start.sh --command true`` (bundled local executor). Each
sample's worker is waited for, untimed, before the next sample, so runs do not
pile up; the worker's own start-up overlaps only the tail of its start. Budget:
median <= 150 ms.
"""

from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

BUDGET_S = 0.150
_PID = re.compile(rb"^Runner PID: (\d+)$", re.MULTILINE)
_RUN_ID = re.compile(rb"^Run ID: (\S+)$", re.MULTILINE)


def main(argv: list[str] | None = None) -> int:
    args = common.parse(common.arguments(__doc__.splitlines()[0], runs=12, warmup=2), argv)
    report = common.Report("start", args, "scripts/mcp-runner-start.sh --command true, until it exits")
    with common.temp_repo(args.keep) as repo:
        env = common.runner_env(repo, MCP_RUNNER_SERVER="local")

        def wait_for_worker(sample: common.Sample) -> None:
            pid, run_id = _PID.search(sample.stdout), _RUN_ID.search(sample.stdout)
            if pid is None or run_id is None:
                raise SystemExit(f"start printed something unexpected:\n{sample.stdout.decode()}")
            manifest = common.wait_for_run(repo, run_id.group(1).decode(), int(pid.group(1)))
            if manifest["status"] != "succeeded":
                raise SystemExit(f"run {run_id.group(1).decode()} ended {manifest['status']}")

        subjects = [
            common.Subject(
                "scripts/mcp-runner-start.sh --command true",
                [common.script("mcp-runner-start.sh"), "--command", "true"],
                env=env, cwd=repo, after=wait_for_worker,
            ),
            common.Subject(
                "  .venv/bin/python bin/mcp-runner-start --command true",
                [common.PYTHON, str(common.CHECKOUT / "bin" / "mcp-runner-start"), "--command", "true"],
                env=env, cwd=repo, after=wait_for_worker,
            ),
            common.python_floor(env),
            common.bash_floor(env),
        ]
        stats = common.round_robin(subjects, args.runs, args.warmup)
        report.table(stats)
    start = stats[0]
    ratio = start.median / stats[2].median
    report.figure("ratio_to_python", ratio, f"ratio to .venv/bin/python -c pass (medians): {ratio:.2f}")
    report.budget("median start", common.ms(start.median), f"<= {BUDGET_S * 1000:.0f} ms", start.median <= BUDGET_S,
                  value=start.median, floor=("python -c pass", stats[2].median), old="start")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
