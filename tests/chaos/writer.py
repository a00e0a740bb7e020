"""A process that writes through the runner's own code in a tight loop, to be
SIGKILLed at random moments by tests/chaos/chaos_test.py.

    python writer.py manifest <manifest path> <writer id> <ack file>
    python writer.py metrics <repo root> <writer id> <ack file>

``manifest``: each pass is one ``run_record.update`` (the locked read-modify-write
every runner process uses) that adds 1 to ``counts[<writer id>]`` and rewrites
a padding of varying size, so the kill often lands inside the write. After a
save returns, the new count is appended to the ack file: a count there was
committed and must never be lost, whatever is killed later.

``metrics``: each pass records the ending of a made-up run ``w<id>-<k>``
through ``metrics.record_run`` (append once, under the file's lock) and then
acks ``k``. A restarted writer first records its last unacked run again, as a
relaunched worker does, which must not add a second line.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from mcp_core import metrics, run_record
from mcp_core.paths import locate


def last_ack(path: Path) -> int:
    if not path.exists():
        return -1
    values = [int(v) for v in path.read_text().split()]
    return max(values, default=-1)


def ack(path: Path, value: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{value}\n".encode())
    finally:
        os.close(fd)


def manifest_loop(target: Path, writer: str, acks: Path) -> None:
    def change(record: dict) -> None:
        counts = record.setdefault("counts", {})
        counts[writer] = counts.get(writer, 0) + 1
        record["padding"] = "p" * random.randrange(1, 400_000)

    while True:
        saved = run_record.update(target, change)
        ack(acks, saved["counts"][writer])


def fake_manifest(run_id: str) -> dict:
    return {
        "run_id": run_id,
        "task_id": "0001",
        "status": "succeeded",
        "started_at": "2026-01-01T00:00:00.000Z",
        "completed_at": "2026-01-01T00:00:01.500Z",
        "commands": [{"index": 1, "command": "true", "status": "succeeded"}],
        "artifact_root": f".runs/0001/mcp/{run_id}",
    }


def metrics_loop(repo: Path, writer: str, acks: Path) -> None:
    loc = locate({"MCP_RUNNER_REPO_ROOT": str(repo)})
    k = last_ack(acks) + 1
    while True:
        metrics.record_run(loc, fake_manifest(f"w{writer}-{k}"))
        ack(acks, k)
        k += 1
        time.sleep(0.002)  # keeps metrics.json (read whole after every kill) from growing too fast


def main() -> None:
    mode, target, writer, acks = sys.argv[1:5]
    if mode == "manifest":
        manifest_loop(Path(target), writer, Path(acks))
    else:
        metrics_loop(Path(target), writer, Path(acks))


if __name__ == "__main__":
    main()
