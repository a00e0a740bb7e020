"""What every bundled MCP server shares: the `codex` tool, the command on the
prompt, and running one command in its own process group.

The local executor (``mcp_core.servers.local``) and the ``codex exec`` bridge
both offer the tool exactly as the real Codex MCP server names it, so the
worker talks to all of them the same way. Import cost matters here: the
worker reads the constants before it spawns its server, so pydantic and anyio
are imported only where they are used.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import stat
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from mcp_core.process import signal_group
from mcp_core.process import stop_group as stop_group_blocking
from mcp_core.protocol import TOOL_NAME

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

TOOL_DESCRIPTION = (
    "Run the shell command named on the prompt's 'Run the exact shell command:' line once "
    "and answer with the JSON object {exit_code, summary, manifest_path}."
)
# The advertised input schema, for reference and for servers that build their
# tool by hand; ``register_codex_tool`` produces the same properties.
TOOL_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string"},
        "approval_policy": {"type": "string"},
        "approval-policy": {"type": "string"},
        "cwd": {"type": "string"},
    },
    "required": ["prompt"],
}

TIMEOUT_EXIT_CODE = 124
# The worker hands its MCP request timeout to the server through this variable
# so the server can give up on the command first and answer with exit 124
# instead of leaving the client to time out with no answer.
REQUEST_TIMEOUT_ENV = "MCP_RUNNER_REQUEST_TIMEOUT_SECONDS"
# The same, for a server reached over HTTP (``mcp-runner serve``): an HTTP header.
REQUEST_TIMEOUT_HEADER = "Mcp-Runner-Request-Timeout"
OUTPUT_TAIL_BYTES = 4096
SUMMARY_TAIL_LINES = 3
SUMMARY_LINE_CHARS = 160
# How long what a command wrote before it ended may take to be read from the
# pipe; a process it left behind must not keep its answer waiting.
DRAIN_SECONDS = 0.5
# What a run's runner.log keeps of command output (the server's stderr is the
# log): once the log holds half of the limit, a command's further output is kept
# only in memory, and its last part (at least LOG_MIN_TAIL_BYTES, else what fits
# under the limit) is written after a line saying how much was left out.
LOG_LIMIT_ENV = "MCP_RUNNER_LOG_MAX_BYTES"
DEFAULT_LOG_LIMIT_BYTES = 16 * 1024 * 1024
LOG_MIN_TAIL_BYTES = 64 * 1024

# Process groups of the commands running now, for a server that is told to stop.
ACTIVE_GROUPS: set[int] = set()
# A SIGTERM that lands while a command is being spawned (its pid not yet in
# ACTIVE_GROUPS) is acted on once the spawn has registered the new group.
_SPAWN_STATE = {"spawning": 0, "terminating": 0}

GUARD_NAME = "mcp-runner-guard"
# The guard's whole program: "+PGID" lines add a group, "-PGID" lines remove it;
# at the end of its input (whoever wrote it is gone, even by SIGKILL) it SIGKILLs
# every group still listed. Signals are ignored: only at the end of its input is
# every announced group known (a trap could run between a line's read and its use).
_GUARD_SCRIPT = r"""
trap '' TERM HUP INT
groups=" "
while read -r line; do
  case $line in
    +*) groups="$groups${line#+} " ;;
    -*) groups="${groups/ ${line#-} / }" ;;
  esac
