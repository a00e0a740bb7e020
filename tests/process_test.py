from __future__ import annotations

import os
import subprocess
import threading

from mcp_core import process


def test_children_are_found_from_every_thread_as_a_scan_of_proc_finds_them() -> None:
    """A child started from another thread is listed under that thread's task: both ways see it."""
    started: list[subprocess.Popen[bytes]] = [subprocess.Popen(["sleep", "30"])]
    thread = threading.Thread(target=lambda: started.append(subprocess.Popen(["sleep", "30"])))
    thread.start()
    thread.join()
    try:
        pids = {child.pid for child in started}
        listed = set(process._children(os.getpid()))
        assert pids <= listed
        assert listed == set(process._children_by_scan(os.getpid()))
    finally:
        for child in started:
            child.kill()
            child.wait()
    assert not pids & set(process._children(os.getpid()))
