"""``mcp-runner <command> [args]``: every command behind one entry point.

The installed package's console script (``main``) and the checkout's ``bin/``
scripts (``run``) both come here. A command is the module
``mcp_core.commands.<name>``, imported only once chosen, so each keeps the
start-up cost, flags, output and exit codes of its wrapper. Only os and sys are
imported at the top: poll comes through here on every call.
"""

from __future__ import annotations

import os
import sys
from _imp import extension_suffixes  # the import system's own (built in, loaded at every start)

TYPE_CHECKING = False  # typing costs ~5 ms to import; mypy reads this block all the same
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

# command -> (module under mcp_core.commands, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "start": ("start", "start a run; returns at once while a detached worker runs it"),
    "resume": ("resume", "resume a run whose worker has died: resume <run-id> [options]"),
    "cancel": ("cancel", "cancel a run"),
    "poll": ("poll", "show a run's status: poll <run-id> [--watch] [--format text|json]"),
    "diagnostics": ("diagnostics", "start the default commands and watch the run"),
    "metrics": ("metrics", "write the metrics summary"),
    "migrate": ("migrate", "move legacy .runs/local-mcp/ runs into the task's runs root"),
    "list": ("list", "the runs of a task as a table or JSON"),
    "report": ("report", "write the static HTML report of a task's runs"),
    "prune": ("prune", "remove old finished runs, with an audit log"),
    "serve": ("serve", "run commands for workers on other hosts (MCP over HTTP, with a token)"),
}
_COMMANDS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "commands")
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Commands that skip the interpreter's teardown once all is printed: start (budget
# 150 ms, and the worker it has just launched competes for the CPU; ~15 ms) and
# poll (called in loops, budget 1.5 x a bare interpreter's start; the teardown was
# a sixth of its instructions, ~2.5 ms). Neither leaves anything for it to do:
# no threads, atexit handlers or open files of theirs (BENCHMARKS.md).
_SKIP_TEARDOWN = ("start", "poll")


def available() -> list[str]:
    """The commands this installation has (``serve`` only once its module exists)."""
    return [name for name, (module, _) in COMMANDS.items() if os.path.isfile(f"{_COMMANDS_DIR}/{module}.py")]


def usage() -> str:
    names = available()
    width = max(len(name) for name in names)
    lines = [f"  {name.ljust(width)}  {COMMANDS[name][1]}" for name in names]
    return (
        "Usage: mcp-runner <command> [options]\n"
        "       mcp-runner <command> --help\n"
        "       mcp-runner --version\n"
        "\n"
        "Runs shell commands through an MCP server and records every run under .runs/.\n"
        "The repo root is MCP_RUNNER_REPO_ROOT, else the git top level of the current\n"
        "directory, else the current directory.\n"
        "\n"
        "Commands:\n" + "\n".join(lines) + "\n"
    )


def setup_hint(missing: str) -> str:
    """The one line printed when a dependency is missing: the package was never set up."""
    if os.path.isfile(os.path.join(_CHECKOUT, "Makefile")):
        fix = f"run `make setup` in {_CHECKOUT} (or `pip install {_CHECKOUT}`)"
    else:
        fix = f"install its dependencies with `{sys.executable} -m pip install <mcp-runner checkout>`"
    return f"mcp-runner is not set up (no module named {missing!r}): {fix}"


def _missing_dependency(exc: ModuleNotFoundError) -> str | None:
    """The missing third-party module, or None when one of our own is missing (a bug)."""
    name = exc.name or ""
    return None if not name or name.split(".")[0] == "mcp_core" else name


# pyproject.toml's dependencies, by the names they are imported under.
DEPENDENCIES = ("docopt", "jsonlines", "dateutil", "tabulate", "mcp", "msgspec")


