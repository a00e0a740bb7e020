"""The client side of one MCP stdio session: spawn the server, talk to it, stop it.

The server is spawned with ``subprocess`` *before* the SDK is imported
(importing ``mcp`` costs ~0.9 s; a Python server needs about as long to come
up, so the two overlap). The SDK's ``ClientSession`` then runs over our own
pipe transport, which also

- logs every notification to ``runner.log`` as one readable line (a
  ``codex/event`` as its type and a short text, see ``mcp_core.codex_events``),
  keeps the latest as the server's last report (named when a call times out)
  and never fails on one,
- skips a stray non-JSON line on the server's stdout (logged, not fatal),
- ends the session at once when the server's stdout closes (it died), so
  pending requests fail with "Connection closed" instead of lingering.

Nothing here imports the SDK at module level.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mcp_core.codex_events import LatestEvent, describe_codex_event, shorten
from mcp_core.jsfmt import iso_now
from mcp_core.process import stop_group

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.server.mcpserver import MCPServer
    from mcp.shared.dispatcher import ProgressFnT

LogFn = Callable[[str], None]
E = TypeVar("E", bound=BaseException)
INITIALIZE_TIMEOUT_SECONDS = 60.0
LOGGED_MESSAGE_CHARS = 2000
# After a cancel (or a timeout's cancel) a server that reported a turn in
# progress (Codex) gets this long to report its end before it is stopped.
TURN_END_GRACE_SECONDS = 3.0
REQUEST_TIMEOUT_CODE = -32001
_PR_SET_PDEATHSIG = 1
# Codex events that end a turn (codex mcp-server), and the one that opens it.
_TURN_START = "task_started"
_TURN_ENDS = frozenset({"task_complete", "turn_aborted", "turn_complete"})


class ToolInvocationError(Exception):
    """The tool call raised: timeout, server died, protocol error, isError result.

    ``message`` is the server's own text (a JSON-RPC error's message, without
    the SDK's " (MCP error N)"); ``code`` the JSON-RPC error code, if any."""

    def __init__(self, message: str, stack: str | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.stack = stack
        self.code = code


class CallCancelled(Exception):
    """The call in progress was cancelled (``McpSession.cancel_call``)."""


def first_instance(exc: BaseException, kind: type[E]) -> E | None:
    """``exc`` if it is a ``kind``, else the first ``kind`` a group holds (depth first)."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = first_instance(inner, kind)
            if found is not None:
                return found
    return None


def tool_error_in(exc: BaseException) -> ToolInvocationError | None:
    """The ToolInvocationError ``exc`` is or holds (the first, depth first), or None.

    For a plain ``except (ToolInvocationError, BaseExceptionGroup)`` instead of
    ``except*``: before CPython 3.11.4 an exception raised inside an ``except*``
    block comes out wrapped in an ExceptionGroup.
    """
    return first_instance(exc, ToolInvocationError)


@dataclass(frozen=True)
class ToolAnswer:
    content: list[dict[str, Any]]  # the result's content list, as JSON objects
    is_error: bool


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask for SIGTERM when the worker
    # dies (even by SIGKILL), so a server that ignores a closed stdin goes too.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn_server(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, stderr_fd: int
) -> subprocess.Popen[bytes]:
    """Start the server in a new session (its own process group), stdio pipes,
    its stderr on ``stderr_fd``. Raises OSError when it cannot be started.

    Call it before any thread is started (it uses a pre-exec hook)."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr_fd,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
        preexec_fn=_die_with_parent if os.path.isdir("/proc") else None,  # noqa: PLW1509
    )


