"""Durable files: atomic writes, fsync, and a lock around read-modify-write.

Every JSON file is replaced whole by rename from a temporary file with a name
unique to the writer (pid, thread, random), so a reader sees the old file or
the new one, never a part. Writers of one manifest serialise on an exclusive
``flock`` of the run directory, so the worker, its heartbeat, poll's stale mark
and resume's events never overwrite each other's updates.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mcp_core.jsfmt import dumps_pretty

_DEFERRED = threading.local()


@contextlib.contextmanager
def fsync_deferred() -> Iterator[None]:
    """Atomic writes made in this block (by this thread) skip their fsyncs.

    For bulk work over thousands of files (migration), where what crash safety
    rests on is the order of the steps, and one ``os.sync()`` at the end (the
    caller's job) makes the whole batch durable at once. Everywhere else every
    write is fsync'ed as before.
    """
    previous = getattr(_DEFERRED, "active", False)
    _DEFERRED.active = True
    try:
        yield
    finally:
        _DEFERRED.active = previous


def _fsync_deferred() -> bool:
    return bool(getattr(_DEFERRED, "active", False))


def _fsync_dir(directory: Path) -> None:
    if _fsync_deferred():
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` whole or not at all."""
    directory = path.parent
    # os.urandom, not secrets: importing secrets loads OpenSSL (~10 ms of every command's start-up)
    tmp = directory / f".{path.name}.{os.getpid()}.{threading.get_ident()}.{os.urandom(4).hex()}.tmp"
    try:
        # Opened inside the try: a KeyboardInterrupt (Ctrl-C on `poll --watch`)
        # right after the open must not leave the empty temporary file behind.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # the umask must not widen or narrow what we ask for
            data = text.encode("utf-8", "surrogateescape")
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if not _fsync_deferred():
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def write_json(path: Path, value: Any, mode: int = 0o644) -> None:
    atomic_write_text(path, dumps_pretty(value), mode)


def read_json(path: Path) -> Any:
    """Parse a JSON file (raises OSError or ValueError)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        try:
            return json.load(handle)
        except RecursionError:  # hostile nesting ([[[[...) is invalid input, not a crash
            raise ValueError("JSON nested too deeply") from None


@contextlib.contextmanager
def locked_dir(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (an flock on its descriptor)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                break
            except OSError as exc:  # pragma: no cover - EINTR is retried by Python
                if exc.errno != errno.EINTR:
                    raise
        yield
    finally:
        os.close(fd)  # closing releases the lock


def update_json(path: Path, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Locked read-modify-write of a JSON object file; returns the saved object.

    ``change`` mutates the freshly read object in place. If it returns False the
    file is left as it was.
    """
    with locked_dir(path.parent):
        data = read_json(path)
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a JSON object")
        if change(data) is False:
            return data
        write_json(path, data)
        return data


def append_line_locked(path: Path, line: str) -> None:
    """Append one line to ``path`` under an exclusive lock on the file, fsync'ed."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = (line + "\n").encode("utf-8", "surrogateescape")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