def _first_missing(names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that no import finder can find (nothing is imported:
    the commands import their dependencies only where they use them, poll none).

    Asking the finders costs ~0.4 ms for the six (each found module gets a spec
    built), a tenth of poll's own work: a name listed in a folder of sys.path as
    a module or package is taken as found, and only the others are asked of the
    finders (zip files, other finders), which then decide."""
    unseen = _unlisted(names)
    for name in names:
        if name in unseen and not any(
            finder.find_spec(name, None) for finder in sys.meta_path if hasattr(finder, "find_spec")
        ):
            return name
    return None


def _unlisted(names: tuple[str, ...]) -> set[str]:
    """Those of ``names`` that no folder of sys.path holds as a module (``name`` plus
    a module suffix) or a package (a folder ``name``). From the last folder, where
    installed packages are: in a set-up environment one or two listings find them all."""
    suffixes = (".py", ".pyc", *extension_suffixes())
    unseen = set(names)
    for folder in reversed(sys.path):
        folder = folder or "."
        try:
            entries = set(os.listdir(folder))
        except OSError:  # not a folder (a zip file), or gone: left to the finders
            continue
        unseen.difference_update([
            name for name in unseen
            if any(name + end in entries for end in suffixes)
            or (name in entries and os.path.isdir(os.path.join(folder, name)))
        ])
        if not unseen:
            break
    return unseen


def run(name: str, argv: list[str]) -> int:
    """Run one command as its wrapper would; a missing dependency is one line, exit 1."""
    missing = _first_missing(DEPENDENCIES)
    if missing is not None:
        print(setup_hint(missing), file=sys.stderr)
        return 1
    try:
        module = __import__(f"mcp_core.commands.{COMMANDS[name][0]}", fromlist=["main"])
        return int(module.main(argv))
    except ModuleNotFoundError as exc:
        missing = _missing_dependency(exc)
        if missing is None:
            raise
        print(setup_hint(missing), file=sys.stderr)
        return 1


def exit_with(code: int, *, skip_teardown: bool = False) -> NoReturn:
    if skip_teardown:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            sys.exit(code)  # let the interpreter report it
        os._exit(code)
    sys.exit(code)


def exit_code(command: Callable[[], int]) -> int:
    """``command()``, or 130 for a Ctrl-C that comes as it returns, after its own
    handler (``output.run_cli``) has let go: the command is done, and the signal
    must not end it with a traceback (a watch interrupted as it ends)."""
    try:
        return command()
    except KeyboardInterrupt:
        return 130


def run_and_exit(name: str, argv: list[str]) -> NoReturn:
    """What a ``bin/mcp-runner-<name>`` script does."""
    exit_with(exit_code(lambda: run(name, argv)), skip_teardown=name in _SKIP_TEARDOWN)


def main(argv: list[str] | None = None) -> int:
    """``mcp-runner <command> [args]`` (the console script)."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write(usage())
        return 2
    first = args[0]
    if first in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0
    if first in ("-V", "--version"):
        from mcp_core import __version__

        print(f"mcp-runner {__version__}")
        return 0
    if first not in available():
        print(f"Unknown command: {first}", file=sys.stderr)
        sys.stderr.write(usage())
        return 2
    rest = args[1:]
    if first == "resume" and rest and not rest[0].startswith("-"):
        rest = ["--run-id", rest[0], *rest[1:]]
    if first == "start" and rest[:1] == ["--resume"]:  # the old wrapper's form
        if len(rest) < 2 or not rest[1]:
            print("Usage: mcp-runner start --resume <run-id> [options]", file=sys.stderr)
            return 2
        first, rest = "resume", ["--run-id", rest[1], *rest[2:]]
    if not os.environ.get("MCP_RUNNER_REPO_ROOT"):
        from mcp_core.paths import git_top_level

        os.environ["MCP_RUNNER_REPO_ROOT"] = git_top_level(os.getcwd())
    return run(first, rest)


def console() -> NoReturn:
    """The ``mcp-runner`` console script."""
    args = sys.argv[1:]
    exit_with(exit_code(lambda: main(args)), skip_teardown=bool(args) and args[0] in _SKIP_TEARDOWN)


if __name__ == "__main__":
    console()
