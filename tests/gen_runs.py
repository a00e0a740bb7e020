"""Write N realistic runs into a repository's .runs/, shaped as the runner writes them.

Each run gets what the runner leaves behind: ``manifest.json`` (built with
``manifest.new_manifest``/``new_command``, then moved through the states the
worker saves), ``runner.log``, ``.heartbeat``, ``.resume-token`` (0600), one
``NN-<slug>.json`` response per command that ran, an ``errors/NN-<slug>.json``
artifact for a failed command, the compatibility pointer (relative symlink and
``compat.json``) and, for runs that ended, one line in ``metrics.json``.

Files are written plainly (no fsync, no locks): a test tree of 10,000 runs has
to be built in seconds, and nothing reads it while it is made.

As a program, for demos and the README sessions:
    python tests/gen_runs.py REPO COUNT [--task ID] [--seed N] [--hostile]
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_core import manifest as mf  # noqa: E402
from mcp_core.jsfmt import dumps_compact, dumps_pretty, iso_from_ms, now_ms, stamp  # noqa: E402
from mcp_core.metrics import metrics_entry  # noqa: E402
from mcp_core.paths import Locations, command_file_name, locate  # noqa: E402

DEFAULT_COMMANDS = ["npm run build", "npm run lint", "npm run test", "bash scripts/spec-guard.sh --dry-run"]
OTHER_COMMANDS = [
    ["pytest -q"],
    ["bash -lc 'exit 2'"],
    ["make lint", "make test"],
    ["npm run build", "bash scripts/spec-guard.sh --dry-run"],
]
CANCEL_MESSAGE = "Run cancelled by scripts/mcp-runner-cancel.sh; its worker did not stop within 10s and was killed."
HOSTILE_SUMMARY = '<script>alert("x")</script> & <img src=x onerror=alert(1)> "quoted" \x1b[31mred'


@dataclass
class GeneratedRun:
    run_id: str
    status: str
    reason: str | None = None  # status_detail of a failed run
    files: list[str] = field(default_factory=list)  # paths relative to the repo root
    artifact_root: str = ""
    pointer_target: str = ""
    artifacts: bool = True  # False: the manifest only


def dead_worker() -> tuple[int, int | None]:
    """The pid and start ticks of a process that has exited: a worker that is gone."""
    from mcp_core.process import start_ticks

    child = subprocess.Popen(["sleep", "5"])
    ticks = start_ticks(child.pid)
    child.kill()
    child.wait(timeout=30)
    return child.pid, ticks


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)


def _response(exit_code: object, summary: str) -> list[dict[str, str]]:
    payload = dumps_compact({"exit_code": exit_code, "summary": summary, "manifest_path": None})
    return [{"type": "text", "text": payload}]


def _plan(rng: random.Random, position: int, count: int) -> tuple[str, str | None]:
    """Status and failure reason of the run at ``position`` (0 = oldest)."""
    from_newest = count - 1 - position
    if count >= 8 and from_newest == 0:
        return "in_progress", None  # live: fresh heartbeat
    if count >= 8 and from_newest == 1:
        return "in_progress", "stale"  # its worker died: heartbeat stale
    if count >= 8 and from_newest == 2:
        return "queued", None
    roll = rng.random()
    if roll < 0.70:
        return "succeeded", None
    if roll < 0.92:
        kind = rng.random()
        if kind < 0.6:
            return "failed", "command-failed"
        if kind < 0.85:
            return "failed", "tool-invocation-error"
        return "failed", "malformed-tool-response"
    return "cancelled", None


def generate(
    repo: Path,
    count: int,
    *,
    task_id: str = "0001",
    seed: int = 1,
    end_ms: int | None = None,
    spacing_seconds: float = 900,
    hostile: bool = False,
    artifacts: bool = True,
) -> list[GeneratedRun]:
    """Write ``count`` runs, oldest first, the newest starting about a minute before ``end_ms``.

    With 8 or more runs the three newest are not terminal: one live
    (``in_progress``, fresh heartbeat), one stale, one ``queued``. With
    ``hostile`` the oldest failed run's command summary carries HTML and a
    terminal escape, to prove they are escaped. With ``artifacts=False`` only
    the manifests and ``metrics.json`` are written (what the overview reads),
    which makes a 10,000-run tree several times faster to build.
    """
    rng = random.Random(seed)
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo), "MCP_RUNNER_TASK_ID": task_id})
    loc.runs_root.mkdir(parents=True, exist_ok=True)
    loc.legacy_root.mkdir(parents=True, exist_ok=True)
    loc.metrics_root.mkdir(parents=True, exist_ok=True)
    end = now_ms() if end_ms is None else end_ms
    worker_pid, worker_ticks = dead_worker()
    metrics_lines: list[str] = []
    generated: list[GeneratedRun] = []
    hostile_pending = hostile
    for position in range(count):
        status, reason = _plan(rng, position, count)
        start = int(end - 60_000 - (count - 1 - position) * spacing_seconds * 1000)
        run = _write_run(
            loc,
            rng,
            position=position,
            start_ms=start,
            now_ms=end,
            status=status,
            reason=reason,
            worker=(worker_pid, worker_ticks),
            hostile=hostile_pending and status == "failed" and reason == "command-failed",
            metrics_lines=metrics_lines,
            artifacts=artifacts,
        )
        if run.status == "failed" and run.reason == "command-failed" and hostile_pending:
            hostile_pending = False
        generated.append(run)
    if metrics_lines:
        with open(loc.metrics_file, "a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in metrics_lines))
    return generated


def _write_run(
    loc: Locations,
    rng: random.Random,
    *,
    position: int,
    start_ms: int,
    now_ms: int,
    status: str,
    reason: str | None,
    worker: tuple[int, int | None],
    hostile: bool,
    metrics_lines: list[str],
    artifacts: bool,
) -> GeneratedRun:
    commands = list(DEFAULT_COMMANDS) if rng.random() < 0.8 else list(rng.choice(OTHER_COMMANDS))
    run_id = f"{stamp(iso_from_ms(start_ms - 1))}-{20000 + position % 40000}"
    run_dir = loc.run_dir(run_id)
    run_dir.mkdir()
    pointer_to_runs = os.path.relpath(loc.runs_root, loc.legacy_root / "x")
    token = f"{rng.getrandbits(256):064x}"
    manifest = mf.new_manifest(
        loc,
        run_id,
        commands,
        approval_policy="never",
        timeout_seconds=rng.choice([120, 600, 3600]),
        now=iso_from_ms(start_ms),
        resume_token=token,
    )
    run = GeneratedRun(run_id, status, reason if status == "failed" else None, artifacts=artifacts)
    run.artifact_root = manifest["artifact_root"]
    run.pointer_target = os.path.join(pointer_to_runs, run_id, mf.MANIFEST_NAME)
    if status == "queued":  # start wrote the manifest; the launch has not happened (yet)
        manifest["heartbeat_at"] = iso_from_ms(now_ms - 2_000)
        _finish_files(loc, run, run_dir, manifest, token, log="")
        return run
    # start: in_progress before the worker exists, then the worker's pid and start time
    manifest["status"] = "in_progress"
    manifest["runner_start_ticks"] = None
    manifest["runner_pid"], manifest["runner_start_ticks"] = worker
    manifest["mcp_server"] = {
        "mode": "local",
        "command": f"{sys.executable} -m mcp_core.servers.local",
        "pid": worker[0] + 1,
        "start_ticks": worker[1],
    }
    log_lines = [f"[worker] started the MCP server (local), pid {worker[0] + 1}"]
    clock = start_ms + 100
    last_command = len(commands)
    if status in ("failed", "cancelled"):
        last_command = rng.randint(1, len(commands))
    elif status == "in_progress":
        last_command = min(len(commands), 2)
    for entry in manifest["commands"]:
        index = entry["index"]
        if index > last_command:
            break
        entry["status"] = "running"
        entry["started_at"] = iso_from_ms(clock)
        clock += rng.randint(2_000, 40_000)
        log_lines.append(f"[worker] command {index}: {entry['command']}")
        if status == "in_progress" and index == last_command:
            break  # still running
        response_name = command_file_name(index, entry["command"])
        if not (index == last_command and status in ("failed", "cancelled")):
            summary = f"{entry['command']} completed successfully."
            _set_result(run, run_dir, entry, response_name, 0, summary, _response(0, summary), clock)
            entry["status"] = "succeeded"
            continue
        if status == "cancelled":
            entry["status"] = "failed"
            entry["completed_at"] = iso_from_ms(clock)
            entry["summary"] = CANCEL_MESSAGE
            details = {"message": CANCEL_MESSAGE}
            _error_artifact(run, run_dir, manifest, entry, response_name, "cancelled", details, clock)
            log_lines.append("[worker] cancelled: SIGTERM received; the command's process group was stopped")
            break
        _fail(run, run_dir, manifest, entry, response_name, reason or "command-failed", clock, hostile)
        log_lines.append(f"[worker] command {index} failed: {reason}")
        break

    manifest["heartbeat_at"] = iso_from_ms(clock - rng.randint(0, 9_000))
    if status == "in_progress":
        stale = reason == "stale"  # its worker died 45 minutes ago
        manifest["heartbeat_at"] = iso_from_ms(now_ms - (45 * 60_000 if stale else 3_000))
        _finish_files(loc, run, run_dir, manifest, token, log="\n".join(log_lines) + "\n")
        return run

    # lifecycle.finish_run: terminal status, summary lines, then the metrics line once
    manifest["status"] = status
    manifest["status_detail"] = reason if status == "failed" else None
    manifest["completed_at"] = iso_from_ms(clock + 1)
    lines = [CANCEL_MESSAGE] if status == "cancelled" else []
    sentence = mf.guardrail_sentence(manifest)
    if sentence:
        lines.append(sentence)
        log_lines.append(sentence)
    if lines:
        manifest["summary"] = "\n".join(lines)
    metrics_lines.append(dumps_compact(metrics_entry(manifest, iso_from_ms(clock + 2))))
    manifest["metrics_recorded"] = True
    manifest["updated_at"] = iso_from_ms(clock + 3)
    _finish_files(loc, run, run_dir, manifest, token, log="\n".join(log_lines) + "\n")
    return run


def _set_result(
    run: GeneratedRun,
    run_dir: Path,
    entry: dict[str, Any],
    response_name: str,
    exit_code: object,
    summary: str,
    content: list[dict[str, str]],
    clock: int,
) -> None:
    if run.artifacts:
        _write(run_dir / response_name, dumps_pretty(content))
    relative = f"{run.artifact_root}/{response_name}"
    run.files.append(relative)
    entry["completed_at"] = iso_from_ms(clock)
    entry["exit_code"] = exit_code
    entry["response_file"] = relative
    entry["summary"] = summary


def _fail(
    run: GeneratedRun,
    run_dir: Path,
    manifest: dict[str, Any],
    entry: dict[str, Any],
    response_name: str,
    reason: str,
    clock: int,
    hostile: bool,
) -> None:
    details: dict[str, Any]
    if reason == "tool-invocation-error":
        message = "MCP error -32001: Request timed out"
        entry["completed_at"] = iso_from_ms(clock)
        entry["summary"] = f"Tool invocation failed: {message}"
        details = {
            "message": message,
            "stack": f"McpError: {message}\n    at call_tool (mcp_core/mcp_client.py:120)\n    at run_command",
        }
    elif reason == "malformed-tool-response":
        text = "I ran the command; it printed a lot of output and then finished."
        content = [{"type": "text", "text": text}]
        _set_result(run, run_dir, entry, response_name, None, text, content, clock)
        details = {
            "note": "Expected JSON object with numeric exit_code.",
            "raw_summary": text,
            "normalized_response": content,
        }
    else:
        code = 2 if "exit 2" in entry["command"] else 1
        summary = HOSTILE_SUMMARY if hostile else f"{entry['command']} failed with exit code {code}."
        content = _response(code, summary)
        _set_result(run, run_dir, entry, response_name, code, summary, content, clock)
        details = {"exit_code": code, "summary": summary, "normalized_response": content}
    entry["status"] = "failed"
    _error_artifact(run, run_dir, manifest, entry, response_name, reason, details, clock)


def _error_artifact(
    run: GeneratedRun,
    run_dir: Path,
    manifest: dict[str, Any],
    entry: dict[str, Any],
    file_name: str,
    reason: str,
    details: dict[str, Any],
    clock: int,
) -> None:
    artifact = {
        "run_id": manifest["run_id"],
        "task_id": manifest["task_id"],
        "command_index": entry["index"],
        "command": entry["command"],
        "created_at": iso_from_ms(clock),
        "reason": reason,
        "details": details,
    }
    if run.artifacts:
        (run_dir / "errors").mkdir(exist_ok=True)
        _write(run_dir / "errors" / file_name, dumps_pretty(artifact))
    entry["error_file"] = f"{run.artifact_root}/errors/{file_name}"
    run.files.append(entry["error_file"])


def _finish_files(
    loc: Locations, run: GeneratedRun, run_dir: Path, manifest: dict[str, Any], token: str, *, log: str
) -> None:
    _write(run_dir / mf.MANIFEST_NAME, dumps_pretty(manifest))
    if not run.artifacts:
        run.files.insert(0, f"{run.artifact_root}/{mf.MANIFEST_NAME}")
        return
    _write(run_dir / ".resume-token", token + "\n", 0o600)
    _write(run_dir / ".heartbeat", f"{manifest['heartbeat_at']}\n")
    _write(run_dir / "runner.log", log)
    run.files[:0] = [f"{run.artifact_root}/{name}" for name in (mf.MANIFEST_NAME, "runner.log")]
    pointer_dir = loc.pointer_dir(run.run_id)
    pointer_dir.mkdir()
    # The relative link create_pointer makes: from <legacy root>/<id>/ to the run's manifest.
    os.symlink(run.pointer_target, pointer_dir / mf.MANIFEST_NAME)
    compat = {
        "artifact_root": run.artifact_root,
        "manifest": f"{run.artifact_root}/{mf.MANIFEST_NAME}",
        "pointer": "symlink",
        "created_at": manifest["started_at"],
    }
    _write(pointer_dir / "compat.json", dumps_pretty(compat))


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Write N realistic runs into REPO/.runs/.")
    parser.add_argument("repo", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--task", default="0001")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--spacing", type=float, default=900, help="seconds between run starts")
    parser.add_argument("--hostile", action="store_true")
    args = parser.parse_args(argv)
    runs = generate(
        args.repo.resolve(),
        args.count,
        task_id=args.task,
        seed=args.seed,
        spacing_seconds=args.spacing,
        hostile=args.hostile,
    )
    print(f"Wrote {len(runs)} runs under {args.repo}/.runs/{args.task}/mcp")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
