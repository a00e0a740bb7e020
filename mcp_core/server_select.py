"""Which MCP server a run talks to (CONTRACT: "Which MCP server the worker talks to")."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mcp_core.errors import RunnerError

_SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"


@dataclass(frozen=True)
class ServerChoice:
    mode: str  # "local", "codex", "codex-exec" or "custom"
    command: list[str]  # the argv spawned as a stdio MCP server

    def describe(self) -> dict[str, str]:
        return {"mode": self.mode, "command": shlex.join(self.command)}


def codex_has_mcp_server(codex: str) -> bool:
    """Whether ``codex --help`` lists an ``mcp-server`` command (gone from 0.154.0 on)."""
    try:
        result = subprocess.run(
            [codex, "--help"],
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    for line in result.stdout.splitlines():
        words = line.split()
        if words and words[0] == "mcp-server":
            return True
    return False


def choose_server(repo_root: Path, env: Mapping[str, str]) -> ServerChoice:
    requested = (env.get("MCP_RUNNER_SERVER") or "auto").strip()
    if requested == "auto":
        codex = shutil.which("codex", path=env.get("PATH"))
        if codex and codex_has_mcp_server(codex):
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
        script = _SCRIPTS_DIR / "run-local-mcp.sh"
        return ServerChoice("codex", [str(script), "--repo", str(repo_root), "--no-log"])
    try:
        argv = shlex.split(requested)
    except ValueError as exc:
        raise RunnerError(f"MCP_RUNNER_SERVER is not a valid command line: {exc}") from exc
    if not argv:
        raise RunnerError("MCP_RUNNER_SERVER is empty.")
    return ServerChoice("custom", argv)
