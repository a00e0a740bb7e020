#!/usr/bin/env python3
"""Migration of 10,000 legacy run directories, --dry-run and for real.

``scripts/mcp-runner-migrate.js`` run directly (no Node). The legacy tree is
shaped like the old runner's ``.runs/local-mcp/``: 9 in 10 directories are runs
(manifest of 4 commands, 4 response files, runner.log), 1 in 10 is a
run-local-mcp log directory (its small manifest and mcp-server.log). A real
migration changes the tree, so every sample gets a fresh copy, untimed and
written to disk before the clock starts, like a user's tree. Its manifests are
copies, because migration replaces them and so frees their blocks as it would
in a real tree; the files it only moves are hard links to the template.

No tree is deleted until every sample is taken, and a sample starts at least
a minute after the previous one ended. On a file system without a journal (this
machine's), ext4 passes over inodes freed in the last minute (six, while their
table block is not yet written) whenever it allocates one: removing the previous
sample's tree just before a sample, or the manifests the previous migration
replaced, made each mkdir, symlink and file creation scan through thousands of
them (perf: ``recently_deleted``), and the figure grew with every sample, from
5 s to over 20 s. A user migrates a tree that has been on disk for a while.
Budgets: --dry-run <= 0.4 s, the migration <= 0.5 x the old runner's 14.3 s (issue 11).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

# ext4 without a journal skips inodes freed less than 60 s ago (their table block written)
INODE_RECENCY_S = 61.0
BUDGET_DRY_S = 0.4
BUDGET_REAL_S = 0.5 * common.OLD_RUNNER["migrate_10k"]  # issue 11: stay at half the old runner's


def dash(ms_value: int) -> str:
    """The old runner's manifests hold dash stamps (2025-10-18T16-21-54-804Z)."""
    from mcp_core.jsfmt import iso_from_ms, stamp

    return stamp(iso_from_ms(ms_value))


def legacy_manifest(run_id: str, started_ms: int) -> dict[str, object]:
    from mcp_core.paths import command_file_name

    base = f".runs/local-mcp/{run_id}"
    commands = []
    at = started_ms
    for index, command in enumerate(common.RUN_COMMANDS, start=1):
        commands.append({
            "index": index,
            "command": command,
            "status": "succeeded",
            "started_at": dash(at),
            "completed_at": dash(at + 8000),
            "exit_code": 0,
            "manifest_path": None,
            "response_file": f"{base}/{command_file_name(index, command)}",
            "summary": f"{command} finished successfully.",
        })
        at += 8001
    return {
        "runner": "agents-sdk",
        "script": "scripts/agents_mcp_runner.mjs",
        "status": "succeeded",
        "commands": commands,
        "started_at": dash(started_ms),
        "updated_at": dash(at),
        "completed_at": dash(at),
        "run_id": run_id,
        "repo_root": "/Users/someone/Code/project",
        "approval_policy": "never",
        "timeout_seconds": 3600,
        "runner_pid": 25348,
        "runner_log": f"{base}/runner.log",
    }


def write_legacy_tree(root: Path, count: int) -> int:
    """``count`` legacy directories under ``root`` (the legacy root); returns how many are runs."""
    from mcp_core.jsfmt import dumps_pretty, iso_from_ms, stamp
    from mcp_core.paths import command_file_name

    root.mkdir(parents=True)
    runs = 0
    for position in range(count):
        started = 1_700_000_000_000 + position * 61_000
        if position % 10 == 9:  # a run-local-mcp log directory
            name = stamp(iso_from_ms(started))[:19] + "Z"
            directory = root / name
            if directory.exists():
                continue
            directory.mkdir()
            (directory / "manifest.json").write_text(dumps_pretty({
                "mode": "mcp", "started_at": name, "repo": "/Users/someone/Code/project",
                "command": "codex -C /Users/someone/Code/project mcp-server",
            }))
            (directory / "mcp-server.log").write_text('{"jsonrpc":"2.0","id":0,"result":{}}\n' * 4)
            runs += 1
            continue
        run_id = common.run_id_at(started, 20_000 + position % 40_000)
        directory = root / run_id
        directory.mkdir()
        manifest = legacy_manifest(run_id, started)
        (directory / "manifest.json").write_text(dumps_pretty(manifest))
        for index, command in enumerate(common.RUN_COMMANDS, start=1):
            text = '{"exit_code":0,"summary":"done","manifest_path":null}'
            (directory / command_file_name(index, command)).write_text(
                dumps_pretty([{"type": "text", "text": text}])
            )
        (directory / "runner.log").write_text("")
        runs += 1
    return runs


