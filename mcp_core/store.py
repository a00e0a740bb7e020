"""Durable files: atomic writes, fsync, and a lock around read-modify-write.

Every JSON file is replaced whole by rename from a temporary file with a name
unique to the writer (pid, thread, random), so a reader sees the old file or
the new one, never a part. Writers of one manifest serialise on an exclusive
``flock`` of the run directory, so the worker, its heartbeat, poll's stale mark
and resume's events never overwrite each other's updates.

poll imports this module: only C modules at the top (no contextlib, threading,
json or pathlib), so the two context managers are small classes.
"""

from __future__ import annotations

import _thread
import errno
import fcntl
import os

from mcp_core.jsfmt import dumps_pretty

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

_DEFERRED = _thread._local()


class fsync_deferred:  # a class, used as ``with store.fsync_deferred():``
    """Atomic writes made in this block (by this thread) skip their fsyncs.

    For bulk work over thousands of files (migration), where what crash safety
    rests on is the order of the steps, and one ``os.sync()`` at the end (the
    caller's job) makes the whole batch durable at once. Everywhere else every
    write is fsync'ed as before.
    """

    def __enter__(self) -> None:
        self.previous = getattr(_DEFERRED, "active", False)
        _DEFERRED.active = True

    def __exit__(self, *exc_info: object) -> None:
        _DEFERRED.active = self.previous


def _fsync_deferred() -> bool:
    return bool(getattr(_DEFERRED, "active", False))


def _fsync_dir(directory: Path | str) -> None:
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


def atomic_write_text(path: Path | str, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` whole or not at all."""
    directory, name = os.path.split(path)
    directory = directory or "."
    # os.urandom, not secrets: importing secrets loads OpenSSL (~10 ms of every command's start-up)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{_thread.get_ident()}.{os.urandom(4).hex()}.tmp")
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
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def write_json(path: Path | str, value: Any, mode: int = 0o644) -> None:
    atomic_write_text(path, dumps_pretty(value), mode)


def read_json(path: Path | str) -> Any:
    """Parse a JSON file (raises OSError or ValueError)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        text = handle.read()
    try:
        return loads(text)
    except RecursionError:  # hostile nesting ([[[[...) is invalid input, not a crash
        raise ValueError("JSON nested too deeply") from None


class _ScannerDefaults:
    """What ``_json.make_scanner`` reads from its context: ``json.JSONDecoder()``'s settings."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name)  # -Infinity, Infinity, NaN


_WHITESPACE = " \t\n\r"


def loads(text: str) -> Any:
    """``json.loads(text)``.

    A document that parses is read by json's own C scanner, called directly: the
    ``json`` package imports ``re`` and ``enum`` (poll reads a manifest at every
    call). Anything else goes through ``json.loads`` itself, which raises the
    error in its own words.
    """
    from _json import make_scanner

    start = len(text) - len(text.lstrip(_WHITESPACE))
    if not text.startswith("\ufeff"):
        try:
            value, end = make_scanner(_ScannerDefaults)(text, start)  # type: ignore[arg-type]
        except Exception:  # json.loads below says what is wrong
            pass
        else:
            if not text[end:].strip(_WHITESPACE):
                return value
    import json

    return json.loads(text)


class locked_dir:  # a class, used as ``with store.locked_dir(path):``
    """Hold an exclusive lock on ``directory`` (an flock on its descriptor)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = directory

    def __enter__(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    break
                except OSError as exc:  # pragma: no cover - EINTR is retried by Python
                    if exc.errno != errno.EINTR:
                        raise
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)  # closing releases the lock


def update_json(path: Path | str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Locked read-modify-write of a JSON object file; returns the saved object.

    ``change`` mutates the freshly read object in place. If it returns False the
    file is left as it was.
    """
    with locked_dir(os.path.dirname(path) or "."):
        data = read_json(path)
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a JSON object")
        if change(data) is False:
            return data
        write_json(path, data)
        return data


def append_line_locked(path: Path | str, line: str) -> None:
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
