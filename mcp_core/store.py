"""Durable files: atomic writes, fsync, and a lock around read-modify-write.

Every JSON file is replaced whole by rename from a temporary file with a name
unique to the writer (pid, thread, random), so a reader sees the old file or
the new one, never a part. Writers of one manifest serialise on an exclusive
``flock`` of the run directory, so the worker, its heartbeat, poll's stale mark
and resume's events never overwrite each other's updates.

poll imports this module: only C modules at the top (no contextlib, threading,
json or pathlib), so the two context managers are small classes; fcntl (a shared
library to load) only where a lock is taken, which poll of a live run rarely does.
"""

from __future__ import annotations

import _thread
import errno
import os
import stat  # loaded with os at start-up
import time

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


def atomic_write_text(path: Path | str, text: str, mode: int = 0o644, *, durable: bool = True,
                      sync_directory: bool = True) -> None:
    """Write ``text`` to ``path`` whole or not at all.

    ``durable=False``: no fsync at all, for a file rewritten whole on every use
    (poll.json: a crash may lose it, never leave a part of it). ``sync_directory=False``:
    the file's data is synced but not its name, for a file that a save in the same
    directory names next (a response file, named by the manifest): that save's
    directory sync makes both durable, one sync fewer a command."""
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
            if durable and not _fsync_deferred():
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
    if durable and sync_directory:
        _fsync_dir(directory)


def write_json(path: Path | str, value: Any, mode: int = 0o644, *, sync_directory: bool = True) -> None:
    atomic_write_text(path, dumps_pretty(value), mode, sync_directory=sync_directory)


# No file of a run is legitimately this large (a manifest of a thousand commands
# is ~1 MB); a bigger one is refused before it is read, not parsed into ~4x its
# size in memory.
MAX_RUN_FILE_BYTES = 16 * 1024 * 1024


class RunFileError(OSError):
    """A file of a run that is refused (not a regular file, a symlink, too large):
    ``str()`` is the reason alone, for one-line messages."""

    def __str__(self) -> str:
        return str(self.strerror)