def copy_manifests(legacy_root: Path) -> None:
    """Each hard-linked manifest under ``legacy_root`` becomes a file of its own."""
    for entry in os.scandir(legacy_root):
        manifest = os.path.join(entry.path, "manifest.json")
        copy = manifest + ".copy"
        shutil.copyfile(manifest, copy)
        os.replace(copy, manifest)


def main(argv: list[str] | None = None) -> int:
    parser = common.arguments(__doc__.splitlines()[0], runs=3, warmup=0)
    parser.add_argument("--dirs", type=int, default=10_000)
    args = common.parse(parser, argv)
    count = 50 if args.smoke else args.dirs
    report = common.Report("migrate", args, f"scripts/mcp-runner-migrate.js over {count:,} legacy directories")
    migrate_script = common.require_script("mcp-runner-migrate.js")
    if migrate_script is None:
        report.finish()
        return 0
    with common.temp_repo(args.keep) as repo:
        template = repo.parent / "template"
        expected = write_legacy_tree(template / ".runs" / "local-mcp", count)
        env = common.runner_env(repo)

        used_trees = repo.parent / "migrated"
        used_trees.mkdir()

        recency = 0.0 if args.smoke else INODE_RECENCY_S
        last_migration_ended = time.monotonic()  # and the benchmarks before this one removed their trees

        def fresh_tree() -> None:
            if (repo / ".runs").exists():  # set aside, removed with the rest at the end
                os.rename(repo / ".runs", used_trees / str(len(os.listdir(used_trees))))
            subprocess.run(["cp", "-al", str(template / ".runs"), str(repo / ".runs")], check=True)
            copy_manifests(repo / ".runs" / "local-mcp")
            os.sync()  # the set-up's writes are not the migration's to flush
            time.sleep(max(0.0, last_migration_ended + recency - time.monotonic()))

        def after_migration(sample: common.Sample) -> None:
            nonlocal last_migration_ended
            last_migration_ended = time.monotonic()
            check(sample, "migrated")

        def check(sample: common.Sample, status: str) -> None:
            text = sample.stdout.decode()
            done = text.count(f": {status} — ")
            if done != expected or "Migration log written to" not in text:
                raise SystemExit(f"migrate: {done} {status} of {expected}:\n{text[-2000:]}")

        fresh_tree()
        dry = common.Subject(
            "migrate --dry-run", [migrate_script, "--dry-run"], env=env, cwd=repo,
            after=lambda sample: check(sample, "planned"),
        )
        real = common.Subject(
            "migrate", [migrate_script], env=env, cwd=repo, before=fresh_tree,
            after=after_migration,
        )
        stats = [*common.round_robin([dry], args.runs, args.warmup),
                 *common.round_robin([real], args.runs, args.warmup, rss_runs=1)]
        sample = next((template / ".runs" / "local-mcp").iterdir()) / "manifest.json"
        if "task_id" in sample.read_text():
            raise SystemExit(f"the template tree was changed through a hard link: {sample}")
        stats += common.round_robin([common.python_floor(env)], args.runs, args.warmup, rss_runs=1)
        report.table(stats)
    report.figure("directories", count)
    floor = ("python -c pass", stats[2].median)
    report.budget("--dry-run, median", common.ms(stats[0].median), f"<= {common.ms(BUDGET_DRY_S)}",
                  stats[0].median <= BUDGET_DRY_S, value=stats[0].median, floor=floor, old="migrate_dry_10k")
    report.budget("migration, median", common.ms(stats[1].median), f"<= {common.ms(BUDGET_REAL_S)}",
                  stats[1].median <= BUDGET_REAL_S, value=stats[1].median, floor=floor, old="migrate_10k")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
