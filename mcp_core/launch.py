"""Launching the detached worker of a run (the contract the worker relies on).

``[sys.executable, "-m", "mcp_core.worker", <absolute run dir>]`` runs in the
repo root, in a new session, with stdin from /dev/null and stdout+stderr
appended to ``<run dir>/runner.log`` (created here even if nothing is ever
written). Its environment is the caller's whole environment plus the five
``MCP_RUNNER_*`` locations as absolute values. Nobody waits for it: start and
resume return at once; a daemon thread reaps it should the caller live on.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from mcp_core import store
from mcp_core.manifest import RUNNER_LOG
from mcp_core.paths import Locations
from mcp_core.process import start_ticks
from mcp_core.run_record import Launched

WORKER_MODULE = "mcp_core.worker"
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def worker_env(loc: Locations, base: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    env["MCP_RUNNER_REPO_ROOT"] = str(loc.repo_root)
    env["MCP_RUNNER_TASK_ID"] = loc.task_id
    env["MCP_RUNNER_TASK_RUNS_ROOT"] = str(loc.runs_root)
    env["MCP_RUNNER_LEGACY_ROOT"] = str(loc.legacy_root)
    env["MCP_RUNNER_METRICS_ROOT"] = str(loc.metrics_root)
    return with_package_importable(env, loc.repo_root)


def with_package_importable(env: dict[str, str], cwd: Path) -> dict[str, str]:
    """``env``, with this package's folder added to PYTHONPATH only where
    ``python -m mcp_core...`` started in ``cwd`` would not find it: a checkout used
    without `pip install -e .` (its bin/ scripts put it on sys.path themselves).
    An installed package is found as it is, and site-packages never lands on the
    PYTHONPATH of the commands a run executes."""
    if not _importable_from(cwd, env):
        existing = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(_PACKAGE_PARENT) + (os.pathsep + existing if existing else "")
    return env


def _importable_from(cwd: Path, env: Mapping[str, str]) -> bool:
    """Whether ``python -m mcp_core...`` started in ``cwd`` finds this very package."""
    parent = os.path.realpath(_PACKAGE_PARENT)
    candidates = [str(cwd), *env.get("PYTHONPATH", "").split(os.pathsep)]
    if any(entry and os.path.realpath(entry) == parent for entry in candidates):
        return True
    import site  # already loaded by the interpreter: costs nothing

    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    for site_dir in [*site.getsitepackages(), *([user_site] if user_site else [])]:
        real = os.path.realpath(site_dir)
        if parent == real or parent.startswith(real + os.sep):
            return True
        # An editable install leaves a .pth file or an __editable__ finder behind.
        if glob.glob(os.path.join(site_dir, "*mcp_runner*.pth")):
            return True
    return False


def _reap(process: subprocess.Popen[bytes]) -> None:
    process.wait()


def worker_command() -> list[str]:
    return [sys.executable, "-m", WORKER_MODULE]


def launch_worker(
    loc: Locations,
    run_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    program: Sequence[str] | None = None,
) -> Launched:
    """Spawn the worker for ``run_dir`` and return at once (raises OSError on failure).

    ``program`` replaces ``worker_command()`` (the run dir is still appended):
    tests launch a probe that reports what it was given.
    """
    run_dir = Path(os.path.abspath(run_dir))
    log_fd = store.open_append(run_dir / RUNNER_LOG)
    try:
        process = subprocess.Popen(
            [*(worker_command() if program is None else program), str(run_dir)],
            cwd=loc.repo_root,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            close_fds=True,
            env=worker_env(loc, os.environ if env is None else env),
        )
    finally:
        os.close(log_fd)
    # Popen returns once the exec has succeeded, so the start time is the worker's.
    ticks = start_ticks(process.pid)
    threading.Thread(target=_reap, args=(process,), name=f"reap-{process.pid}", daemon=True).start()
    return Launched(process.pid, ticks)
