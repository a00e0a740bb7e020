"""Shared test helpers: temp repositories, the upstream fixture, running the real CLIs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent
# A .runs/ tree recorded from the old Node.js runner, with its real symlinked pointers.
FIXTURE_RUNS = CHECKOUT / "tests" / "fixtures" / "upstream-runs" / ".runs"
SCRIPTS = CHECKOUT / "scripts"
# Under xdist (``make test`` runs ``-n 3``) each of these modules runs whole on one worker,
# since its tests share a set-up built once per process: worker_test's scenarios, and
# real_codex_test's npm installs (whose "no Codex left" scan would also see another worker's).
ONE_WORKER_MODULES = frozenset({"tests/worker_test.py", "tests/real_codex_test.py"})


def _make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR | (stat.S_IXUSR if path.is_dir() else 0))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty repository root (a temp dir) for one test."""
    root = tmp_path / "repo"
    root.mkdir()
    return root


@pytest.fixture
def fixture_repo(repo: Path) -> Path:
    """A repository whose .runs/ is a writable copy of the upstream fixture (never the fixture itself)."""
    shutil.copytree(FIXTURE_RUNS, repo / ".runs", symlinks=True)
    _make_writable(repo / ".runs")
    return repo


# What the recorded tree's metrics.json sums to (the summary's keys in order, without generated_at).
FIXTURE_METRICS_FIGURES = {
    "task_id": "0001",
    "metrics_file": ".runs/0001/metrics.json",
    "entries_total": 5,
    "entries_succeeded": 1,
    "entries_failed": 4,
    "success_rate": 0.2,
    "guardrail_coverage": 0.2,
    "average_duration_seconds": 31.3668,
    "parse_errors": [],
}


def runner_env(repo: Path, **extra: str) -> dict[str, str]:
    """The environment for a CLI run against ``repo``, with no inherited runner settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_RUNNER_")}
    env["MCP_RUNNER_REPO_ROOT"] = str(repo)
    env.update(extra)
    return env


def run_script(
    name: str,
    *args: str,
    repo: Path,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/<name>`` as a real process, as a caller would."""
    return subprocess.run(
        [str(SCRIPTS / name), *args],
        cwd=cwd or repo,
        env=env or runner_env(repo),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file under ``root`` (contents, or a symlink's target), to prove nothing changed."""
    result: dict[str, bytes | str] = {}
    if not root.exists():
        return result
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            result[key] = "->" + os.readlink(path)
        elif path.is_file():
            result[key] = path.read_bytes()
        else:
            result[key] = "<dir>"
    return result


@pytest.fixture(scope="session", autouse=True)
def recorded_fixture_stays_untouched() -> Iterator[None]:
    """Tests read the recorded tree only through copies (``fixture_repo``): hold them to it."""
    before = snapshot(FIXTURE_RUNS)
    assert sum(value.startswith("->") for value in before.values() if isinstance(value, str)) == 6
    yield
    assert snapshot(FIXTURE_RUNS) == before, f"a test changed {FIXTURE_RUNS}: copy it first"


@pytest.fixture
def python() -> Iterator[str]:
    yield sys.executable


NODE = shutil.which("node")


@pytest.fixture(scope="session")
def node() -> str:
    """The path of ``node``; skips where Node.js is absent (the formatting comparisons need it)."""
    if NODE is None:
        pytest.skip("node is not installed: cannot compare with JavaScript")
    return NODE


def node_eval(node: str, expression: str) -> object:
    """``JSON.stringify(<expression>)`` evaluated by one node process, parsed back.

    The program goes through stdin, so a batch of thousands of values costs one process.
    """
    program = f"process.stdout.write(JSON.stringify({expression}));"
    result = subprocess.run([node, "-"], input=program, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def in_repo(monkeypatch: pytest.MonkeyPatch, repo: Path) -> None:
    """The environment a wrapper would give main(): this repo, no other runner settings."""
    for key in list(os.environ):
        if key.startswith("MCP_RUNNER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MCP_RUNNER_REPO_ROOT", str(repo))


@pytest.fixture(scope="module")
def runs_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 generated runs, shared by the tests that prove bad input changes nothing."""
    from gen_runs import generate

    repo = tmp_path_factory.mktemp("bad-input") / "repo"
    repo.mkdir()
    generate(repo, 6, seed=3, spacing_seconds=86_400)
    return repo


def run_script_on_terminal(name: str, *args: str, repo: Path, timeout: float = 120) -> tuple[int, str, str]:
    """Run ``scripts/<name>`` with stderr on a real terminal (a pty) and stdout in a file,
    as a person at a terminal redirecting the output; returns (exit code, stdout, terminal)."""
    import pty
    import select
    import tempfile

    reader, writer = pty.openpty()
    with tempfile.TemporaryFile() as stdout_file:
        try:
            process = subprocess.Popen(
                [str(SCRIPTS / name), *args], cwd=repo, env=runner_env(repo),
                stdin=subprocess.DEVNULL, stdout=stdout_file, stderr=writer,
            )
        finally:
            os.close(writer)
        terminal = bytearray()
        try:
            while select.select([reader], [], [], timeout)[0]:
                try:
                    chunk = os.read(reader, 65536)
                except OSError:  # EIO: the process, the last holder of the other end, has gone
                    break
                if not chunk:
                    break
                terminal += chunk
        finally:
            os.close(reader)
        process.wait(timeout=timeout)
        stdout_file.seek(0)
        return process.returncode, stdout_file.read().decode(), terminal.decode()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """xdist's ``load`` scheduling, except that a module of ONE_WORKER_MODULES is one unit of work.

    (xdist's own ``loadgroup`` cannot do it with pytest 9: it renames items by a field that pytest
    no longer reads.) The largest units are handed out first, so a whole module does not end the run.
    """
    if config.getoption("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else nodeid

    return OneWorkerModules(config, log)