def open_regular(path: Path | str, flags: int = os.O_RDONLY, *, follow: bool = True, dir_fd: int | None = None) -> int:
    """Open ``path`` only if it is a regular file; returns a blocking descriptor.

    O_NONBLOCK makes the open itself return at once on a FIFO or a device (a
    FIFO as a run's manifest must not hang the reader); ``follow=False`` refuses
    a symlink at the last component. Raises OSError (RunFileError for a refusal).
    """
    nofollow = 0 if follow else os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC | nofollow, 0o644, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise RunFileError(errno.ENXIO, "not a regular file") from None
        if exc.errno == errno.ELOOP and not follow:
            raise RunFileError(errno.ELOOP, "a symlink, not followed") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise RunFileError(errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_run_file(
    path: Path | str, *, follow: bool = True, dir_fd: int | None = None, limit: int = MAX_RUN_FILE_BYTES
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (raises OSError)."""
    fd = open_regular(path, follow=follow, dir_fd=dir_fd)
    try:
        if os.fstat(fd).st_size > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            size += len(chunk)
            if size > limit:  # it grew since the fstat
                raise _too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_large(limit: int) -> RunFileError:
    return RunFileError(errno.EFBIG, f"larger than {limit // (1024 * 1024)} MiB, refused")


def parse_json(data: bytes) -> Any:
    """Parse JSON bytes as the runner reads its files (raises ValueError)."""
    try:
        return loads(data.decode("utf-8", "surrogateescape"))
    except RecursionError:  # hostile nesting ([[[[...) is invalid input, not a crash
        raise ValueError("JSON nested too deeply") from None


def read_json(path: Path | str, *, follow: bool = True) -> Any:
    """Parse a JSON file: a regular file within MAX_RUN_FILE_BYTES (raises OSError or ValueError)."""
    return parse_json(read_run_file(path, follow=follow))


def refuse_linked(path: Path | str) -> str:
    """``path``, unless it or its directory is a symbolic link (RunFileError).

    Writers of a run's files use it: the files of a run are written where they
    are, never through a link that may lead out of the runs root. (A
    compatibility pointer is resolved, and checked to stay inside the runs
    root, by ``pointers.resolve_manifest`` before anything is written.)
    """
    path = os.fspath(path)
    for candidate in (path, os.path.dirname(path) or "."):
        if os.path.islink(candidate):
            # (its name only: messages show no absolute paths, and this one has no repo root)
            name = os.path.basename(candidate) or candidate
            raise RunFileError(errno.ELOOP, f"{name} is a symbolic link; refused to write through it")
    return path


def open_append(path: Path | str) -> int:
    """A descriptor appending to the regular file ``path`` (created when missing),
    refusing a symlink there or at its directory and anything not a regular file."""
    return open_regular(refuse_linked(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, follow=False)


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


WRITER_WAIT_ENV = "MCP_RUNNER_LOCK_WAIT_SECONDS"
DEFAULT_WRITER_WAIT_SECONDS = 30.0
_LOCK_RETRY_SECONDS = 0.01


class LockBusy(OSError):
    """The lock was held by another process for longer than the caller would wait."""

    def __init__(self, directory: Path | str, holder: int | None, waited: float) -> None:
        who = f"process {holder}" if holder is not None else "another process"
        super().__init__(errno.EWOULDBLOCK, f"{directory} is locked by {who} (waited {waited:g}s)")
        self.holder = holder


def writer_wait_seconds() -> float:
    """How long a writer waits for a run's lock (``MCP_RUNNER_LOCK_WAIT_SECONDS``, default 30)."""
    raw = os.environ.get(WRITER_WAIT_ENV)
    try:
        value = float(raw) if raw else DEFAULT_WRITER_WAIT_SECONDS
    except ValueError:
        value = DEFAULT_WRITER_WAIT_SECONDS
    return value if value >= 0 else DEFAULT_WRITER_WAIT_SECONDS


def lock_holder(fd: int) -> int | None:
    """The pid holding an flock on ``fd``'s file, from /proc/locks (None if unknown)."""
    info = os.fstat(fd)
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF" (blocked waiters have "->")
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted and fields[4].isdigit():
                    return int(fields[4])
    except OSError:
        return None
    return None


class locked_dir:  # a class, used as ``with store.locked_dir(path):``
    """Hold an exclusive lock on ``directory`` (an flock on its descriptor).

    ``wait`` bounds the wait in seconds (None: ``writer_wait_seconds()``; 0: one
    try): a process stopped while it holds the lock must not hang anyone, so
    past the bound LockBusy names the holder.
    """

    def __init__(self, directory: Path | str, wait: float | None = None) -> None:
        self.directory = directory
        self.wait = wait

    def __enter__(self) -> None:
        import fcntl

        limit = writer_wait_seconds() if self.wait is None else self.wait
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            deadline = time.monotonic() + limit
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockBusy(self.directory, lock_holder(fd), limit) from None
                    time.sleep(_LOCK_RETRY_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)  # closing releases the lock


def update_json(
    path: Path | str,
    change: Callable[[dict[str, Any]], Any],
    wait: float | None = None,
    note: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Locked read-modify-write of a JSON object file; returns the saved object.

    ``change`` mutates the freshly read object in place. If it returns False the
    file is left as it was. A symlink at ``path`` or at its directory is refused
    (``refuse_linked``). ``wait`` as for ``locked_dir``. ``note(saved)``, when
    given, is what ``saved_note`` answers for as long as the file is this save.
    """
    refuse_linked(path)
    with locked_dir(os.path.dirname(path) or ".", wait):
        data = read_json(path, follow=False)
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a JSON object")
        if change(data) is False:
            return data
        _forget(os.fspath(path))
        write_json(path, data)
        if note is not None:
            _remember(os.fspath(path), note(data))
        return data


# This process's last save of a file through update_json, as (the file held open,
# its identity, the caller's note). Held open, its inode number cannot be reused
# by another file while it is remembered: every writer of a run's files replaces
# them by rename, so the path holds the same inode, size, mtime and ctime only
# while nobody saved since. Bounded: a worker remembers its one manifest.
_SAVED: dict[str, tuple[int, tuple[int, int, int, int, int], Any]] = {}
_SAVED_MAX = 8


def _identity(info: os.stat_result) -> tuple[int, int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _forget(path: str) -> None:
    entry = _SAVED.pop(path, None)
    if entry is not None:
        os.close(entry[0])


def _remember(path: str, note: Any) -> None:
    """Under the lock, right after the save: hold the file saved, with its note."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    try:
        identity = _identity(os.fstat(fd))
    except OSError:
        os.close(fd)
        return
    while len(_SAVED) >= _SAVED_MAX:
        _forget(list(_SAVED)[0])
    _SAVED[path] = (fd, identity, note)


def saved_note(path: Path | str) -> Any:
    """The note of this process's last save of ``path`` while the file there is
    still that save (no one saved it since), else None. One lstat, no read."""
    entry = _SAVED.get(os.fspath(path))
    if entry is None:
        return None
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return entry[2] if _identity(info) == entry[1] else None
