#!/usr/bin/env python3
"""Run every benchmark at full size (``make bench``) and print the budgets at the end.

Each script runs as its own process, one after the other (they would disturb
one another in parallel). ``--smoke`` passes through (tiny sizes, one sample);
``--only a,b`` picks scripts; ``--json PATH`` keeps every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

# Quick ones first; the 2-minute heartbeat benchmark last.
BENCHMARKS = [
    "poll", "start", "commands", "watch", "metrics_summary", "migrate", "list", "worker_rss", "heartbeat_gap", "save",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--json", metavar="PATH", help="write every figure as JSON to PATH")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    info = common.machine()
    print(f"machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']}, kernel {info['kernel']}")
    load_before = common.load()
    print(f"load average before: {load_before} (/proc/loadavg: 1, 5 and 15 minutes)")
    results: list[dict[str, Any]] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mcp-bench-all-") as scratch:
        for name in names:
            out = Path(scratch) / f"{name}.json"
            command = [sys.executable, str(Path(__file__).with_name(f"{name}.py")), "--json", str(out)]
            if args.smoke:
                command.append("--smoke")
            print(flush=True)
            status = subprocess.run(command, check=False).returncode
            if status != 0:
                failed.append(name)
                print(f"!! {name} failed (exit status {status})")
            if out.exists():
                results.extend(json.loads(out.read_text()))
    print()
    print("== budgets ==")
    for result in results:
        for budget in result["budgets"]:
            mark = "-" if args.smoke else ("met" if budget["met"] else "MISSED")
            what = f"{result['benchmark']:16} {budget['what']}"
            print(f"  {what}: {budget['measured']} (budget {budget['budget']}) {mark}")
            if budget.get("ratios"):
                print(f"  {'':16} {budget['ratios']}")
    load_after = common.load()
    print(f"load average before: {load_before}, after: {load_after}")
    if args.json:
        figures = {"machine": info, "load_before": load_before, "load_after": load_after, "results": results}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
