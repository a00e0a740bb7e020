"""serve: offer the bundled executor (or the ``codex exec`` bridge) to workers on
other hosts, over MCP's streamable HTTP at ``/mcp``, behind a bearer token.

The tool is the bundled servers' own ``codex`` tool (``mcp_core.servers``): the
same implementation the worker spawns locally, with three differences. Every
command runs in ``--root`` whatever ``cwd`` the call names; the command's
output goes to the caller as progress messages of its call (this process's
stderr is the operator's log: one line per call); and the deadline comes from
the caller's request timeout, sent in the ``Mcp-Runner-Request-Timeout``
header, so a remote timeout ends as a local one does (exit 124, the command's
process group killed). A caller whose connection drops has its command killed.

Authentication is the SDK's bearer middleware with one shared token
(``MCP_RUNNER_SERVE_TOKEN``, compared in constant time): every request without
it, on any path, is answered 401. Nothing heavy is imported until the
arguments, the token and the address have been checked.
"""

from __future__ import annotations

import contextlib
import contextvars
import hmac
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_core import argscan, output, process, protocol
from mcp_core.errors import RunnerError, UsageError
from mcp_core.jsfmt import iso_now
from mcp_core.mcp_client import OneLineLog
from mcp_core.servers import common
from mcp_core.termtext import printable

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken
    from starlette.applications import Starlette

TOKEN_ENV = "MCP_RUNNER_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
ENDPOINT = "/mcp"
EXECUTORS = ("local", "codex-exec")
MAX_REQUEST_BODY_BYTES = 1024 * 1024  # a prompt is one command; a megabyte is plenty
MAX_SESSIONS = 64  # one per run talking to this host at once
GRACEFUL_SHUTDOWN_SECONDS = 5
LOGGED_COMMAND_CHARS = 200
FORWARD_BUFFER_BYTES = 256 * 1024  # output not yet taken by a slow caller
FORWARD_FLUSH_SECONDS = 2.0

USAGE = f"""\
Usage: mcp-runner serve [--listen HOST:PORT] [--root DIR] [--executor local|codex-exec]

Serve the bundled executor over MCP streamable HTTP at http://HOST:PORT{ENDPOINT}, for
workers on other hosts (MCP_RUNNER_SERVER=http://HOST:PORT{ENDPOINT} there). Every request
must carry the token of {TOKEN_ENV} as "Authorization: Bearer <token>"; without
it serve refuses to start. Anyone holding the token can run any command here as
this user: keep it on trusted networks, or behind TLS and a reverse proxy.
One line per call (who, command, exit, duration) goes to stderr.

Options:
  --listen HOST:PORT   Where to listen [default: {DEFAULT_HOST}:{DEFAULT_PORT}]. A bare PORT
                       listens on {DEFAULT_HOST}; port 0 picks a free one (printed).
  --root DIR           Where every command runs, whatever the caller asks
                       [default: the current directory].
  --executor NAME      local (bash -c, the default) or codex-exec (each call
                       runs codex exec, which must be on PATH).
  -h --help            Show this help.
"""


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    root: Path
    executor: str
    token: str


@dataclass(frozen=True)
class Caller:
    """What serve knows about the HTTP request a tool call came in."""

    who: str  # the peer's address
    request_timeout: float | None  # the caller's request timeout, from its header
    gone: Any = None  # an anyio.Event set when the caller disconnects


# The MCP request being handled (for progress messages), set by ``remember_request``.
REQUEST: contextvars.ContextVar[Any] = contextvars.ContextVar("request", default=None)
# Set per HTTP request; the SDK runs each message's handler in its sender's context.
CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)
UNKNOWN_CALLER = Caller("?", None)


def log(message: str) -> None:
    """One line on stderr; what callers sent (commands, errors) cannot forge more lines."""
    with contextlib.suppress(OSError, ValueError):
        print(f"{iso_now()} serve[{os.getpid()}]: {printable(message)}", file=sys.stderr, flush=True)


# -- arguments ---------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT`` (on 127.0.0.1)."""
    host, colon, port_text = value.rpartition(":")
    if not colon:
        host, port_text = "", value
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"--listen needs HOST:PORT with a port from 0 to 65535: {value}")
    return host or DEFAULT_HOST, int(port_text)


def read_token(env: Mapping[str, str]) -> str:
    token = env.get(TOKEN_ENV) or ""
    if not token:
        raise RunnerError(f"{TOKEN_ENV} is not set: serve refuses to run commands for anyone without a token.")
    if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable() or " " in token:
        raise RunnerError(
            f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} printable ASCII characters without spaces "
            "(e.g. the output of: openssl rand -hex 32)."
        )
    return token