done
for g in $groups; do kill -KILL -- "-$g" 2>/dev/null; done
"""


class GroupGuard:
    """A small bash process that outlives the process running commands in-process
    (the worker, for the bundled local executor) and kills the process groups of
    the commands still running when that process dies, whatever kills it: the
    in-process stand-in for a separate server's parent-death signal. It runs in a
    session of its own and ignores SIGTERM: cancel and resume stop it as they stop a
    recorded server, after the worker is dead, when it is already on its way out."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.pid = process.pid

    @classmethod
    def start(cls) -> GroupGuard:
        """Raises OSError when bash cannot be started."""
        process = subprocess.Popen(
            [GUARD_NAME, "-c", _GUARD_SCRIPT],  # its name in ps, not a command's "bash -c"
            executable="bash",
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return cls(process)

    def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError, ValueError):  # a guard that is gone guards nothing
            write_all(self.process.stdin.fileno(), line.encode())

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def unwatch(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def close(self, wait_seconds: float = 5.0) -> None:
        """End its input (it kills what it still watches) and reap it."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(wait_seconds)
        except subprocess.TimeoutExpired:
            stop_group_blocking(self.pid, 0.5, leader=self.process)
            self.process.wait()


ToolHandler = Callable[[str, "str | None", "str | None"], Awaitable[str]]
# Where a command's output goes as it comes: a file descriptor, a function, or nowhere.
Echo: TypeAlias = int | Callable[[bytes], None] | None


def register_codex_tool(server: MCPServer[Any], handler: ToolHandler) -> None:
    """Offer the `codex` tool on ``server``; ``handler(prompt, approval_policy, cwd)``
    returns the answer text (one text content item).

    Both spellings of the approval argument are accepted: the old runner sent
    ``approval_policy``, Codex 0.153 names it ``approval-policy``.
    """
    import inspect

    from pydantic import Field

    async def codex(**arguments: Any) -> str:
        approval = arguments.get("approval-policy") or arguments.get("approval_policy")
        return await handler(arguments["prompt"], approval, arguments.get("cwd"))

    # The SDK builds the input schema from the signature and passes arguments by
    # their wire names ("approval-policy" is no Python name), hence **arguments.
    keyword = inspect.Parameter.KEYWORD_ONLY
    codex.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("prompt", keyword, annotation=str),
            inspect.Parameter("approval_policy", keyword, default=None, annotation=str | None),
            inspect.Parameter(
                "approval_policy_hyphen",
                keyword,
                default=None,
                annotation=Annotated[str | None, Field(alias="approval-policy")],
            ),
            inspect.Parameter("cwd", keyword, default=None, annotation=str | None),
        ],
        return_annotation=str,
    )
    server.add_tool(codex, name=TOOL_NAME, description=TOOL_DESCRIPTION, structured_output=False)


def command_cwd(cwd_argument: str | None, env: Mapping[str, str]) -> str:
    """Where a command runs: the call's ``cwd``, else the repo root, else here."""
    return cwd_argument or env.get("MCP_RUNNER_REPO_ROOT") or os.getcwd()


@dataclass(frozen=True)
class Deadline:
    seconds: float | None  # how long the command may run; None: no limit
    kill_grace: float  # SIGTERM -> SIGKILL delay when it is stopped


def deadline_for(request_timeout: float | None) -> Deadline:
    """The server's own deadline for a command: a little shorter than the client's
    request timeout, so the answer (exit 124) arrives before the client gives up."""
    if request_timeout is None or not math.isfinite(request_timeout) or request_timeout <= 0:
        return Deadline(None, 1.0)
    margin = min(2.0, request_timeout * 0.2)
    return Deadline(request_timeout - margin, margin / 2)


def _number_from_env(env: Mapping[str, str], name: str, kind: Callable[[str], float]) -> float | None:
    """``env[name]`` read as ``kind`` (float or int); None when unset, empty or not a number."""
    raw = env.get(name)
    try:
        return kind(raw) if raw else None
    except ValueError:
        return None


def deadline_from_env(env: Mapping[str, str]) -> Deadline:
    return deadline_for(_number_from_env(env, REQUEST_TIMEOUT_ENV, float))


@dataclass(frozen=True)
class CommandOutcome:
    exit_code: int
    timed_out: bool
    output_tail: bytes  # the last OUTPUT_TAIL_BYTES of stdout+stderr


def log_limit_from_env(env: Mapping[str, str]) -> int:
    value = _number_from_env(env, LOG_LIMIT_ENV, int)
    return int(value) if value is not None and value > 0 else DEFAULT_LOG_LIMIT_BYTES


class LogEcho:
    """One command's output copied to ``echo`` (a descriptor, usually the run's
    runner.log, or a function) within the log's limit (see LOG_LIMIT_ENV). For a
    regular file the limit is on the file's size; else on what this command sent."""

    def __init__(self, echo: Echo, limit: int) -> None:
        self.echo = echo
        self.limit = limit
        self.written = 0
        self.left_out = 0
        self.tail = bytearray()

    def _send(self, data: bytes) -> None:
        emit(self.echo, data)
        self.written += len(data)

    def _log_size(self) -> int:
        if callable(self.echo) or self.echo is None:
            return self.written
        try:
            info = os.fstat(self.echo)
        except OSError:
            return self.written
        return info.st_size if stat.S_ISREG(info.st_mode) else self.written

    def write(self, chunk: bytes) -> None:
        if self.echo is None:
            return
        if not self.left_out:
            room = max(0, self.limit // 2 - self._log_size())
            head = chunk[:room]
            if head:
                self._send(head)
            chunk = chunk[len(head) :]
        if chunk:
            self.left_out += len(chunk)
            self.tail.extend(chunk)
            if len(self.tail) > self.limit:  # trimmed in steps, not per chunk
                del self.tail[: len(self.tail) - self.limit // 2]

    def finish(self) -> None:
        """Write the kept end of the output that went over the limit, after a note."""
        if self.echo is None or not self.left_out:
            return
        keep = max(LOG_MIN_TAIL_BYTES, self.limit - self._log_size())
        tail = bytes(self.tail[-keep:])
        note = (
            f"\n[mcp-runner: {self.left_out - len(tail)} bytes of this command's output left out of runner.log "
            f"({LOG_LIMIT_ENV}={self.limit}); its last {len(tail)} bytes follow]\n"
        )
        self._send(note.encode() + tail)
        self.left_out = 0
        self.tail.clear()


def emit(echo: Echo, data: bytes) -> None:
    """Hand output to ``echo``: a function, a file descriptor, or nowhere (None)."""
    if callable(echo):
        echo(data)
    elif echo is not None:
        write_all(echo, data)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            return  # a lost log must not fail the command


async def run_command(
    argv: list[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    deadline: Deadline,
    echo: Echo = 2,
    on_line: Callable[[bytes], None] | None = None,
    guard: GroupGuard | None = None,
) -> CommandOutcome:
    """Run ``argv`` in a new session (its own process group), stdin from
    /dev/null, its stdout and stderr copied to ``echo`` as they come (or,
    with ``on_line``, handed to it line by line instead).

    The command has ended when its own process has exited, whoever still holds
    the output pipe: then whatever it left in its group is killed, so are the
    processes it left outside the group (a server that is a child subreaper,
    see ``become_subreaper``, adopts them), what is still buffered in the pipe is
    read for at most ``DRAIN_SECONDS``, and its status is the answer. When the
    deadline passes (exit code 124) or the caller is cancelled, the whole group
    gets SIGTERM, then SIGKILL after the grace. ``guard`` (for commands run in the
    worker's own process) watches the group while it runs. Raises OSError when
    the program cannot be started.
    """
    import asyncio

    import anyio

    read_end, write_end = os.pipe()
    _SPAWN_STATE["spawning"] += 1
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=write_end,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except BaseException:
        _SPAWN_STATE["spawning"] -= 1
        if _SPAWN_STATE["terminating"]:
            os._exit(_SPAWN_STATE["terminating"])
        os.close(read_end)
        os.close(write_end)
        raise
    pgid = process.pid  # start_new_session: the leader's pid names the group
    ACTIVE_GROUPS.add(pgid)
    if guard is not None:
        guard.watch(pgid)
    _SPAWN_STATE["spawning"] -= 1
    if _SPAWN_STATE["terminating"]:
        kill_active_groups()
        os._exit(_SPAWN_STATE["terminating"])
    os.close(write_end)
    os.set_blocking(read_end, False)
    exit_fd = os.pidfd_open(process.pid)
    tail = bytearray()
    partial_line = bytearray()
    log = LogEcho(echo, log_limit_from_env(env))
    # Plain loop readers, not tasks: per command this costs ~0.3 ms less.
    loop = asyncio.get_running_loop()
    ended = loop.create_future()  # the leader exited, or the deadline passed
    output_closed = loop.create_future()

    def keep(chunk: bytes) -> None:
        if on_line is not None:
            partial_line.extend(chunk)
            while (end := partial_line.find(b"\n")) != -1 or len(partial_line) > OUTPUT_TAIL_BYTES:
                cut = end + 1 if end != -1 else len(partial_line)
                on_line(bytes(partial_line[:cut]))
                del partial_line[:cut]
        else:
            log.write(chunk)
        tail.extend(chunk)
        if len(tail) > 2 * OUTPUT_TAIL_BYTES:
            del tail[:-OUTPUT_TAIL_BYTES]

    def on_output() -> None:
        try:
            chunk = os.read(read_end, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            keep(chunk)
            return
        loop.remove_reader(read_end)
        if not output_closed.done():
            output_closed.set_result(None)

    def on_exit() -> None:
        loop.remove_reader(exit_fd)
        # The leader is a zombie until reaped, so its group id cannot be reused:
        # kill what it left in its group, then reap.
        signal_group(pgid, signal.SIGKILL)
        if not ended.done():
            ended.set_result(False)

    def on_deadline() -> None:
        if not ended.done():
            ended.set_result(True)

    timed_out = False
    finished = False
    loop.add_reader(read_end, on_output)
    loop.add_reader(exit_fd, on_exit)
    timer = loop.call_later(deadline.seconds, on_deadline) if deadline.seconds is not None else None
    try:
        timed_out = await ended
        finished = not timed_out
    finally:
        if timer is not None:
            timer.cancel()
        loop.remove_reader(exit_fd)
        if not finished:  # deadline or cancellation: stop the whole group
            with anyio.CancelScope(shield=True):
                await stop_group(pgid, deadline.kill_grace, leader=process)
        if guard is not None:
            guard.unwatch(pgid)  # while the leader is unreaped its pid cannot name another group
        process.wait()
        stop_left_behind(guard)
        if finished:
            # What the command wrote before it ended may still be in the pipe.
            with anyio.move_on_after(DRAIN_SECONDS, shield=True):
                await asyncio.shield(output_closed)
        loop.remove_reader(read_end)
        with contextlib.suppress(OSError):
            while chunk := os.read(read_end, 65536):
                keep(chunk)
        if on_line is not None and partial_line:
            on_line(bytes(partial_line))
        log.finish()
        os.close(read_end)
        os.close(exit_fd)
        ACTIVE_GROUPS.discard(pgid)
    returncode = process.returncode
    exit_code = TIMEOUT_EXIT_CODE if timed_out else (128 - returncode if returncode < 0 else returncode)
    return CommandOutcome(exit_code, timed_out, bytes(tail[-OUTPUT_TAIL_BYTES:]))


def stop_left_behind(guard: GroupGuard | None = None) -> list[int]:
    """Kill and reap the processes commands left outside their process groups
    (``setsid``, daemons), adopted by this server as a subreaper. Only when no
    other command runs or is being started: an orphan cannot be told apart from
    one that belongs to another running command."""
    from mcp_core import process

    if _SPAWN_STATE["spawning"]:
        return []
    leaders = set(ACTIVE_GROUPS)
    if len(leaders) > 1:
        return []
    return process.stop_adopted_children(keep=leaders | ({guard.pid} if guard is not None else set()))


def kill_active_groups() -> None:
    """SIGKILL every command group still running (for a server being terminated:
    its commands run in their own sessions, out of reach of a signal to its group)."""
    for pgid in list(ACTIVE_GROUPS):
        signal_group(pgid, signal.SIGKILL)


def exit_on_sigterm() -> None:
    """Install a SIGTERM handler that kills the running commands' groups, then exits."""

    def handler(signum: int, frame: object) -> None:
        kill_active_groups()
        if _SPAWN_STATE["spawning"]:
            _SPAWN_STATE["terminating"] = 128 + signum  # run_command finishes the job
            return
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


async def stop_group(pgid: int, grace: float, leader: subprocess.Popen[Any] | None = None) -> None:
    """``process.stop_group`` off the event loop (it waits up to ``grace``)."""
    import anyio

    await anyio.to_thread.run_sync(lambda: stop_group_blocking(pgid, grace, leader=leader))


def output_lines(tail: bytes, count: int = SUMMARY_TAIL_LINES) -> list[str]:
    text = tail.decode("utf-8", "replace")
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    picked = [line for line in lines if line][-count:]
    return [line if len(line) <= SUMMARY_LINE_CHARS else line[: SUMMARY_LINE_CHARS - 1] + "…" for line in picked]


def summarize(outcome: CommandOutcome, deadline: Deadline) -> str:
    """A short, useful summary: the status, then the last few lines of output."""
    if outcome.timed_out:
        head = f"Command timed out after {deadline.seconds:g} seconds; its process group was killed"
    else:
        head = f"Command exited with status {outcome.exit_code}"
    lines = output_lines(outcome.output_tail)
    return head + (f"; last output: {' | '.join(lines)}" if lines else "")
