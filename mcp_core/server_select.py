"""Which MCP server a run talks to (docs/interface.md section 10).

``MCP_RUNNER_SERVER``:

- unset, empty or ``auto``: ``codex`` when ``codex --help`` lists an ``mcp-server``
  command (Codex up to 0.153.4), else ``codex-exec`` when a ``codex`` is on PATH
  (0.154.0 on), else ``local``;
- ``codex``: ``scripts/run-local-mcp.sh --repo <root> --no-log``, i.e. ``codex -C <root> mcp-server``;
- ``codex-exec``: ``python -m mcp_core.servers.codex_exec``, each call runs ``codex exec``;
- ``local``: ``python -m mcp_core.servers.local``, ``bash -c`` in the repo root, no network;
- ``http://HOST:PORT/PATH`` or ``https://...``: that MCP server, over streamable HTTP
  (e.g. ``mcp-runner serve`` on another host), with ``MCP_RUNNER_SERVER_TOKEN`` as
  its bearer token; nothing is spawned;
- anything else: that command line (shell words), spawned as a stdio MCP server.

``codex`` with a Codex that has no ``mcp-server`` (0.154.0 on) is refused with
one line naming its version and what to use instead (``codex_mcp_server_problem``;
``run-local-mcp.sh --dry-run`` reports the same line through
``mcp_core.commands.codex_check``).

``MCP_RUNNER_CODEX_SANDBOX`` (read-only, workspace-write or danger-full-access;
default workspace-write) is the sandbox Codex runs commands in, in every mode:
sent as the tool's ``sandbox`` argument where its schema has one, and given to
``codex exec --sandbox`` by the bridge. Any other value fails the run at once.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mcp_core.errors import RunnerError

_PACKAGE_SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
RUN_LOCAL_MCP = "run-local-mcp.sh"
HELP_TIMEOUT_SECONDS = 15.0
SERVER_TOKEN_ENV = "MCP_RUNNER_SERVER_TOKEN"
HTTP_MODE = "http"
SANDBOX_ENV = "MCP_RUNNER_CODEX_SANDBOX"
SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")
DEFAULT_SANDBOX = "workspace-write"


def sandbox_mode(env: Mapping[str, str]) -> str:
    """The sandbox for Codex: ``MCP_RUNNER_CODEX_SANDBOX``, default workspace-write."""
    mode = (env.get(SANDBOX_ENV) or "").strip() or DEFAULT_SANDBOX
    if mode not in SANDBOX_MODES:
        raise RunnerError(
            f"{SANDBOX_ENV}={mode!r} is not a sandbox mode; use read-only, workspace-write or danger-full-access."
        )
    return mode


@dataclass(frozen=True)
class ServerChoice:
    mode: str  # "local", "codex", "codex-exec", "custom" or "http"
    command: list[str]  # the argv spawned as a stdio MCP server (none for http)
    url: str | None = None  # the server's endpoint, for http

    def describe(self) -> dict[str, str]:
        """What the manifest records (never a token)."""
        if self.url is not None:
            return {"mode": self.mode, "url": self.url}
        return {"mode": self.mode, "command": shlex.join(self.command)}


def _codex_output(
    codex: str, argument: str, env: Mapping[str, str] | None, timeout: float = HELP_TIMEOUT_SECONDS
) -> str | None:
    """``codex <argument>``'s stdout, or None when it cannot be run, fails or hangs."""
    try:
        result = subprocess.run(
            [codex, argument],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=None if env is None else dict(env),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def codex_has_mcp_server(
    codex: str, env: Mapping[str, str] | None = None, timeout: float = HELP_TIMEOUT_SECONDS
) -> bool:
    """Whether ``codex --help`` lists an ``mcp-server`` command (gone from 0.154.0 on).

    Only the help's command list counts: ``codex mcp-server --help`` is no test,
    since 0.169.0 answers it with the general banner and exit 0. A codex that
    cannot be run, fails or does not answer in ``timeout`` seconds has none.
    """
    help_text = _codex_output(codex, "--help", env, timeout)
    return help_text is not None and "mcp-server" in help_commands(help_text)


def codex_version(codex: str, env: Mapping[str, str] | None = None) -> str:
    """The version ``codex --version`` prints (``codex-cli 0.171.0`` -> ``0.171.0``)."""
    words = (_codex_output(codex, "--version", env) or "").split()
    return words[-1] if words else "unknown version"


def codex_mcp_server_problem(env: Mapping[str, str]) -> str | None:
    """Why ``codex mcp-server`` cannot serve here, as one line; None when it can
    (or when no codex is on PATH: run-local-mcp.sh says that itself)."""
    codex = shutil.which("codex", path=env.get("PATH"))
    if codex is None or codex_has_mcp_server(codex, env):
        return None
    return (
        f"this codex ({codex_version(codex, env)}) has no mcp-server; "
        "use MCP_RUNNER_SERVER=codex-exec or auto"
    )


def help_commands(help_text: str) -> list[str]:
    """The command names in a clap help text's ``Commands:`` section."""
    names: list[str] = []
    in_commands = False
    for line in help_text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():  # a section heading ("Commands:", "Options:", ...)
            in_commands = line.strip() == "Commands:"
            continue
        words = line.split()
        # A command line is "  <name>  <description>"; wrapped descriptions are indented deeper.
        if in_commands and len(line) - len(line.lstrip()) <= 4:
            names.append(words[0])
    return names


def run_local_mcp_script(env: Mapping[str, str]) -> Path | None:
    """The ``run-local-mcp.sh`` shipped with the wrappers: the checkout's the
    wrappers run from (``MCP_RUNNER_CHECKOUT``), else this package's checkout."""
    candidates = []
    if env.get("MCP_RUNNER_CHECKOUT"):
        candidates.append(Path(env["MCP_RUNNER_CHECKOUT"]) / "scripts" / RUN_LOCAL_MCP)
    candidates.append(_PACKAGE_SCRIPTS_DIR / RUN_LOCAL_MCP)
    return next((path for path in candidates if path.is_file()), None)


def http_choice(url: str) -> ServerChoice:
    """A server reached over streamable HTTP. The URL is recorded in the
    manifest, so it must not carry credentials (the token has its own variable)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise RunnerError(f"MCP_RUNNER_SERVER is not a valid URL: {exc}") from exc
    if parts.username is not None or parts.password is not None:
        raise RunnerError(f"MCP_RUNNER_SERVER must not hold credentials; put the token in {SERVER_TOKEN_ENV}.")
    if not parts.hostname:
        raise RunnerError(f"MCP_RUNNER_SERVER names no host: {url}")
    return ServerChoice(HTTP_MODE, [], url)


def choose_server(repo_root: Path, env: Mapping[str, str]) -> ServerChoice:
    """The server for a run; RunnerError (one line) when it cannot be used."""
    sandbox_mode(env)
    requested = (env.get("MCP_RUNNER_SERVER") or "auto").strip() or "auto"
    explicit_codex = requested == "codex"
    if requested.lower().startswith(("http://", "https://")):
        return http_choice(requested)
    if requested == "auto":
        codex = shutil.which("codex", path=env.get("PATH"))
        if codex and codex_has_mcp_server(codex, env):
            requested = "codex"
        elif codex:
            requested = "codex-exec"
        else:
            requested = "local"
    if requested == "local":
        return ServerChoice("local", [sys.executable, "-m", "mcp_core.servers.local"])
    if requested == "codex-exec":
        return ServerChoice("codex-exec", [sys.executable, "-m", "mcp_core.servers.codex_exec"])
    if requested == "codex":
        problem = codex_mcp_server_problem(env) if explicit_codex else None
        if problem is not None:
            raise RunnerError(problem)
        script = run_local_mcp_script(env)
        if script is None:  # wrappers copied without it: what the script would exec
            return ServerChoice("codex", ["codex", "-C", str(repo_root), "mcp-server"])
        return ServerChoice("codex", [str(script), "--repo", str(repo_root), "--no-log"])
    try:
        argv = shlex.split(requested)
    except ValueError as exc:
        raise RunnerError(f"MCP_RUNNER_SERVER is not a valid command line: {exc}") from exc
    if not argv or not argv[0]:
        raise RunnerError(f"MCP_RUNNER_SERVER names no program: {requested!r}")
    return ServerChoice("custom", argv)
