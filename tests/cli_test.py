"""``mcp-runner <command>``: one entry point with the wrappers' flags, output and exit codes;
the repo root outside a checkout; the one-line message before set-up; a real installed package."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import CHECKOUT, SCRIPTS, runner_env

from mcp_core import __version__, cli

CLI = [sys.executable, "-m", "mcp_core.cli"]
FIXTURE_RUN = "2025-10-18T18-30-06-976Z-41083"
NOT_SET_UP = re.compile(
    r"mcp-runner is not set up \(no module named '[\w.]+'\): run `make setup` in (\S+) \(or `pip install (\S+)`\)\n"
)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d[-:]\d\d[-:]\d\d[.-]\d{3}Z")
AGE = re.compile(r"(age[a-z_]*\"?:?\s*)[\d.]+", re.IGNORECASE)


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def outcome(done: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr, with timestamps (polled_at, log names) and heartbeat ages masked."""

    def mask(text: str) -> str:
        return AGE.sub(r"\1<age>", TIMESTAMP.sub("<time>", text))

    return done.returncode, mask(done.stdout), mask(done.stderr)


def test_version_is_the_package_version(repo: Path) -> None:
    done = run([*CLI, "--version"], repo, runner_env(repo))
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"mcp-runner {importlib.metadata.version('mcp-runner')}\n",
        "",
    )


def test_help_lists_the_commands_and_bad_use_exits_2(repo: Path) -> None:
    env = runner_env(repo)
    done = run([*CLI, "--help"], repo, env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("Usage: mcp-runner <command> [options]\n")
    listed = re.findall(r"^  (\S+)  ", done.stdout, re.M)
    assert listed == cli.available()
    assert {"start", "resume", "cancel", "poll", "diagnostics", "metrics", "migrate", "list", "report", "prune"} <= set(
        listed
    )
    assert ("serve" in listed) == (CHECKOUT / "mcp_core/commands/serve.py").is_file()
    bare = run(CLI, repo, env)
    assert (bare.returncode, bare.stdout, bare.stderr) == (2, "", done.stdout)
    unknown = run([*CLI, "bogus", "x"], repo, env)
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr == "Unknown command: bogus\n" + done.stdout
    no_id = run([*CLI, "start", "--resume"], repo, env)
    assert (no_id.returncode, no_id.stdout, no_id.stderr) == (
        2,
        "",
        "Usage: mcp-runner start --resume <run-id> [options]\n",
    )


WRAPPERS = {
    "start": ["mcp-runner-start.sh"],
    "cancel": ["mcp-runner-cancel.sh"],
    "poll": ["mcp-runner-poll.sh"],
    "diagnostics": ["run-mcp-diagnostics.sh"],
    "metrics": ["mcp-runner-metrics.js"],
    "migrate": ["mcp-runner-migrate.js"],
    "list": ["mcp-runner-list.sh"],
    "report": ["mcp-runner-report.sh"],
    "prune": ["mcp-runner-prune.sh"],
}


def wrapper(command: str, *args: str) -> list[str]:
    if command == "resume":  # the old form: start --resume <run-id>
        return [str(SCRIPTS / "mcp-runner-start.sh"), "--resume", *args]
    return [str(SCRIPTS / WRAPPERS[command][0]), *args]


@pytest.mark.parametrize("command", [*WRAPPERS, "resume"])
def test_each_commands_help_is_its_wrappers(repo: Path, command: str) -> None:
    env = runner_env(repo)
    mine = run([*CLI, command, "--help"], repo, env)
    theirs = run(wrapper(command, "x", "--help") if command == "resume" else wrapper(command, "--help"), repo, env)
    assert mine.returncode == 0 and mine.stdout.startswith("Usage: ") and mine.stderr == ""
    if command != "resume":  # the wrapper takes the word after --resume as the run id
        assert outcome(mine) == outcome(theirs)


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("poll", [FIXTURE_RUN]),
        ("poll", [FIXTURE_RUN, "--format", "json"]),
        ("poll", ["no-such-run"]),
        ("poll", ["../escape"]),
        ("poll", [FIXTURE_RUN, "--interval"]),
        ("start", ["--bogus"]),
        ("start", ["--timeout", "abc"]),
        ("start", ["--format", "yaml", "--command", "true"]),
        ("resume", ["no-such-run"]),
        ("resume", [FIXTURE_RUN, "--bogus"]),
        ("cancel", ["no-such-run"]),
        ("metrics", []),
        ("metrics", ["--bogus"]),
        ("migrate", ["--dry-run"]),
        ("migrate", ["--run-id"]),
        ("list", ["--format", "json"]),
        ("list", ["--status", "nope"]),
        ("prune", ["--keep", "100", "--dry-run"]),
        ("diagnostics", ["--timeout"]),
        ("diagnostics", ["--bogus"]),
    ],
)
def test_same_output_and_exit_code_as_the_wrapper(fixture_repo: Path, command: str, args: list[str]) -> None:
    env = runner_env(fixture_repo)
    theirs = run(wrapper(command, *args), fixture_repo, env)
    mine = run([*CLI, command, *args], fixture_repo, env)
    assert outcome(mine) == outcome(theirs)
    assert (theirs.stdout + theirs.stderr).strip()


