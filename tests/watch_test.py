"""mcp_core.watch: a watch returns once the run's ending is fully recorded."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from mcp_core import process, watch


def write_record(path: Path, **fields: Any) -> None:
    record = {"status": "succeeded", "metrics_recorded": False, **fields}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def test_a_watch_waits_for_a_live_worker_to_record_the_metrics(tmp_path: Path) -> None:
    """Terminal but not yet in metrics.json, with its worker (this process) alive:
    the watch returns only after metrics_recorded is true."""
    manifest = tmp_path / "manifest.json"
    me = {"runner_pid": os.getpid(), "runner_start_ticks": process.start_ticks(os.getpid())}
    write_record(manifest, **me)
    shown: list[dict[str, Any]] = []
    recorded = threading.Event()

    def show() -> dict[str, Any]:
        record = json.loads(manifest.read_text())
        shown.append(record)
        return record

    def record_metrics_later() -> None:
        write_record(manifest, **{**me, "metrics_recorded": True})
        recorded.set()

    sleeps = 0

    def sleep(seconds: float) -> None:
        nonlocal sleeps
        sleeps += 1
        if sleeps == 3:  # the watch is waiting: the worker records the line now
            threading.Thread(target=record_metrics_later).start()
            assert recorded.wait(timeout=60)

    ending = watch.watch(show, lambda: manifest, 3600, sleep=sleep)
    assert not ending.dead and ending.record["status"] == "succeeded"
    assert len(shown) == 1, "the final block is printed once"
    assert json.loads(manifest.read_text())["metrics_recorded"] is True
    assert sleeps == 3


def test_a_watch_does_not_wait_when_no_worker_is_left_to_record(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    write_record(manifest, runner_pid=None)

    def never_sleep(seconds: float) -> None:
        raise AssertionError("nobody will record the metrics: the watch must not wait")

    ending = watch.watch(lambda: json.loads(manifest.read_text()), lambda: manifest, 3600, sleep=never_sleep)
    assert ending.record["metrics_recorded"] is False
