"""Server selection, with stand-in `codex` executables on a temp PATH."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from mcp_core.errors import RunnerError
from mcp_core.server_select import (
    ServerChoice,
    choose_server,
    codex_has_mcp_server,
    codex_mcp_server_problem,
    help_commands,
    sandbox_mode,
)

CHECKOUT = Path(__file__).resolve().parent.parent
FAKE_CODEX = CHECKOUT / "tests" / "fake_codex" / "codex"

# The shape of `codex --help` up to 0.153.4 (abridged) and from 0.154.0 on.
HELP_WITH_MCP_SERVER = """Codex CLI

If no subcommand is specified, options will be forwarded to the interactive CLI.

Usage: codex [OPTIONS] [PROMPT]
       codex [OPTIONS] <COMMAND> [ARGS]

Commands:
  exec              Run Codex non-interactively [aliases: e]
  mcp               Manage external MCP servers for Codex
  mcp-server        Start Codex as an MCP server (stdio)
  apply             Apply the latest diff produced by Codex agent as a `git apply` to your local
                    working tree [aliases: a]
  help              Print this message or the help of the given subcommand(s)

Options:
  -C, --cd <DIR>
          Tell the agent to use the specified directory as its working root
"""
HELP_WITHOUT = HELP_WITH_MCP_SERVER.replace("  mcp-server        Start Codex as an MCP server (stdio)\n", "")


def stand_in(bin_dir: Path, help_text: str, *, exit_code: int = 0, mcp_server_help_exit: int = 0) -> Path:
    """A `codex` that prints ``help_text`` for --help; like 0.169.0 it also answers
    `mcp-server --help` with the banner and exit 0 (which proves nothing)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    codex = bin_dir / "codex"
    codex.write_text(
        "#!/bin/sh\n"
        f"if [ \"$1\" = mcp-server ]; then cat <<'EOF'\n{help_text}EOF\nexit {mcp_server_help_exit}; fi\n"
        f"cat <<'EOF'\n{help_text}EOF\nexit {exit_code}\n"
    )
    codex.chmod(0o755)
    return codex


def env_with(bin_dir: Path | None, **extra: str) -> dict[str, str]:
    """An environment whose PATH holds ``bin_dir`` and system dirs without any codex."""
    dirs = [str(bin_dir)] if bin_dir else []
    dirs += [d for d in ("/usr/bin", "/bin") if not (Path(d) / "codex").exists()]
    env = {"PATH": os.pathsep.join(dirs)}
    env.update(extra)
    return env


def test_auto_picks_codex_when_its_help_lists_mcp_server(tmp_path: Path) -> None:
    bin_dir = tmp_path / "old"
    stand_in(bin_dir, HELP_WITH_MCP_SERVER)
    choice = choose_server(tmp_path, env_with(bin_dir))
    assert choice.mode == "codex"
    assert choice.command == [str(CHECKOUT / "scripts" / "run-local-mcp.sh"), "--repo", str(tmp_path), "--no-log"]


def test_auto_picks_codex_exec_when_codex_has_no_mcp_server(tmp_path: Path) -> None:
    bin_dir = tmp_path / "new"
    stand_in(bin_dir, HELP_WITHOUT)  # `codex mcp-server --help` exits 0 here too: not trusted
    choice = choose_server(tmp_path, env_with(bin_dir))
    assert choice == ServerChoice("codex-exec", [sys.executable, "-m", "mcp_core.servers.codex_exec"])


def test_auto_picks_local_without_codex(tmp_path: Path) -> None:
    choice = choose_server(tmp_path, env_with(None))
    assert choice == ServerChoice("local", [sys.executable, "-m", "mcp_core.servers.local"])
    assert choice.describe() == {"mode": "local", "command": shlex.join(choice.command)}


@pytest.mark.parametrize("value", ["", "auto", "  auto  ", " "])
def test_unset_empty_or_auto_all_mean_auto(tmp_path: Path, value: str) -> None:
    bin_dir = tmp_path / "new"
    stand_in(bin_dir, HELP_WITHOUT)
    assert choose_server(tmp_path, env_with(bin_dir, MCP_RUNNER_SERVER=value)).mode == "codex-exec"


def test_the_scripted_stand_in_is_told_apart_the_same_way(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "codex").symlink_to(FAKE_CODEX)
    path = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]])
    assert choose_server(tmp_path, {"PATH": path}).mode == "codex-exec"
    assert choose_server(tmp_path, {"PATH": path, "FAKE_CODEX_MCP_SERVER": "1"}).mode == "codex"


def test_a_mention_of_mcp_server_outside_the_command_list_does_not_count(tmp_path: Path) -> None:
    text = HELP_WITHOUT + "\nNote: mcp-server was removed in 0.154.0.\n  mcp-server  (see the changelog)\n"
    stand_in(tmp_path / "bin", text)
    assert help_commands(text).count("mcp-server") == 0
    assert not codex_has_mcp_server(str(tmp_path / "bin" / "codex"))


