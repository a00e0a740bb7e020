#!/usr/bin/env python3
"""One command boundary's save: ``run_record.command_finished`` in-process.

A manifest of N commands (all but the last two succeeded, as a worker leaves
it), then the boundary between the last two saved again and again: lock, read,
parse, the change, encode, atomic write with its fsyncs. Figures are the CPU
time (user + system) and the wall time of one save, median of ``--runs``
samples, for N = 1 (a boundary into nothing), 50 and 1000 commands; and the
same without the fsyncs (``store.fsync_deferred``), which is what the code
itself costs; and ``run_record.still_owned`` right after the save. No
budget: issue 11's per-command budget is ``bench/commands.py``'s.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

from mcp_core import manifest as manifest_mod  # noqa: E402
from mcp_core import paths, run_record, store  # noqa: E402

SIZES = (1, 50, 1000)


def build_manifest(repo: Path, count: int) -> tuple[Path, run_record.Identity]:
    loc = paths.Locations(repo, "0001", repo / ".runs" / "0001" / "cli", repo / ".runs", repo / ".runs")
    run_id = "2026-12-06T04-51-06-856Z-30478"
    run_dir = loc.run_dir(run_id)
    run_dir.mkdir(parents=True)
    now = "2026-12-06T04:51:06.856Z"
    record = manifest_mod.new_manifest(
        loc, run_id, ["true"] * max(count, 2), approval_policy="never", timeout_seconds=900,
        now=now, resume_token="0" * 32,
    )  # fmt: skip
    me = run_record.Identity.me()
    record.update(status="in_progress", runner_pid=me.pid, runner_start_ticks=me.ticks)
    record["mcp_server"] = {"kind": "local", "command": "python -m mcp_core.servers.local"}
    for command in record["commands"]:
        command.update(status="succeeded", started_at=now, completed_at=now, **result_of(command["index"]))
    record["commands"][-1].update(manifest_mod.new_command(len(record["commands"]), "true"))
    record["commands"][-1].update(status="running", started_at=now)
    if count == 1:
        record["commands"].pop(0)
        record["commands"][0]["index"] = 1
    path = run_dir / "manifest.json"
    store.write_json(path, record)
    return path, me


def result_of(index: int) -> dict[str, object]:
    return {
        "exit_code": 0,
        "manifest_path": None,
        "response_file": f".runs/0001/cli/2026-12-06T04-51-06-856Z-30478/{index:03d}-true.json",
        "summary": "Command exited with status 0",
    }


def one_save(path: Path, me: run_record.Identity, count: int) -> tuple[float, float]:
    position = 0 if count == 1 else count - 2
    following = None if count == 1 else count - 1
    wall, cpu = time.perf_counter(), time.process_time()
    run_record.command_finished(path, me, position, result_of(position + 1), following, "2026-12-06T04:51:07.000Z")
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(
    path: Path, me: run_record.Identity, count: int, runs: int, warmup: int, synced: bool
) -> tuple[list[float], list[float]]:
    walls: list[float] = []
    cpus: list[float] = []
    for round_number in range(warmup + runs):
        if synced:
            wall, cpu = one_save(path, me, count)
        else:
            with store.fsync_deferred():
                wall, cpu = one_save(path, me, count)
        if round_number >= warmup:
            walls.append(wall)
            cpus.append(cpu)
    return walls, cpus


def time_still_owned(path: Path, me: run_record.Identity, runs: int) -> list[float]:
    """The ownership check a worker makes before recording a command's answer."""
    cpus: list[float] = []
    for _ in range(runs):
        cpu = time.process_time()
        run_record.still_owned(path, me)
        cpus.append(time.process_time() - cpu)
    return cpus


def main(argv: list[str] | None = None) -> int:
    parser = common.arguments(__doc__.splitlines()[0], runs=200, warmup=20)
    args = common.parse(parser, argv)
    report = common.Report("save", args, "one command boundary's manifest save (run_record.command_finished)")
    sizes = (1, 50) if args.smoke else SIZES
    with tempfile.TemporaryDirectory() as temp:
        for count in sizes:
            path, me = build_manifest(Path(temp) / f"repo{count}", count)
            size = path.stat().st_size
            for synced in (False, True):
                walls, cpus = measure(path, me, count, args.runs, args.warmup, synced)
                cpu, wall = statistics.median(cpus) * 1000, statistics.median(walls) * 1000
                how = "with fsyncs" if synced else "no fsyncs"
                report.figure(
                    f"save_{count}_{'synced' if synced else 'unsynced'}", {"cpu_ms": cpu, "wall_ms": wall},
                    f"save, {count} commands ({size // 1024} KiB), {how}: CPU {cpu:.3f} ms, wall {wall:.3f} ms"
                    f" (medians of {len(cpus)})",
                )
            cpu = statistics.median(time_still_owned(path, me, args.runs)) * 1000
            report.figure(f"still_owned_{count}", {"cpu_ms": cpu},
                          f"still_owned after the worker's own save, {count} commands: CPU {cpu:.3f} ms")
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