def parse_options(argv: list[str], env: Mapping[str, str]) -> ServeOptions | None:
    """The checked options, or None for --help. Raises RunnerError on bad input."""
    parsed = argscan.scan(argv, USAGE, argscan.Messages(unknown=lambda arg: f"Unknown option for serve: {arg}"))
    if parsed.help:
        return None
    host, port = parse_listen(parsed.text("--listen") or f"{DEFAULT_HOST}:{DEFAULT_PORT}")
    root = Path(os.path.abspath(parsed.text("--root") or os.getcwd()))
    if not root.is_dir():
        raise RunnerError(f"--root is not a directory: {root}")
    executor = parsed.text("--executor") or "local"
    if executor not in EXECUTORS:
        raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}: {executor}")
    if executor == "codex-exec" and shutil.which("codex", path=env.get("PATH")) is None:
        raise RunnerError("serve --executor codex-exec needs the codex CLI on PATH.")
    return ServeOptions(host, port, root, executor, read_token(env))


def bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise RunnerError(f"Cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise RunnerError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def endpoint_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{ENDPOINT}"


# -- the tool ----------------------------------------------------------------

Runner = Callable[[str, "str | None", common.Deadline, common.Echo], Awaitable[str]]


def executor_runner(executor: str, root: Path) -> Runner:
    """Run one prompt with the bundled executor, always in ``root``."""
    if executor == "codex-exec":
        from mcp_core.servers import codex_exec

        async def run_codex(
            prompt: str, approval_policy: str | None, deadline: common.Deadline, echo: common.Echo
        ) -> str:
            return await codex_exec.run_codex_exec(
                prompt, approval_policy, str(root), env=os.environ, deadline=deadline, echo=echo
            )

        return run_codex
    from mcp_core.servers import local

    async def run_local(prompt: str, approval_policy: str | None, deadline: common.Deadline, echo: common.Echo) -> str:
        return await local.run_prompt(prompt, cwd=str(root), deadline=deadline, echo=echo)

    return run_local


class OutputForwarder:
    """A command's output, sent to the caller as it comes as progress messages
    of its call (the worker writes them to runner.log, as a local server's
    stderr would be). What the caller is too slow to take is dropped beyond
    ``FORWARD_BUFFER_BYTES``, and said so."""

    def __init__(self, request: Any) -> None:
        import codecs

        import anyio

        self.request = request
        self.pending = bytearray()
        self.dropped = 0
        self.sent = 0
        self.ready = anyio.Event()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def add(self, chunk: bytes) -> None:
        self.pending.extend(chunk)
        if len(self.pending) > FORWARD_BUFFER_BYTES:
            self.dropped += len(self.pending) - FORWARD_BUFFER_BYTES
            del self.pending[:-FORWARD_BUFFER_BYTES]
        self.ready.set()

    async def send_pending(self, final: bool = False) -> None:
        text = self.decoder.decode(bytes(self.pending), final=final)
        self.pending.clear()
        if self.dropped:
            text = f"\n[{self.dropped} bytes of output not forwarded]\n{text}"
            self.dropped = 0
        if text:
            self.sent += 1
            await self.request.session.report_progress(self.sent, None, text)

    async def run(self) -> None:
        import anyio

        while True:
            await self.ready.wait()
            self.ready = anyio.Event()
            await self.send_pending()


async def forwarding_output(run: Runner, prompt: str, approval_policy: str | None, deadline: common.Deadline) -> str:
    """``run`` with the command's output forwarded to the caller, all of it
    sent before the answer (when the caller asked for progress)."""
    import anyio

    request = REQUEST.get()
    if request is None:
        return await run(prompt, approval_policy, deadline, None)
    forwarder = OutputForwarder(request)
    async with anyio.create_task_group() as group:
        group.start_soon(forwarder.run)
        try:
            answer = await run(prompt, approval_policy, deadline, forwarder.add)
        finally:
            group.cancel_scope.cancel()
            with anyio.move_on_after(FORWARD_FLUSH_SECONDS, shield=True):
                await forwarder.send_pending(final=True)
    return answer


def shown_command(prompt: str) -> str:
    command = protocol.command_from_prompt(prompt)
    if command is None:
        return "(no command on the prompt)"
    text = repr(command)
    return text if len(text) <= LOGGED_COMMAND_CHARS else text[: LOGGED_COMMAND_CHARS - 1] + "…"


def exit_code_of(answer: str) -> object:
    import json

    with contextlib.suppress(ValueError):
        parsed = json.loads(answer)
        if isinstance(parsed, dict):
            return parsed.get("exit_code")
    return None


async def unless_caller_leaves(caller: Caller, call: Awaitable[str]) -> str:
    """Await ``call``, cancelling it (which kills the command's process group)
    when the caller's connection drops: a worker killed mid-call sends no
    cancel, and its command must not run on unattended."""
    import anyio
    from mcp.server.mcpserver.exceptions import ToolError

    if caller.gone is None:
        return await call
    gone = caller.gone
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            await gone.wait()
            group.cancel_scope.cancel()

        group.start_soon(watch)
        answer = await call
        group.cancel_scope.cancel()
        return answer
    raise ToolError("The caller disconnected; its process group was killed.")


def logged_tool(run: Runner) -> common.ToolHandler:
    """The ``codex`` tool's handler: the caller's deadline, one log line per call.
    The call's ``cwd`` is ignored (``run`` has its root)."""

    async def handler(prompt: str, approval_policy: str | None, cwd: str | None) -> str:
        caller = CALLER.get() or UNKNOWN_CALLER
        started = time.monotonic()
        outcome = "cancelled; its process group was killed"
        try:
            deadline = common.deadline_for(caller.request_timeout)
            answer = await unless_caller_leaves(caller, forwarding_output(run, prompt, approval_policy, deadline))
            outcome = f"exit {exit_code_of(answer)}"
            return answer
        except Exception as exc:
            outcome = f"error: {exc}"
            raise
        finally:
            log(f"{caller.who} ran {shown_command(prompt)}: {outcome} ({time.monotonic() - started:.3f}s)")

    return handler


# -- the HTTP application ----------------------------------------------------


async def remember_request(ctx: Any, call_next: Any) -> Any:
    """SDK middleware: make the MCP request being handled known to the tool."""
    REQUEST.set(ctx)
    return await call_next(ctx)


class SharedTokenVerifier:
    """The SDK's TokenVerifier for one shared secret, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._expected = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        from mcp.server.auth.provider import AccessToken

        if hmac.compare_digest(token.encode("utf-8", "replace"), self._expected):
            return AccessToken(token="", client_id="token-holder", scopes=[])
        return None


def request_timeout_header(scope: dict[str, Any]) -> float | None:
    wanted = common.REQUEST_TIMEOUT_HEADER.lower().encode()
    for name, value in scope.get("headers") or []:
        if name.lower() == wanted:
            with contextlib.suppress(ValueError):
                return float(value.decode("latin-1"))
    return None


def with_caller(app: Any) -> Any:
    """ASGI wrapper: note the caller (for the tool's log line and deadline, and
    to cancel its call when it disconnects); log refused requests."""
    import anyio

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        peer = scope.get("client")
        who = f"{peer[0]}:{peer[1]}" if peer else "?"
        gone = anyio.Event()
        CALLER.set(Caller(who, request_timeout_header(scope), gone))

        async def receive_watched() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message.get("type") == "http.disconnect":
                gone.set()
            return message

        async def send_logged(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start" and message.get("status") in (401, 403, 413):
                log(f"{who} {scope.get('method')} {scope.get('path')}: refused with HTTP {message['status']}")
            await send(message)

        await app(scope, receive_watched, send_logged)

    return wrapped


def build_app(options: ServeOptions, url: str) -> Starlette:
    from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings
    from pydantic import AnyHttpUrl
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    server: MCPServer = MCPServer(
        f"mcp-runner-serve-{options.executor}",
        version="1",
        log_level="WARNING",
        # No OAuth here: the issuer is named only because the settings need one.
        auth=AuthSettings(issuer_url=AnyHttpUrl(url), resource_server_url=None),
        token_verifier=SharedTokenVerifier(options.token),
        middleware=[remember_request],
    )
    common.register_codex_tool(server, logged_tool(executor_runner(options.executor, options.root)))
    app = server.streamable_http_app(
        streamable_http_path=ENDPOINT,
        max_request_body_size=MAX_REQUEST_BODY_BYTES,
        max_sessions=MAX_SESSIONS,
        # The token is the gate. Host checks would refuse a reverse proxy that
        # forwards its public name, and guard against nothing a token does not.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=options.host,
    )
    # Any other path: 401 without the token too (404 with it).
    app.router.routes.append(Route("/{path:path}", RequireAuthMiddleware(PlainTextResponse("Not Found", 404), [])))
    return app


def serve(options: ServeOptions, sock: socket.socket) -> None:
    import asyncio

    import uvicorn

    url = endpoint_url(sock)
    # The SDK's and uvicorn's warnings as log lines like serve's own.
    logging.getLogger().addHandler(OneLineLog(log, ""))
    config = uvicorn.Config(
        with_caller(build_app(options, url)),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    log(f"serving the {options.executor} executor at {url}; commands run in {options.root}")
    # uvicorn shuts down gracefully on SIGTERM/SIGINT (cancelling the calls in
    # progress, which kills their process groups), then re-raises the signal to
    # the handler installed here, which kills whatever is left.
    common.exit_on_sigterm()
    # Processes a command leaves outside its group are adopted here and killed
    # when it ends, as the local executor does.
    process.become_subreaper()
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        options = parse_options(args, os.environ)
        if options is None:
            sys.stdout.write(USAGE)
            return 0
        sock = bind(options.host, options.port)
    except RunnerError as exc:
        return output.report(exc)
    try:
        serve(options, sock)
    except KeyboardInterrupt:
        common.kill_active_groups()
        return 128 + signal.SIGINT
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
