"""The detached worker: ``python -m mcp_core.worker <absolute run dir>``.

Start and resume launch it in its own session with stdout and stderr appended
to ``<run dir>/runner.log``. It runs the run's commands, in order, through one
MCP stdio session (CONTRACT section 3, "The worker"): commands that already
succeeded are skipped, so a relaunch continues a run. Exit status 0 when the
run succeeded, 1 otherwise (failed or cancelled).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from mcp_core import launch, lifecycle, paths, process, store
from mcp_core import manifest as manifest_mod
from mcp_core.codex_events import LATEST_EVENT_ENV, LATEST_EVENT_NAME, LatestEvent
from mcp_core.error_artifacts import write_error_artifact
from mcp_core.errors import RunnerError
from mcp_core.jsfmt import iso_now
from mcp_core.mcp_client import (
    CallCancelled,
    McpSession,
    ToolAnswer,
    ToolInvocationError,
    spawn_server,
    stop_server,
    tool_error_in,
)
from mcp_core.server_select import SERVER_TOKEN_ENV, ServerChoice, choose_server, sandbox_mode
from mcp_core.servers.common import COMMAND_MARKER, REQUEST_TIMEOUT_ENV, TOOL_NAME

CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGINT)
USAGE = "Usage: python -m mcp_core.worker <run-dir>"
DEFAULT_TIMEOUT_SECONDS = 3600.0
MISSING_PAYLOAD = "Tool response missing JSON payload."
MALFORMED_NOTE = "Expected JSON object with numeric exit_code."
# After a timeout or cancel the server gets this long to clean up (the bundled
# executor kills its command's group) before its own group is killed.
_STOP_WAIT_AFTER_CANCEL = 0.5
_STOP_WAIT_NORMAL = 2.0


def build_prompt(command: str) -> str:
    """The prompt for one command. The marker line comes last and the command
    follows it verbatim, so everything after the marker is the command."""
    return (
        "You are the executor of the MCP runner. Run the shell command given at the end of this "
        "message exactly once, exactly as written, from the repository root. Do not change it and "
        "do not run anything else.\n"
        "When it has finished, answer with only a JSON object, no other text: "
        '{"exit_code": <the exit status, an integer>, "summary": "<a short summary of the outcome>", '
        '"manifest_path": <a path string, or null>}.\n'
        "Everything after the marker below, to the end of this message, is the command.\n"
        f"{COMMAND_MARKER}{command}"
    )


@dataclass(frozen=True)
class Interpretation:
    outcome: str  # "succeeded", "command-failed" or "malformed-tool-response"
    exit_code: Any
    summary: str
    manifest_path: str | None
    joined_text: str


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (isinstance(value, int) or math.isfinite(value))
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def joined_text(content: list[dict[str, Any]]) -> str:
    texts = [
        item["text"].strip() for item in content if item.get("type") == "text" and isinstance(item.get("text"), str)
    ]
    return "\n".join(text for text in texts if text)


def interpret(content: list[dict[str, Any]]) -> Interpretation:
    """CONTRACT section 3 step 4: a JSON object with a numeric ``exit_code``
    (booleans and strings do not count) or the answer is malformed."""
    joined = joined_text(content)
    parsed: Any = None
    if joined.startswith("{"):
        try:
            parsed = json.loads(joined, parse_constant=_reject_constant)
        except ValueError:
            parsed = None
    if isinstance(parsed, dict) and _is_number(parsed.get("exit_code")):
        summary = parsed.get("summary")
        manifest_path = parsed.get("manifest_path")
        exit_code = parsed["exit_code"]
        return Interpretation(
            "succeeded" if exit_code == 0 else "command-failed",
            exit_code,
            summary if isinstance(summary, str) and summary else joined,
            manifest_path if isinstance(manifest_path, str) else None,
            joined,
        )
    exit_code = parsed.get("exit_code") if isinstance(parsed, dict) else None
    return Interpretation("malformed-tool-response", exit_code, joined or MISSING_PAYLOAD, None, joined)


def _positive(value: object, default: float) -> float:
    if _is_number(value) and value > 0:  # type: ignore[operator]
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


class Worker:
    def __init__(self, loc: paths.Locations, run_dir: Path) -> None:
        self.loc = loc
        self.run_dir = run_dir
        self.manifest_path = run_dir / manifest_mod.MANIFEST_NAME
        self.signal_received: int | None = None
        self._cancel: Callable[[], None] | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.server_record: dict[str, Any] | None = None
        self.server_url: str | None = None
        self.heartbeat_stop = threading.Event()
        self.heartbeat_thread: threading.Thread | None = None
        self.timeout_seconds = DEFAULT_TIMEOUT_SECONDS
        self.approval_policy = "never"
        self.sandbox = "workspace-write"
        self.connected = False
        self.session: McpSession | None = None
        self.latest_event = LatestEvent(run_dir / LATEST_EVENT_NAME)

    # -- logging, saving, signals --------------------------------------------

    def log(self, message: str) -> None:
        try:
            print(f"{iso_now()} worker[{os.getpid()}]: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass

    def save(self, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        def change_and_hold(manifest: dict[str, Any]) -> Any:
            result = change(manifest)
            lifecycle.fault_point("in-manifest-save")  # tests/chaos: a kill with the lock held
            return result

        return manifest_mod.save(self.manifest_path, change_and_hold, iso_now)

    def read_manifest(self) -> dict[str, Any]:
        manifest = store.read_json(self.manifest_path, follow=False)
        if not isinstance(manifest, dict):
            raise ValueError(f"{self.manifest_path} does not hold a JSON object")
        return manifest

    def write_heartbeat_file(self, now: str) -> None:
        store.atomic_write_text(self.run_dir / ".heartbeat", now + "\n")

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        # No logging here: a handler that prints could re-enter a write in progress.
        if self.signal_received is None:
            self.signal_received = signum
        # A call in progress is cancelled first (the server is told, and a turn
        # in progress gets a moment to end); the session closes after it.
        if self.session is not None and self.session.cancel_call():
            return
        if self._cancel is not None:
            self._cancel()

    # -- the run --------------------------------------------------------------

    def run(self) -> int:
        try:
            manifest = self.read_manifest()
        except (OSError, ValueError) as exc:
            self.log(f"cannot read the manifest: {exc}")
            return 1
        if manifest_mod.is_terminal(manifest):
            self.log(f"run is already {manifest.get('status')}; completing its metrics only")
            lifecycle.complete_pending_metrics(self.loc, self.manifest_path)
            return 0 if manifest.get("status") == "succeeded" else 1
        self.timeout_seconds = _positive(manifest.get("timeout_seconds"), DEFAULT_TIMEOUT_SECONDS)
        policy = manifest.get("approval_policy")
        self.approval_policy = policy if isinstance(policy, str) else "never"
        commands = [c for c in manifest.get("commands") or [] if isinstance(c, dict)]
        if all(c.get("status") == "succeeded" for c in commands):
            # Killed after the last command was saved: nothing is left to run.
            return self.conclude("succeeded", None)
        if self.signal_received is not None:
            return self.conclude("cancelled", None)
        try:
            choice = choose_server(self.loc.repo_root, os.environ)
            self.sandbox = sandbox_mode(os.environ)
        except RunnerError as exc:
            return self.conclude("failed", self.first_open_failure(exc.message, None))
        self.server_record = choice.describe()
        self.server_url = choice.url
        if choice.url is not None:
            self.log(f"talking to the MCP server at {choice.url} over streamable HTTP")
        else:
            try:
                self.server = self.spawn(choice)
            except OSError as exc:
                message = f"cannot start the MCP server ({self.server_record['command']}): {exc}"
                return self.conclude("failed", self.first_open_failure(message, traceback.format_exc()))
            self.server_record = {
                **choice.describe(),
                "pid": self.server.pid,
                "start_ticks": process.start_ticks(self.server.pid),
            }
            self.log(f"started the MCP server ({choice.mode}), pid {self.server.pid}: {self.server_record['command']}")
        try:
            import anyio  # the SDK is imported while the server starts up

            status, failure = anyio.run(self.session_main)
        except BaseException as exc:  # whatever happens, the run must not stay in progress
            self.log("worker error: " + "".join(traceback.format_exception(exc)))
            status = "failed"
            failure = self.first_open_failure(f"worker error: {type(exc).__name__}: {exc}", traceback.format_exc())
        return self.conclude(status, failure)

    def spawn(self, choice: ServerChoice) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env[REQUEST_TIMEOUT_ENV] = repr(self.timeout_seconds)
        env[LATEST_EVENT_ENV] = str(self.run_dir / LATEST_EVENT_NAME)
        if choice.mode in ("local", "codex-exec"):
            # The bundled servers run from this package (installed, or this checkout).
            env = launch.with_package_importable(env, self.loc.repo_root)
        log_fd = store.open_append(self.run_dir / "runner.log")
        try:
            return spawn_server(choice.command, env=env, cwd=self.loc.repo_root, stderr_fd=log_fd)
        finally:
            os.close(log_fd)

    async def session_main(self) -> tuple[str, Failure | None]:
        """Connect and run the commands: (final status, failure or None)."""
        import asyncio

        import anyio

        loop = asyncio.get_running_loop()
        result: tuple[str, Failure | None] = ("cancelled", None)
        with anyio.CancelScope() as scope:
            # Signals are taken by the loop (not a bare handler interrupting it).
            self._cancel = scope.cancel
            for signum in CANCEL_SIGNALS:
                loop.add_signal_handler(signum, self.on_signal, signum, None)
            if self.signal_received is not None:
                scope.cancel()
            try:
                async with self.open_session() as session:
                    self.session = session
                    if self.on_connected():
                        result = await self.run_commands(session)
                    else:
                        result = ("stop", None)
            except (ToolInvocationError, BaseExceptionGroup) as exc:
                error = tool_error_in(exc)
                if error is None:
                    raise
                result = ("failed", self.first_open_failure(error.message, error.stack, error.code))
            finally:
                self.session = None
                self._cancel = None
                for signum in CANCEL_SIGNALS:
                    loop.remove_signal_handler(signum)
                    signal.signal(signum, self.on_signal)
        return result

    def open_session(self) -> contextlib.AbstractAsyncContextManager[McpSession]:
        """Over HTTP to the chosen server's URL, else over the spawned server's pipes."""
        from mcp_core.mcp_client import connect, connect_http

        if self.server_url is not None:
            token = os.environ.get(SERVER_TOKEN_ENV)
            return connect_http(self.server_url, token=token, request_timeout=self.timeout_seconds, log=self.log)
        assert self.server is not None
        return connect(self.server, log=self.log, latest=self.latest_event)

    def on_connected(self) -> bool:
        """The first save once connected: runner_pid and a fresh heartbeat, before any command."""
        now = iso_now()
        ticks = process.start_ticks(os.getpid())
        still_open = True

        def change(manifest: dict[str, Any]) -> bool:
            nonlocal still_open
            if manifest_mod.is_terminal(manifest):
                still_open = False
                return False
            manifest["status"] = "in_progress"
            manifest["status_detail"] = None
            manifest["completed_at"] = None
            manifest["runner_pid"] = os.getpid()
            manifest["heartbeat_at"] = now
            manifest["metrics_recorded"] = False  # this run has not ended (again) yet
            manifest["runner_start_ticks"] = ticks
            manifest["mcp_server"] = self.server_record
            return True

        saved = self.save(change)
        if not still_open:
            self.log(f"the run became {saved.get('status')} before the worker connected; stopping")
            return False
        self.connected = True
        self.write_heartbeat_file(now)
        interval = _positive(saved.get("heartbeat_interval_seconds"), manifest_mod.HEARTBEAT_INTERVAL_SECONDS)
        self.heartbeat_thread = threading.Thread(target=self.heartbeat_loop, args=(interval,), daemon=True)
        self.heartbeat_thread.start()
        return True

    def heartbeat_loop(self, interval: float) -> None:
        while not self.heartbeat_stop.wait(interval):
            try:
                self.beat()
            except Exception as exc:  # a missed beat must not end the run
                self.log(f"heartbeat failed: {exc}")

    def beat(self) -> None:
        now = iso_now()
        alive = True

        def change(manifest: dict[str, Any]) -> bool:
            nonlocal alive
            if manifest_mod.is_terminal(manifest):
                alive = False
                return False
            manifest["heartbeat_at"] = now
            # Only these details are the heartbeat's to clear; a failure's detail stays.
            if manifest.get("status_detail") in ("stale-heartbeat", "resuming"):
                manifest["status_detail"] = None
            return True

        self.save(change)
        if alive:
            self.write_heartbeat_file(now)

    async def run_commands(self, session: McpSession) -> tuple[str, Failure | None]:
        commands = self.read_manifest().get("commands") or []
        for position, command in enumerate(commands):
            if not isinstance(command, dict) or command.get("status") == "succeeded":
                continue
            text = command.get("command")
            text = text if isinstance(text, str) else str(text)
            self.mark_running(position)
            self.log(f"command {command.get('index')} started: {text}")
            arguments = session.tool_arguments(
                build_prompt(text), self.approval_policy, self.loc.repo_root, self.sandbox
            )
            try:
                answer = await session.call_tool(TOOL_NAME, arguments, self.timeout_seconds)
            except CallCancelled:
                return ("cancelled", None)
            except ToolInvocationError as exc:
                self.log(f"command {command.get('index')}: tool invocation failed: {exc.message}")
                return ("failed", invocation_failure(position, exc.message, exc.stack, code=exc.code))
            lifecycle.fault_point("after-tool-call")  # tests/chaos: the command ran, nothing recorded yet
            failure = self.record_answer(position, command, answer)
            if failure is not None:
                return ("failed", failure)
        return ("succeeded", None)

    def mark_running(self, position: int) -> None:
        now = iso_now()

        def change(manifest: dict[str, Any]) -> None:
            command = manifest["commands"][position]
            command.update(manifest_mod.new_command(command.get("index"), command.get("command")))
            command["status"] = "running"
            command["started_at"] = now

        self.save(change)

    def record_answer(self, position: int, command: dict[str, Any], answer: ToolAnswer) -> Failure | None:
        """Write the response file; store a success, or return how the run fails."""
        response = self.run_dir / paths.command_file_name(command["index"], command["command"])
        store.write_json(response, answer.content)
        response_file = self.loc.rel(response)
        index = command.get("index")
        if answer.is_error:
            message = joined_text(answer.content) or "The tool reported an error without a message."
            self.log(f"command {index}: the tool answered with isError: {message}")
            return invocation_failure(position, message, None, response_file)
        result = interpret(answer.content)
        self.log(f"command {index}: {result.outcome} (exit_code {result.exit_code!r})")
        if result.outcome == "succeeded":
            now = iso_now()

            def change(manifest: dict[str, Any]) -> None:
                entry = manifest["commands"][position]
                entry["status"] = "succeeded"
                entry["completed_at"] = now
                entry["exit_code"] = result.exit_code
                entry["manifest_path"] = result.manifest_path
                entry["response_file"] = response_file
                entry["summary"] = result.summary

            self.save(change)
            return None
        if result.outcome == "command-failed":
            details: dict[str, Any] = {
                "exit_code": result.exit_code,
                "summary": result.summary,
                "normalized_response": answer.content,
            }
        else:
            details = {
                "note": MALFORMED_NOTE,
                "raw_summary": result.joined_text,
                "normalized_response": answer.content,
            }
        return Failure(
            position, result.outcome, details, result.summary,
            exit_code=result.exit_code, manifest_path=result.manifest_path, response_file=response_file,
        )

    def first_open_failure(self, message: str, stack: str | None, code: int | None = None) -> Failure | None:
        """A failure before any call (no server, no session): it lands on the
        first command that has not succeeded."""
        try:
            commands = self.read_manifest().get("commands") or []
        except (OSError, ValueError):
            return None
        for position, command in enumerate(commands):
            if isinstance(command, dict) and command.get("status") != "succeeded":
                return invocation_failure(position, message, stack, code=code)
        return None

    # -- endings --------------------------------------------------------------

    def stop_everything(self, *, after_cancel: bool) -> None:
        """Stop the heartbeat and the server (its whole group) before the run ends."""
        self.heartbeat_stop.set()
        if self.server is not None:
            server, self.server = self.server, None
            stop_server(server, wait_seconds=_STOP_WAIT_AFTER_CANCEL if after_cancel else _STOP_WAIT_NORMAL)
            self.log(f"the MCP server has stopped (exit status {server.returncode})")
        # A server that died mid-call (SIGKILL) left its command's group to us.
        orphans = process.stop_adopted_children()
        if orphans:
            self.log(f"stopped processes the MCP server left behind: {orphans}")
        if self.heartbeat_thread is not None:
            self.heartbeat_thread.join(timeout=30)

    def conclude(self, status: str, failure: Failure | None = None) -> int:
        """End the run: stop everything, then one terminal save and its metrics."""
        if status == "failed" and failure is not None:
            self.stop_everything(after_cancel=True)
            self.end_failed(failure)
            return 1
        if status == "succeeded":
            self.stop_everything(after_cancel=False)
            lifecycle.finish_run(self.loc, self.manifest_path, "succeeded", None)
            self.log("run succeeded")
            return 0
        if self.signal_received is not None:
            self.log(f"received {signal.Signals(self.signal_received).name}; cancelling the run")
        self.stop_everything(after_cancel=True)
        if status == "stop":
            return 1
        if status == "failed":  # failed with no command to blame (cannot happen with commands left)
            lifecycle.finish_run(self.loc, self.manifest_path, "failed", "tool-invocation-error")
            return 1
        name = signal.Signals(self.signal_received).name if self.signal_received else "a signal"
        lifecycle.cancel_run(self.loc, self.manifest_path, f"Cancelled: the worker received {name}.")
        self.log("run cancelled")
        return 1

    def end_failed(self, failure: Failure) -> None:
        """The run ends ``failed`` at one command, with its error artifact, in one save."""
        record = self.server_record

        def update(manifest: dict[str, Any], now: str) -> None:
            if record is not None and "mcp_server" not in manifest:
                manifest["mcp_server"] = record
            command = manifest["commands"][failure.position]
            if command.get("status") != "running":  # never started (no session)
                command.update(manifest_mod.new_command(command.get("index"), command.get("command")))
                command["started_at"] = now
            command["status"] = "failed"
            command["completed_at"] = now
            command["exit_code"] = failure.exit_code
            command["manifest_path"] = failure.manifest_path
            command["response_file"] = failure.response_file
            command["summary"] = failure.summary
            command["error_file"] = write_error_artifact(
                self.loc, self.run_dir, manifest, command, failure.reason, failure.details, now
            )

        lifecycle.finish_run(self.loc, self.manifest_path, "failed", failure.reason, update=update)
        self.log(f"run failed ({failure.reason})")


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
