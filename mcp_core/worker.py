"""The detached worker: ``python -m mcp_core.worker <absolute run dir>``.

Start and resume launch it in its own session with stdout and stderr appended
to ``<run dir>/runner.log``. It runs the run's commands, in order, through one
MCP session (docs/interface.md section 5, "The worker"): with a spawned stdio
server, with the local executor in this process, or over HTTP. Commands that
already succeeded are skipped, so a relaunch continues a run. Exit status 0 when
the run succeeded, 1 otherwise (failed, cancelled, or no longer its own).

It is orchestration only: every change to the run goes through
``run_record``, which checks that the run is still this worker's. When it is
not (the run was cancelled where the worker's pid cannot be seen, or taken by
another), the worker learns it at its next command boundary or heartbeat,
stops the command in flight and exits without writing anything more.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from mcp_core import launch, lifecycle, paths, process, run_record, store
from mcp_core import manifest as manifest_mod
from mcp_core.codex_events import LATEST_EVENT_ENV, LATEST_EVENT_NAME, LatestEvent
from mcp_core.error_artifacts import cut_long_strings, write_error_artifact
from mcp_core.errors import RunnerError, innermost
from mcp_core.faults import fault_point
from mcp_core.jsfmt import iso_now
from mcp_core.mcp_client import (
    CallCancelled,
    McpSession,
    ToolAnswer,
    ToolInvocationError,
    first_instance,
    import_sdk,
    spawn_server,
    stop_server,
    tool_error_in,
)
from mcp_core.protocol import MALFORMED_NOTE, TOOL_NAME, build_prompt, interpret, is_number, joined_text
from mcp_core.run_record import Identity, NotOwner
from mcp_core.server_select import SERVER_TOKEN_ENV, ServerChoice, choose_server, sandbox_mode
from mcp_core.servers.common import REQUEST_TIMEOUT_ENV, GroupGuard, deadline_for

CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGINT)
USAGE = "Usage: python -m mcp_core.worker <run-dir>"
DEFAULT_TIMEOUT_SECONDS = 3600.0
# A summary or path from the server is stored cut to this: a run file has a size limit.
STORED_TEXT_BYTES = 64 * 1024
# After a timeout or cancel the server gets this long to clean up (the bundled
# executor kills its command's group) before its own group is killed.
_STOP_WAIT_AFTER_CANCEL = 0.5
_STOP_WAIT_NORMAL = 2.0


def log(message: str) -> None:
    """A line in runner.log (the worker's stderr); a failed write is not fatal."""
    with contextlib.suppress(OSError, ValueError):
        print(f"{iso_now()} worker[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _positive(value: object, default: float) -> float:
    if is_number(value) and value > 0:  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    return default


@dataclass(frozen=True)
class Failure:
    """How the run ends at one command (one of the three failure cases)."""

    position: int  # the command's place in manifest.commands
    reason: str  # the error artifact's reason = the run's status_detail
    details: dict[str, Any]
    summary: str
    exit_code: Any = None
    manifest_path: str | None = None
    response_file: str | None = None


def invocation_failure(
    position: int, message: str, stack: str | None, response_file: str | None = None, code: int | None = None
) -> Failure:
    details: dict[str, Any] = {"message": message, "stack": stack}
    if code is not None:  # a JSON-RPC error's code, kept apart from the server's message
        details["code"] = code
    return Failure(
        position,
        "tool-invocation-error",
        details,
        f"Tool invocation failed: {message}",
        response_file=response_file,
    )


def outcome_of(position: int, answer: ToolAnswer, response_file: str) -> Failure | dict[str, Any]:
    """A command's answer: the fields of its success, or how the run fails."""
    if answer.is_error:
        message = joined_text(answer.content) or "The tool reported an error without a message."
        return invocation_failure(position, message, None, response_file)
    result = interpret(answer.content)
    if result.outcome == "succeeded":
        return {
            "exit_code": result.exit_code,
            "manifest_path": cut_long_strings(result.manifest_path, STORED_TEXT_BYTES),
            "response_file": response_file,
            "summary": cut_long_strings(result.summary, STORED_TEXT_BYTES),
        }
    if result.outcome == "command-failed":
        details = {"exit_code": result.exit_code, "summary": result.summary, "normalized_response": answer.content}
    else:
        details = {"note": MALFORMED_NOTE, "raw_summary": result.joined_text, "normalized_response": answer.content}
    return Failure(
        position, result.outcome, details, result.summary,
        exit_code=result.exit_code, manifest_path=result.manifest_path, response_file=response_file,
    )  # fmt: skip


def failed_command(
    loc: paths.Locations, run_dir: Path, failure: Failure, server: dict[str, Any] | None
) -> Callable[[dict[str, Any], str], None]:
    """The change that ends the run ``failed`` at one command, with its error artifact."""

    def update(manifest: dict[str, Any], now: str) -> None:
        if server is not None and "mcp_server" not in manifest:
            manifest["mcp_server"] = server
        command = manifest["commands"][failure.position]
        if command.get("status") != "running":  # never started (no session)
            command.update(manifest_mod.new_command(command.get("index"), command.get("command")))
            command["started_at"] = now
        command["status"] = "failed"
        command["completed_at"] = now
        command["exit_code"] = failure.exit_code
        command["manifest_path"] = cut_long_strings(failure.manifest_path, STORED_TEXT_BYTES)
        command["response_file"] = failure.response_file
        command["summary"] = cut_long_strings(failure.summary, STORED_TEXT_BYTES)
        command["error_file"] = write_error_artifact(
            loc, run_dir, manifest, command, failure.reason, failure.details, now
        )

    return update


async def call_command(
    session: McpSession,
    loc: paths.Locations,
    run_dir: Path,
    position: int,
    command: dict[str, Any],
    settings: dict[str, Any],
    still_owned: Callable[[], None],
) -> Failure | dict[str, Any] | None:
    """One tool call for one command; its response file (written only while the
    run is still ours: ``still_owned`` raises NotOwner otherwise); how it went
    (None: the call was cancelled)."""
    index, text = command.get("index"), command.get("command")
    text = text if isinstance(text, str) else str(text)
    log(f"command {index} started: {text}")
    arguments = session.tool_arguments(build_prompt(text), settings["policy"], loc.repo_root, settings["sandbox"])
    try:
        answer = await session.call_tool(TOOL_NAME, arguments, settings["timeout"])
    except CallCancelled:
        return None
    except ToolInvocationError as exc:
        log(f"command {index}: tool invocation failed: {exc.message}")
        return invocation_failure(position, exc.message, exc.stack, code=exc.code)
    fault_point("after-tool-call")  # tests/chaos: the command ran, nothing recorded yet
    still_owned()
    response = run_dir / paths.command_file_name(command["index"], command["command"])
    # Its name is made durable by the save that records it (same directory).
    store.write_json(response, answer.content, sync_directory=False)
    outcome = outcome_of(position, answer, loc.rel(response))
    if isinstance(outcome, Failure):
        log(f"command {index}: {outcome.reason} (exit_code {outcome.exit_code!r})")
    else:
        log(f"command {index}: succeeded")
    return outcome


# What a run's MCP server is to the worker: a spawned stdio server, the guard of
# the local executor running in the worker's own process, or nothing (HTTP).
Server = subprocess.Popen[bytes] | GroupGuard | None
IN_PROCESS_COMMAND = "mcp_core.servers.local, in the worker's process"


def open_session(
    server: Server, record: dict[str, Any] | None, timeout: float, latest: LatestEvent
) -> contextlib.AbstractAsyncContextManager[McpSession]:
    """Over the spawned server's pipes, in process with the local executor, else
    over HTTP to the chosen server's URL."""
    from mcp_core.mcp_client import connect, connect_http

    if isinstance(server, GroupGuard):
        from mcp_core.servers import local

        return connect(local.build_server(deadline_for(timeout), server), log=log, latest=latest)
    if server is not None:
        return connect(server, log=log, latest=latest)
    url = (record or {}).get("url")
    assert isinstance(url, str)
    return connect_http(url, token=os.environ.get(SERVER_TOKEN_ENV), request_timeout=timeout, log=log)


def open_position(manifest_path: Path, pending: list[int]) -> int:
    """Where a failure in mid-run lands: the first command not succeeded on disk."""
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError, StopIteration):
        commands = store.read_json(manifest_path, follow=False)["commands"]
        return next(p for p in pending if commands[p].get("status") != "succeeded")
    return pending[0]


class ServerNotStarted(Exception):
    pass


@contextlib.contextmanager
def in_process_guard() -> Iterator[tuple[GroupGuard, dict[str, Any]]]:
    """The local executor runs in this process: only its command guard is started
    (recorded as the server's pid, so cancel and resume stop it like a server)."""
    try:
        guard = GroupGuard.start()
    except OSError as exc:
        raise ServerNotStarted(f"cannot start the local executor's command guard (bash): {exc}") from exc
    record = {"mode": "local", "command": IN_PROCESS_COMMAND, "pid": guard.pid,
              "start_ticks": process.start_ticks(guard.pid)}  # fmt: skip
    log(f"running the local executor in this process; command guard pid {guard.pid}")
    try:
        yield guard, record
    finally:
        guard.close()
        orphans = process.stop_adopted_children()
        if orphans:
            log(f"stopped processes the commands left behind: {orphans}")


@contextlib.contextmanager
def server_process(
    choice: ServerChoice, loc: paths.Locations, run_dir: Path, timeout: float, stop_wait: Callable[[], float]
) -> Iterator[tuple[Server, dict[str, Any]]]:
    """The MCP server, its stderr on runner.log; on the way out its whole group
    is stopped (and whatever a server that died mid-call left behind). None for
    a server reached over HTTP (``choice.url``): nothing to start or stop; a
    GroupGuard for the local executor, which runs in this process."""
    if choice.url is not None:
        log(f"talking to the MCP server at {choice.url} over streamable HTTP")
        yield None, choice.describe()
        return
    if choice.mode == "local":
        with in_process_guard() as (guard, record):
            yield guard, record
        return
    env = dict(os.environ)
    env[REQUEST_TIMEOUT_ENV] = repr(timeout)
    env[LATEST_EVENT_ENV] = str(run_dir / LATEST_EVENT_NAME)
    if choice.mode in ("local", "codex-exec"):
        # The bundled servers run from this package (installed, or this checkout).
        env = launch.with_package_importable(env, loc.repo_root)
    try:
        log_fd = store.open_append(run_dir / manifest_mod.RUNNER_LOG)
        try:
            server = spawn_server(choice.command, env=env, cwd=loc.repo_root, stderr_fd=log_fd)
        finally:
            os.close(log_fd)
    except OSError as exc:
        raise ServerNotStarted(f"cannot start the MCP server ({choice.describe()['command']}): {exc}") from exc
    record = {**choice.describe(), "pid": server.pid, "start_ticks": process.start_ticks(server.pid)}
    log(f"started the MCP server ({choice.mode}), pid {server.pid}: {record['command']}")
    try:
        yield server, record
    finally:
        stop_server(server, wait_seconds=stop_wait())
        log(f"the MCP server has stopped (exit status {server.returncode})")
        orphans = process.stop_adopted_children()  # a server killed mid-call left its command to us
        if orphans:
            log(f"stopped processes the MCP server left behind: {orphans}")


@contextlib.contextmanager
def heartbeat(
    manifest_path: Path, me: Identity, record: dict[str, Any], on_lost: Callable[[str], None]
) -> Iterator[None]:
    """Beat every ``heartbeat_interval_seconds`` of the run while the block runs; a
    beat that finds the run no longer ours calls ``on_lost`` and beats no more."""
    interval = _positive(record.get("heartbeat_interval_seconds"), manifest_mod.HEARTBEAT_INTERVAL_SECONDS)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                run_record.heartbeat(manifest_path, me, iso_now())
            except NotOwner as exc:
                on_lost(str(exc))
                return
            except Exception as exc:  # a missed beat must not end the run
                log(f"heartbeat failed: {exc}")

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


@contextlib.contextmanager
def signals_to(loop: Any, handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """The cancel signals taken by the event loop while the block runs (not a bare
    handler interrupting it), by a plain handler again after it."""
    for signum in CANCEL_SIGNALS:
        loop.add_signal_handler(signum, handler, signum, None)
    try:
        yield
    finally:
        for signum in CANCEL_SIGNALS:
            loop.remove_signal_handler(signum)
            signal.signal(signum, handler)


def run_loop(
    session: Callable[[], Awaitable[tuple[str, Failure | None]]], manifest_path: Path, pending: list[int]
) -> tuple[str, Failure | None]:
    """``session()`` in an event loop; whatever it raises ends the run failed
    (the run must not stay in progress), at the command open on disk."""
    try:
        import_sdk()  # while a spawned server starts up
        import anyio

        return anyio.run(session)
    except BaseException as exc:
        log("worker error: " + "".join(traceback.format_exception(exc)))
        cause = innermost(exc)  # the task group's exception says nothing
        message = f"worker error: {type(cause).__name__}: {cause}"
        return "failed", invocation_failure(open_position(manifest_path, pending), message, traceback.format_exc())


class Worker:
    def __init__(self, loc: paths.Locations, run_dir: Path) -> None:
        self.loc = loc
        self.run_dir = run_dir
        self.manifest_path = run_dir / manifest_mod.MANIFEST_NAME
        self.me = Identity.me()
        self.signal_received: int | None = None
        self.lost: str | None = None  # why the run is no longer ours
        self._interrupt: Callable[[], None] | None = None
        self.server_record: dict[str, Any] | None = None
        self.settings: dict[str, Any] = {}
        self.session: McpSession | None = None
        self.latest_event = LatestEvent(run_dir / LATEST_EVENT_NAME)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        # No logging here: a handler that prints could re-enter a write in progress.
        if self.signal_received is None:
            self.signal_received = signum
        if self._interrupt is not None:
            self._interrupt()

    def on_lost(self, reason: str) -> None:
        self.lost = self.lost or reason
        if self._interrupt is not None:
            self._interrupt()

    def still_owned(self) -> None:
        run_record.still_owned(self.manifest_path, self.me)

    def run(self) -> int:
        try:
            record = store.read_json(self.manifest_path, follow=False)
            commands = record["commands"]
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log(f"cannot read the manifest: {exc}")
            return 1
        if manifest_mod.is_terminal(record):
            log(f"run is already {record.get('status')}; completing its metrics only")
            lifecycle.complete_pending_metrics(self.loc, self.manifest_path)
            return 0 if record.get("status") == "succeeded" else 1
        timeout = _positive(record.get("timeout_seconds"), DEFAULT_TIMEOUT_SECONDS)
        policy = record.get("approval_policy")
        self.settings = {"timeout": timeout, "policy": policy if isinstance(policy, str) else "never"}
        self.settings["sandbox"] = "workspace-write"
        pending = [p for p, c in enumerate(commands) if isinstance(c, dict) and c.get("status") != "succeeded"]
        if not pending:  # killed after the last command was saved: nothing is left to run
            return self.conclude("succeeded", None)
        if self.signal_received is not None:
            return self.conclude("cancelled", None)
        try:
            choice = choose_server(self.loc.repo_root, os.environ)
            self.settings["sandbox"] = sandbox_mode(os.environ)
            self.server_record = choice.describe()
            stop_wait = lambda: _STOP_WAIT_NORMAL if outcome[0] == "succeeded" else _STOP_WAIT_AFTER_CANCEL  # noqa: E731
            outcome: tuple[str, Failure | None] = ("cancelled", None)
            with server_process(choice, self.loc, self.run_dir, timeout, stop_wait) as (server, self.server_record):
                outcome = self.serve(server, pending)
        except (RunnerError, ServerNotStarted) as exc:
            message = exc.message if isinstance(exc, RunnerError) else str(exc)
            outcome = ("failed", invocation_failure(pending[0], message, traceback.format_exc()))
        return self.conclude(*outcome)

    def serve(self, server: Server, pending: list[int]) -> tuple[str, Failure | None]:
        return run_loop(lambda: self.session_main(server, pending), self.manifest_path, pending)

    async def session_main(self, server: Server, pending: list[int]) -> tuple[str, Failure | None]:
        """Connect and run the commands: (final status, failure or None)."""
        import asyncio

        import anyio

        loop = asyncio.get_running_loop()
        result: tuple[str, Failure | None] = ("cancelled", None)
        with anyio.CancelScope() as scope, signals_to(loop, self.on_signal):

            def stop_call() -> None:
                # A call in progress is cancelled first (the server is told, and a
                # turn in progress gets a moment to end); the session closes after it.
                if self.session is None or not self.session.cancel_call():
                    scope.cancel()

            def interrupt() -> None:  # from the heartbeat thread too
                loop.call_soon_threadsafe(stop_call)

            self._interrupt = interrupt
            if self.signal_received is not None:
                scope.cancel()
            try:
                async with open_session(
                    server, self.server_record, self.settings["timeout"], self.latest_event
                ) as session:
                    self.session = session
                    saved = run_record.connected(self.manifest_path, self.me, self.server_record, iso_now())
                    run_record.write_heartbeat_file(self.run_dir, saved["heartbeat_at"])
                    with heartbeat(self.manifest_path, self.me, saved, self.on_lost):
                        result = await self.run_commands(session, saved["commands"], pending)
            except (ToolInvocationError, NotOwner, BaseExceptionGroup) as exc:
                # Not except*: before CPython 3.11.4 a raise inside it comes out wrapped.
                lost, error = first_instance(exc, NotOwner), tool_error_in(exc)
                if lost is None and error is None:
                    raise
                if lost is not None:
                    self.lost = self.lost or str(lost)
                elif error is not None:
                    result = ("failed", invocation_failure(pending[0], error.message, error.stack, code=error.code))
            finally:
                self.session = None
                self._interrupt = None
        return result

    async def run_commands(
        self, session: McpSession, commands: list[Any], pending: list[int]
    ) -> tuple[str, Failure | None]:
        run_record.command_running(self.manifest_path, self.me, pending[0], iso_now())
        for step, position in enumerate(pending):
            outcome = await call_command(
                session, self.loc, self.run_dir, position, commands[position], self.settings, self.still_owned
            )
            if outcome is None:
                return ("cancelled", None)
            if isinstance(outcome, Failure):
                return ("failed", outcome)
            following = pending[step + 1] if step + 1 < len(pending) else None
            run_record.command_finished(self.manifest_path, self.me, position, outcome, following, iso_now())
        return ("succeeded", None)

    def conclude(self, status: str, failure: Failure | None) -> int:
        """End the run (the server is stopped by now), unless it is no longer ours."""
        if self.lost is not None:
            log(f"the run is no longer this worker's ({self.lost}); stopped without recording more")
            return 1
        ending = Ending(status, failure, self.signal_received, self.server_record)
        return end_run(self.loc, self.run_dir, self.me, ending)


class Ending(NamedTuple):
    status: str  # succeeded, failed or cancelled
    failure: Failure | None
    signal_received: int | None
    server: dict[str, Any] | None


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_RETRY_FIRST_SECONDS = 0.2
_RETRY_MAX_SECONDS = 5.0


def note_on_heartbeat(run_dir: Path, note: str) -> None:
    """Say something in ``.heartbeat`` where an atomic write cannot be made (a full
    disk): overwritten in place, in the block the file already has."""
    with contextlib.suppress(OSError):
        fd = os.open(run_dir / manifest_mod.HEARTBEAT_FILE, os.O_WRONLY)
        try:
            data = f"{iso_now()} {note}\n".encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)


def until_recorded(loc: paths.Locations, run_dir: Path, attempt: Callable[[], object]) -> None:
    """``attempt()`` again while it fails for want of space, until space returns: a
    full disk must not leave the run in progress for ever. Once the ending is on
    disk, only its metrics line is retried. Other errors are raised."""
    path = run_dir / manifest_mod.MANIFEST_NAME
    delay = _RETRY_FIRST_SECONDS
    while True:
        try:
            attempt()
            return
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            note = f"cannot record the run: {exc.strerror}; retrying until there is space"
            log(note)  # lost too, most likely: hence the note in .heartbeat
            note_on_heartbeat(run_dir, note)
        time.sleep(delay)
        delay = min(delay * 2, _RETRY_MAX_SECONDS)
        with contextlib.suppress(OSError, ValueError):
            if manifest_mod.is_terminal(store.read_json(path)):
                attempt = lambda: lifecycle.complete_pending_metrics(loc, path)  # noqa: E731


def end_run(loc: paths.Locations, run_dir: Path, me: Identity, ending: Ending) -> int:
    """One terminal save and its metrics line; the worker's exit status."""
    path = run_dir / manifest_mod.MANIFEST_NAME

    def record(status: str, detail: str | None, **options: Any) -> None:
        until_recorded(loc, run_dir, lambda: lifecycle.finish_run(loc, path, status, detail, by=me, **options))

    try:
        if ending.status == "succeeded":
            record("succeeded", None)
            log("run succeeded")
            return 0
        if ending.status == "failed" and ending.failure is not None:
            record("failed", ending.failure.reason, update=failed_command(loc, run_dir, ending.failure, ending.server))
            log(f"run failed ({ending.failure.reason})")
            return 1
        name = signal.Signals(ending.signal_received).name if ending.signal_received else "a signal"
        log(f"received {name}; cancelling the run")
        message = f"Cancelled: the worker received {name}."
        until_recorded(loc, run_dir, lambda: lifecycle.cancel_run(loc, path, message, by=me))
        log("run cancelled")
    except NotOwner as exc:
        log(f"the run is no longer this worker's ({exc}); stopped without recording more")
    except OSError as exc:  # a read-only .runs: the run stays as it was on disk
        log(f"could not record the end of the run: {exc}")
        note_on_heartbeat(run_dir, f"could not record the end of the run: {exc.strerror or exc}")
    return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0]:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        loc = paths.locate()
        run_dir = Path(os.path.abspath(args[0]))
    except RunnerError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    worker = Worker(loc, run_dir)
    process.become_subreaper()
    for signum in CANCEL_SIGNALS:
        signal.signal(signum, worker.on_signal)
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