def test_help_commands_reads_only_the_command_names() -> None:
    assert help_commands(HELP_WITH_MCP_SERVER) == ["exec", "mcp", "mcp-server", "apply", "help"]
    assert help_commands(HELP_WITHOUT) == ["exec", "mcp", "apply", "help"]


def test_a_codex_whose_help_fails_or_hangs_has_no_mcp_server(tmp_path: Path) -> None:
    failing = stand_in(tmp_path / "failing", HELP_WITH_MCP_SERVER, exit_code=1)
    assert not codex_has_mcp_server(str(failing))
    hanging = tmp_path / "hanging" / "codex"
    hanging.parent.mkdir()
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)
    assert not codex_has_mcp_server(str(hanging), timeout=0.5)
    assert not codex_has_mcp_server(str(tmp_path / "missing" / "codex"))


def test_explicit_modes(tmp_path: Path) -> None:
    env = env_with(None)
    assert choose_server(tmp_path, {**env, "MCP_RUNNER_SERVER": "local"}).mode == "local"
    assert choose_server(tmp_path, {**env, "MCP_RUNNER_SERVER": "codex-exec"}).mode == "codex-exec"
    codex = choose_server(tmp_path, {**env, "MCP_RUNNER_SERVER": "codex"})  # no codex needed to choose it
    assert codex.mode == "codex" and codex.command[1:] == ["--repo", str(tmp_path), "--no-log"]


def test_codex_mode_prefers_the_run_local_mcp_shipped_with_the_wrappers(tmp_path: Path) -> None:
    consumer = tmp_path / "consumer"
    (consumer / "scripts").mkdir(parents=True)
    (consumer / "scripts" / "run-local-mcp.sh").write_text("#!/bin/sh\n")
    env = {**env_with(None), "MCP_RUNNER_SERVER": "codex", "MCP_RUNNER_CHECKOUT": str(consumer)}
    choice = choose_server(tmp_path, env)
    assert choice.command[0] == str(consumer / "scripts" / "run-local-mcp.sh")
    # A checkout without the script falls back to this package's copy.
    env["MCP_RUNNER_CHECKOUT"] = str(tmp_path / "elsewhere")
    assert choose_server(tmp_path, env).command[0] == str(CHECKOUT / "scripts" / "run-local-mcp.sh")


def test_anything_else_is_a_command_line(tmp_path: Path) -> None:
    env = {**env_with(None), "MCP_RUNNER_SERVER": "python3 -m my_server --flag 'two words'"}
    choice = choose_server(tmp_path, env)
    assert choice == ServerChoice("custom", ["python3", "-m", "my_server", "--flag", "two words"])
    assert choice.describe() == {"mode": "custom", "command": "python3 -m my_server --flag 'two words'"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("python3 'unclosed", "MCP_RUNNER_SERVER is not a valid command line: No closing quotation"),
        ("''", "MCP_RUNNER_SERVER names no program: \"''\""),
    ],
)
def test_bad_command_lines_are_refused(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(RunnerError) as raised:
        choose_server(tmp_path, {**env_with(None), "MCP_RUNNER_SERVER": value})
    assert raised.value.message == message


def fake_codex_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "codex").exists():
        (bin_dir / "codex").symlink_to(FAKE_CODEX)
    return {"PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]), **extra}


def test_codex_mode_on_a_codex_without_mcp_server_says_what_to_use(tmp_path: Path) -> None:
    env = fake_codex_env(tmp_path, MCP_RUNNER_SERVER="codex")
    line = "this codex (0.169.0-fake) has no mcp-server; use MCP_RUNNER_SERVER=codex-exec or auto"
    assert codex_mcp_server_problem(env) == line
    with pytest.raises(RunnerError) as raised:
        choose_server(tmp_path, env)
    assert raised.value.message == line
    env["FAKE_CODEX_MCP_SERVER"] = "1"
    assert codex_mcp_server_problem(env) is None
    assert choose_server(tmp_path, env).mode == "codex"


@pytest.mark.parametrize(
    ("value", "mode"),
    [(None, "workspace-write"), ("", "workspace-write"), ("read-only", "read-only"),
     (" danger-full-access ", "danger-full-access"), ("workspace-write", "workspace-write")],
)
def test_the_sandbox_defaults_to_workspace_write(value: str | None, mode: str) -> None:
    assert sandbox_mode({} if value is None else {"MCP_RUNNER_CODEX_SANDBOX": value}) == mode


@pytest.mark.parametrize("server", ["local", "codex-exec", "codex", "auto", "python3 -m x"])
def test_a_bad_sandbox_is_one_clear_line_in_every_mode(tmp_path: Path, server: str) -> None:
    with pytest.raises(RunnerError) as raised:
        choose_server(tmp_path, {**env_with(None), "MCP_RUNNER_SERVER": server, "MCP_RUNNER_CODEX_SANDBOX": "full"})
    assert raised.value.message == (
        "MCP_RUNNER_CODEX_SANDBOX='full' is not a sandbox mode; use read-only, workspace-write or danger-full-access."
    )