def test_outside_a_checkout_the_repo_root_is_the_git_top_level_else_the_current_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_RUNNER_")}
    top = tmp_path / "project"
    deep = top / "src" / "deep"
    deep.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(top)], check=True, timeout=60)
    done = run([*CLI, "metrics"], deep, env)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "Metrics summary written to .runs/0001/metrics-summary.json\n",
        "",
    )
    assert (top / ".runs/0001/metrics-summary.json").is_file() and not (deep / ".runs").exists()

    plain = tmp_path / "plain"
    plain.mkdir()
    assert run([*CLI, "metrics"], plain, env).returncode == 0
    assert (plain / ".runs/0001/metrics-summary.json").is_file()

    chosen = tmp_path / "chosen"
    chosen.mkdir()
    assert run([*CLI, "metrics"], deep, {**env, "MCP_RUNNER_REPO_ROOT": str(chosen)}).returncode == 0
    assert (chosen / ".runs/0001/metrics-summary.json").is_file()


# ----------------------------------------------------------------------------- before set-up


def python_without_dependencies(tmp_path: Path) -> Path:
    """A ``python3`` on a PATH of its own that has the standard library only (no docopt, no mcp)."""
    folder = tmp_path / "bare-python"
    folder.mkdir()
    program = folder / "python3"
    program.write_text(f'#!/bin/sh\nexec "{os.path.realpath(sys.executable)}" -S "$@"\n')
    program.chmod(0o755)
    probe = run([str(program), "-c", "import docopt"], tmp_path, dict(os.environ))
    assert "No module named 'docopt'" in probe.stderr
    return folder


ALL_WRAPPERS = [
    ["mcp-runner-start.sh"],
    ["mcp-runner-start.sh", "--resume", "some-run"],
    ["mcp-runner-poll.sh", "some-run"],
    ["mcp-runner-poll.sh", "some-run", "--watch"],
    ["mcp-runner-cancel.sh", "some-run"],
    ["run-mcp-diagnostics.sh", "--no-watch"],
    ["mcp-runner-metrics.js"],
    ["mcp-runner-migrate.js", "--dry-run"],
    ["mcp-runner-list.sh"],
    ["mcp-runner-report.sh"],
    ["mcp-runner-prune.sh", "--keep", "1"],
]


@pytest.mark.parametrize("argv", ALL_WRAPPERS, ids=lambda argv: " ".join(argv))
def test_before_setup_every_wrapper_says_so_in_one_line(tmp_path: Path, argv: list[str]) -> None:
    checkout = tmp_path / "fresh-clone"
    checkout.mkdir()
    for part in ("scripts", "bin", "mcp_core"):
        shutil.copytree(CHECKOUT / part, checkout / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CHECKOUT / "Makefile", checkout)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_RUNNER_")}
    env["PATH"] = f"{python_without_dependencies(tmp_path)}:/usr/bin:/bin"
    done = run([str(checkout / "scripts" / argv[0]), *argv[1:]], checkout, env)
    assert (done.returncode, done.stdout) == (1, "")
    assert NOT_SET_UP.fullmatch(done.stderr), done.stderr
    assert NOT_SET_UP.fullmatch(done.stderr).groups() == (str(checkout), str(checkout))  # type: ignore[union-attr]
    assert not (checkout / ".runs").exists()