def _exited(pid_fd: int | None, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` for the leader to exit, without reaping it when a
    pidfd is available (so its group id stays reserved while we signal it)."""
    if pid_fd is not None:
        readable, _, _ = select.select([pid_fd], [], [], max(0.0, timeout))
        return bool(readable)
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def stop_server(process: subprocess.Popen[bytes], *, wait_seconds: float, kill_grace: float = 2.0) -> None:
    """Stop the server for good: close its stdin, give it ``wait_seconds`` to
    exit, then SIGTERM its whole process group and SIGKILL whatever is left
    after ``kill_grace``. Leftovers in the group are signalled even when the
    leader exited on its own."""
    pgid = process.pid
    try:
        pid_fd: int | None = os.pidfd_open(process.pid)
    except OSError:
        pid_fd = None  # already reaped, or no pidfd support
    try:
        # Its stdout stays open until it is gone: a server answering a cancel
        # must not die of a broken pipe before it has cleaned up.
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        _exited(pid_fd, process, wait_seconds)
        stop_group(pgid, kill_grace, leader=process)
        process.wait()
    finally:
        if pid_fd is not None:
            os.close(pid_fd)
        if process.stdout is not None:
            with contextlib.suppress(OSError):
                process.stdout.close()


def _short(text: str) -> str:
    return text if len(text) <= LOGGED_MESSAGE_CHARS else text[:LOGGED_MESSAGE_CHARS] + "…"


class ServerReports:
    """What the server reports by notification: one readable log line each,
    the latest (``last``, also kept in the run's latest-event file) and
    whether a Codex turn is open."""

    def __init__(self, log: LogFn, latest: LatestEvent | None = None) -> None:
        self.log = log
        self.latest = latest if latest is not None else LatestEvent(None)
        self.turn_open = False

    @property
    def last(self) -> str | None:
        return self.latest.text

    def notification(self, method: str, params: Any) -> None:
        if method == "codex/event":
            msg = params.get("msg") if isinstance(params, dict) else None
            text = describe_codex_event(msg)
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind == _TURN_START:
                self.turn_open = True
            elif kind in _TURN_ENDS:
                self.turn_open = False
            self.log(f"codex event {text}")
        else:
            detail = "" if params is None else ": " + shorten(json.dumps(params, ensure_ascii=False))
            text = f"{method}{detail}"
            self.log(f"notification {text}")
        self.latest.note(text, iso_now())


@contextlib.asynccontextmanager
async def pipe_transport(
    process: subprocess.Popen[bytes], log: LogFn, reports: ServerReports | None = None
) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's (read stream, write stream) pair over the server's pipes."""
    import anyio
    import mcp_types
    from mcp.shared.message import SessionMessage

    assert process.stdout is not None and process.stdin is not None
    out_fd = process.stdout.fileno()
    in_fd = process.stdin.fileno()
    os.set_blocking(out_fd, False)
    os.set_blocking(in_fd, False)
    read_send, read_receive = anyio.create_memory_object_stream[Any](0)
    write_send, write_receive = anyio.create_memory_object_stream[Any](0)

    def parse(line: bytes) -> Any:
        text = line.decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            message = mcp_types.jsonrpc_message_adapter.validate_json(text, by_name=False)
        except ValueError:
            log(f"ignored a line on the MCP server's stdout that is not JSON-RPC: {_short(text)}")
            return None
        if isinstance(message, mcp_types.JSONRPCNotification):
            (reports or ServerReports(log)).notification(message.method, message.params)
        return message

    async def read_lines() -> None:
        buffer = bytearray()
        async with read_send:
            while True:
                try:
                    await anyio.wait_readable(out_fd)
                    chunk = os.read(out_fd, 1 << 16)
                except BlockingIOError:
                    continue
                except (OSError, anyio.ClosedResourceError):
                    chunk = b""
                if not chunk:
                    log("the MCP server closed its stdout")
                    return
                buffer.extend(chunk)
                while (end := buffer.find(b"\n")) != -1:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    message = parse(line)
                    if message is None:
                        continue
                    try:
                        await read_send.send(SessionMessage(message))
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        # The session has ended (a call timed out, say) while the
                        # server still talks: nothing reads its messages any more.
                        return

    async def write_messages() -> None:
        broken = False
        async with write_receive:
            async for item in write_receive:
                if broken:
                    continue
                data = (item.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n").encode()
                view = memoryview(data)
                try:
                    while view:
                        try:
                            view = view[os.write(in_fd, view) :]
                        except BlockingIOError:
                            await anyio.wait_writable(in_fd)
                except OSError as exc:
                    broken = True  # the server is gone; the reader sees EOF and ends the session
                    log(f"writing to the MCP server failed: {exc}")

    async with anyio.create_task_group() as group:
        group.start_soon(read_lines)
        group.start_soon(write_messages)
        try:
            yield read_receive, write_send
        finally:
            group.cancel_scope.cancel()


class McpSession:
    """One initialized session: the server's `codex` tool schema and calls to it."""

    def __init__(
        self,
        session: ClientSession,
        tool_schema: dict[str, Any] | None,
        log: LogFn,
        describe_failure: Callable[[str], str] = lambda reason: reason,
        reports: ServerReports | None = None,
    ) -> None:
        self.session = session
        self.tool_schema = tool_schema
        self.log = log
        self.describe_failure = describe_failure
        # Progress messages of a call, for a server that sends a command's output that way.
        self.on_progress: ProgressFnT | None = None
        self.reports = reports if reports is not None else ServerReports(log)
        self._call_scope: Any = None

    def tool_arguments(self, prompt: str, approval_policy: str, repo_root: Path, sandbox: str) -> dict[str, Any]:
        """``approval-policy`` where the advertised schema names it, else
        ``approval_policy``; ``cwd`` (the repo root) and ``sandbox`` where the
        schema has them."""
        properties = (self.tool_schema or {}).get("properties")
        names = properties if isinstance(properties, dict) else {}
        arguments: dict[str, Any] = {"prompt": prompt}
        if "approval-policy" in names:
            arguments["approval-policy"] = approval_policy
        else:
            arguments["approval_policy"] = approval_policy
        if "cwd" in names:
            arguments["cwd"] = str(repo_root)
        if "sandbox" in names:
            arguments["sandbox"] = sandbox
        return arguments

    def cancel_call(self) -> bool:
        """Cancel the call in progress (the SDK sends ``notifications/cancelled``);
        False when there is none."""
        if self._call_scope is None:
            return False
        self._call_scope.cancel()
        return True

    async def call_tool(self, name: str, arguments: dict[str, Any], timeout_seconds: float) -> ToolAnswer:
        """Call a tool; raise ToolInvocationError on anything but an answer,
        CallCancelled when ``cancel_call`` stopped it."""
        import anyio
        from mcp import MCPError

        with anyio.CancelScope() as scope:
            self._call_scope = scope
            try:
                result = await self.session.call_tool(
                    name, arguments, read_timeout_seconds=timeout_seconds, progress_callback=self.on_progress
                )
            except MCPError as exc:
                stack = traceback.format_exc()
                if exc.code == REQUEST_TIMEOUT_CODE:
                    message = self.describe_failure(self.timeout_message(timeout_seconds))  # before the cancel
                    await self.let_turn_end()
                    raise ToolInvocationError(message, stack, exc.code) from exc
                raise ToolInvocationError(self.describe_failure(_mcp_error_text(exc)), stack, exc.code) from exc
            except Exception as exc:  # protocol errors, validation errors, a closed stream
                message = self.describe_failure(f"{type(exc).__name__}: {exc}")
                raise ToolInvocationError(message, traceback.format_exc()) from exc
            finally:
                self._call_scope = None
        if scope.cancelled_caught:
            await self.let_turn_end()
            raise CallCancelled()
        content = [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in result.content]
        return ToolAnswer(content, bool(result.is_error))

    def timeout_message(self, timeout_seconds: float) -> str:
        last = self.reports.last
        report = f"its last report: {last}" if last else "it reported nothing"
        return f"The MCP server gave no answer within {timeout_seconds:g} seconds (the run's timeout); {report}"

    async def let_turn_end(self, grace: float = TURN_END_GRACE_SECONDS) -> None:
        """After a cancel: wait up to ``grace`` seconds while the server reports
        a turn still open (Codex ends it with ``turn_aborted``)."""
        import anyio

        with anyio.CancelScope(shield=True), anyio.move_on_after(grace):
            if self.reports.turn_open:
                self.log("waiting for the MCP server to end its turn")
            while self.reports.turn_open:
                await anyio.sleep(0.05)
        self.reports.latest.flush()


def _mcp_error_text(exc: Exception) -> str:
    """A JSON-RPC error's own message, as the server sent it (its code is kept apart)."""
    return getattr(exc, "message", None) or str(exc)


@contextlib.asynccontextmanager
async def connect(
    server: subprocess.Popen[bytes] | MCPServer,
    *,
    log: LogFn,
    initialize_timeout: float = INITIALIZE_TIMEOUT_SECONDS,
    tool_name: str = "codex",
    latest: LatestEvent | None = None,
) -> AsyncIterator[McpSession]:
    """Initialize a session with the server and read its tool schema: a spawned
    server over its pipes, or a server object running in this process over the
    SDK's in-memory transport (the one its own ``Client`` uses for a server
    object: the same MCP messages, no pipes and no second interpreter; closing
    the session ends the server's task).

    Raises ToolInvocationError when the server does not initialize (it died,
    exited at once, answered garbage, or did not answer in time).
    """
    reports = ServerReports(log, latest)
    if isinstance(server, subprocess.Popen):
        transport: contextlib.AbstractAsyncContextManager[tuple[Any, Any]] = pipe_transport(server, log, reports)
    else:
        from mcp.client._memory import InMemoryTransport

        transport = InMemoryTransport(server)
    async with (
        transport as (read_stream, write_stream),
        initialized_session(
            read_stream,
            write_stream,
            log=log,
            initialize_timeout=initialize_timeout,
            tool_name=tool_name,
            reports=reports,
        ) as session,
    ):
        yield session


def import_sdk() -> None:
    """Import the SDK (~0.6 s here: some 600 modules, most of the time pydantic
    building the protocol's models) with the cyclic garbage collector paused.

    The import allocates a great many objects that live as long as the process,
    and about a tenth of its time went to collections that found nothing to
    free (BENCHMARKS.md). Afterwards the objects are frozen out of later
    collections as well, which then do not walk them again at every command.

    pydantic also builds every model's validator as its class is defined, and
    a run uses a handful of the SDK's ~550 models. During the import they are
    told to build at first use instead: ``defer_build`` in pydantic's default
    configuration, a private table (without it the import is as before). That
    took ~35 ms off a one-command run here. Once the SDK is imported, nothing
    is done.
    """
    import gc

    if "mcp" in sys.modules:
        return
    try:
        from pydantic._internal._config import config_defaults
    except ImportError:
        config_defaults = {}
    # Only the table as it is now (a plain dict, the setting off) is changed.
    deferred = isinstance(config_defaults, dict) and config_defaults.get("defer_build") is False
    gc.disable()
    try:
        if deferred:
            config_defaults["defer_build"] = True
        import mcp  # noqa: F401
    finally:
        if deferred:
            config_defaults["defer_build"] = False
        gc.freeze()
        gc.enable()


@contextlib.asynccontextmanager
async def initialized_session(
    read_stream: Any,
    write_stream: Any,
    *,
    log: LogFn,
    initialize_timeout: float,
    tool_name: str,
    describe_failure: Callable[[str], str] = lambda reason: reason,
    reports: ServerReports | None = None,
) -> AsyncIterator[McpSession]:
    """A ClientSession over a transport's streams, initialized, with the tool's
    schema read. ``describe_failure`` may add what the transport knows to the
    reason initialize failed (e.g. an HTTP status)."""
    import anyio
    from mcp import ClientSession, MCPError
    from mcp_types import Implementation

    session = ClientSession(
        read_stream,
        write_stream,
        client_info=Implementation(name="mcp-runner-py", version="1"),
    )
    async with session:
        try:
            with anyio.fail_after(initialize_timeout):
                init = await session.initialize()
        except TimeoutError as exc:
            raise ToolInvocationError(
                describe_failure(f"MCP server did not answer initialize within {initialize_timeout:g} seconds"),
                traceback.format_exc(),
            ) from exc
        except MCPError as exc:
            raise ToolInvocationError(
                describe_failure(f"MCP server failed to initialize: {_mcp_error_text(exc)}"),
                traceback.format_exc(),
                exc.code,
            ) from exc
        except Exception as exc:
            raise ToolInvocationError(
                describe_failure(f"MCP server failed to initialize: {type(exc).__name__}: {exc}"),
                traceback.format_exc(),
            ) from exc
        server_info = getattr(init, "server_info", None)
        log(
            f"connected to MCP server {getattr(server_info, 'name', '?')} "
            f"{getattr(server_info, 'version', '')} (protocol {init.protocol_version})"
        )
        schema: dict[str, Any] | None = None
        try:
            with anyio.fail_after(initialize_timeout):
                listing = await session.list_tools()
            for tool in listing.tools:
                if tool.name == tool_name:
                    schema = dict(tool.input_schema)
            if schema is None:
                log(f"the MCP server lists no {tool_name!r} tool")
        except Exception as exc:  # a server without tools/list still gets its call
            log(f"tools/list failed ({type(exc).__name__}: {exc}); sending approval_policy")
        yield McpSession(session, schema, log, describe_failure, reports)


# -- a server reached over streamable HTTP (``MCP_RUNNER_SERVER=http://...``) --

HTTP_CONNECT_TIMEOUT_SECONDS = 10.0
# A request's answer may take the whole request timeout: the session's own
# timeout ends a silent call, the HTTP read timeout only backs it up.
HTTP_READ_MARGIN_SECONDS = 5.0
# What needs no answer (a cancel notification, closing the session) gets this
# long, so a hung or frozen host cannot hold the run's end for another timeout.
HTTP_QUICK_SECONDS = 3.0
TOKEN_HINT = "MCP_RUNNER_SERVER_TOKEN is missing or is not the server's token"


def awaits_answer(method: str, body: bytes) -> bool:
    """Whether an HTTP request carries a JSON-RPC request (its answer may take
    long) or opens the server's event stream, rather than a notification, a
    response or the session's close."""
    if method == "GET":
        return True
    if method != "POST":
        return False
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return isinstance(message, dict) and "method" in message and "id" in message


class OneLineLog(logging.Handler):
    """Library warnings (the SDK's, uvicorn's) as one log line each, without tracebacks."""

    def __init__(self, log: LogFn, label: str) -> None:
        super().__init__(logging.WARNING)
        self.log = log
        self.label = label

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            cause: BaseException = record.exc_info[1]
            while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
                cause = cause.exceptions[0]
            text += f" ({type(cause).__name__}: {cause})" if str(cause) else f" ({type(cause).__name__})"
        self.log(f"{self.label}{_short(text)}")


@contextlib.contextmanager
def sdk_log_in(log: LogFn) -> Iterator[None]:
    logger = logging.getLogger("mcp")
    handler = OneLineLog(log, "MCP client: ")
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def unreachable_reason(exc: BaseException) -> str:
    """Why a connection failed, in the system's words ("Connection refused")
    where the chain of causes holds an OS error, else the exception itself."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BaseExceptionGroup):
            seen = seen.exceptions[0]
            continue
        if isinstance(seen, OSError) and isinstance(seen.errno, int) and seen.errno > 0:
            return os.strerror(seen.errno)  # asyncio's own text names the address, not the fault
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror  # e.g. a name that does not resolve (negative codes)
        seen = seen.__cause__ or seen.__context__
    return f"{type(exc).__name__}: {exc}"


class HttpRefusals:
    """The HTTP error statuses the server answered, to explain a failed request."""

    def __init__(self, url: str, log: LogFn) -> None:
        self.url = url
        self.log = log
        self.last: int | None = None

    async def note(self, response: Any) -> None:
        if response.status_code >= 400:
            self.last = response.status_code
            self.log(f"HTTP {response.status_code} from {response.request.method} {self.url}")

    def describe(self, reason: str) -> str:
        """``reason`` with the last refusal's status since the previous call, if any."""
        import http

        status, self.last = self.last, None
        if status is None:
            return reason
        try:
            phrase = " " + http.HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        hint = f" ({TOKEN_HINT})" if status == 401 else ""
        return f"{reason}: the server at {self.url} answered HTTP {status}{phrase}{hint}"


async def write_output(progress: float, total: float | None, message: str | None) -> None:
    """A command's output, forwarded by ``mcp-runner serve``: onto our stderr
    (runner.log), as a local server's stderr would have it."""
    if message:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(message)
            sys.stderr.flush()


@contextlib.asynccontextmanager
async def connect_http(
    url: str,
    *,
    token: str | None,
    request_timeout: float,
    log: LogFn,
    initialize_timeout: float = INITIALIZE_TIMEOUT_SECONDS,
    tool_name: str = "codex",
) -> AsyncIterator[McpSession]:
    """Initialize a session with the server at ``url`` over streamable HTTP,
    sending ``token`` as a bearer token and the request timeout in a header (so
    a ``mcp-runner serve`` ends a command at the same deadline a local server
    would). Raises ToolInvocationError when the server cannot be reached, refuses
    the token or does not initialize; a connection lost later fails the call in
    progress. Neither the token nor any header is ever logged."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    from mcp_core.servers.common import REQUEST_TIMEOUT_HEADER

    refusals = HttpRefusals(url, log)
    headers = {REQUEST_TIMEOUT_HEADER: repr(request_timeout)}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    patient = httpx2.Timeout(HTTP_CONNECT_TIMEOUT_SECONDS, read=request_timeout + HTTP_READ_MARGIN_SECONDS).as_dict()
    quick = httpx2.Timeout(HTTP_QUICK_SECONDS).as_dict()

    async def set_timeout(request: Any) -> None:
        waits = awaits_answer(request.method, request.content)
        request.extensions = {**request.extensions, "timeout": patient if waits else quick}

    client = httpx2.AsyncClient(
        headers=headers,
        timeout=httpx2.Timeout(**patient),
        event_hooks={"request": [set_timeout], "response": [refusals.note]},
    )
    try:
        with sdk_log_in(log):
            async with (
                client,
                streamable_http_client(url, http_client=client) as (read_stream, write_stream),
                initialized_session(
                    read_stream,
                    write_stream,
                    log=log,
                    initialize_timeout=initialize_timeout,
                    tool_name=tool_name,
                    describe_failure=refusals.describe,
                ) as session,
            ):
                session.on_progress = write_output
                yield session
    except (httpx2.TransportError, BaseExceptionGroup) as exc:
        # Not ``except*``: before CPython 3.11.4 what it raises comes out wrapped in a group.
        failed = first_instance(exc, httpx2.TransportError)
        if failed is None:
            raise
        reason = unreachable_reason(failed)
        raise ToolInvocationError(f"cannot reach the MCP server at {url}: {reason}", traceback.format_exc()) from None