def test_the_set_up_check_finds_what_a_folder_lists_or_a_finder_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "listed_module.py").write_text("")
    (folder / "listed_package").mkdir()
    (folder / "listed_package.txt").write_text("")  # not a module
    (folder / "listed_notmodule.txt").write_text("")
    (folder / "listed_file").write_text("")  # a file, not a package
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zipped_module.py", "")
    monkeypatch.setattr(sys, "path", [str(folder), str(archive), *sys.path])
    everything = ("listed_module", "listed_package", "zipped_module", "os")
    assert cli._unlisted(everything) == {"zipped_module"}  # only what no folder lists is asked of the finders
    assert cli._first_missing(everything) is None
    assert cli._first_missing(("listed_module", "listed_notmodule", "missing_module", "zipped_module")) == (
        "listed_notmodule"
    )
    assert cli._first_missing(("zipped_module", "missing_module")) == "missing_module"
    assert cli._first_missing(("listed_package", "listed_file")) == "listed_file"


def test_a_ctrl_c_as_a_command_returns_exits_130_without_a_traceback() -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert cli.exit_code(interrupted) == 130
    assert cli.exit_code(lambda: 3) == 3


def test_wrappers_copied_without_the_package_say_so_in_one_line(tmp_path: Path) -> None:
    consumer = tmp_path / "consumer"
    shutil.copytree(SCRIPTS, consumer / "scripts")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_RUNNER_")}
    env["PATH"] = f"{python_without_dependencies(tmp_path)}:/usr/bin:/bin"
    for argv in ALL_WRAPPERS:
        done = run([str(consumer / "scripts" / argv[0]), *argv[1:]], consumer, env)
        assert (done.returncode, done.stdout) == (1, ""), argv
        assert done.stderr.startswith("mcp-runner is not set up: ") and done.stderr.count("\n") == 1, done.stderr
        assert "pip install" in done.stderr and "make setup" in done.stderr
    assert not (consumer / ".runs").exists()


# ----------------------------------------------------------------------------- installed


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with the package really installed (a wheel built from a copy of the
    sources, not an editable install); its dependencies come from this interpreter's site-packages."""
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, source)
    shutil.copytree(CHECKOUT / "mcp_core", source / "mcp_core", ignore=shutil.ignore_patterns("__pycache__"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=base,
    )
    if done.returncode != 0 and "No matching distribution" in done.stderr:
        pytest.skip(f"the build backend cannot be fetched here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    return venv


@pytest.mark.slow
def test_an_installed_package_runs_in_another_git_repository(installed: Path, tmp_path: Path) -> None:
    mcp_runner = str(installed / "bin" / "mcp-runner")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_RUNNER_") and k != "PYTHONPATH"}
    env["MCP_RUNNER_SERVER"] = "local"
    other = tmp_path / "other"
    (other / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(other)], check=True, timeout=60)
    where = run([str(installed / "bin/python"), "-c", "import mcp_core; print(mcp_core.__file__)"], other, env)
    assert where.stdout.startswith(str(installed))  # the installed copy, not this checkout

    version = run([mcp_runner, "--version"], other, env)
    assert version.stdout == f"mcp-runner {__version__}\n"

    # also who ran it: the local executor runs in the worker, so the command's parent is the worker
    command = 'echo "PYTHONPATH=${PYTHONPATH-unset} in $(pwd)"; echo "parent: $(tr "\\0" " " < /proc/$PPID/cmdline)"'
    started = run([mcp_runner, "start", "--command", command, "--format", "json"], other / "sub", env)
    assert (started.returncode, started.stderr) == (0, ""), started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    watched = run([mcp_runner, "poll", run_id, "--watch", "--interval", "0.2"], other / "sub", env, timeout=300)
    assert watched.returncode == 0, watched.stderr
    assert f"\nRun {run_id} status: succeeded\n" in watched.stdout

    run_dir = other / ".runs/0001/mcp" / run_id
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["repo_root"] == str(other)
    assert manifest["mcp_server"]["command"] == "mcp_core.servers.local, in the worker's process"
    # the command ran in the repository, without this package's folder on its PYTHONPATH, run by
    # the installed package's worker
    log = (run_dir / "runner.log").read_text()
    assert f"PYTHONPATH=unset in {other}" in log
    assert f"parent: {installed}/bin/python -m mcp_core.worker {run_dir} " in log, log
    assert not (other / "sub" / ".runs").exists()
    listing = json.loads(run([mcp_runner, "list", "--format", "json"], other, env).stdout)
    assert [(r["run_id"], r["status"]) for r in listing["runs"]] == [(run_id, "succeeded")]
