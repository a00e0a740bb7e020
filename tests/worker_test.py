"""The detached worker as a real process, through real MCP stdio servers.

The bundled local executor runs the happy paths; the small misbehaving
servers in tests/servers/misbehaving/ run the failure cases.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from runs import (
    Run,
    create_run,
    group_members,
    launch_worker,
    misbehaving_server,
    pid_alive,
    run_worker,
    stop_worker,
    wait_for,
)

from mcp_core import manifest as manifest_mod
from mcp_core import run_record, store
from mcp_core.error_artifacts import MAX_STRING_BYTES
from mcp_core.jsfmt import iso_now
from mcp_core.worker import STORED_TEXT_BYTES

VERBATIM = "printf '%s\\n' \"$$\" '$$' '$&' '$`' \"it's\" 'é ü ✓' 'back\\slash'"
GUARD_SCRIPT = "#!/bin/sh\necho spec guard ok\n"


def write_guard(repo: Path, body: str = GUARD_SCRIPT) -> None:
    script = repo / "scripts" / "spec-guard.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def response_text(run: Run, index: int) -> str:
    command = run.manifest()["commands"][index - 1]
    content = json.loads((run.loc.repo_root / command["response_file"]).read_text())
    assert isinstance(content, list) and content[0]["type"] == "text"
    return content[0]["text"]


def error_artifact(run: Run, index: int) -> dict:
    command = run.manifest()["commands"][index - 1]
    data = store.read_json(run.loc.repo_root / command["error_file"])
    assert isinstance(data, dict)
    return data


@dataclass
class Scenario:
    commands: list[str]
    server: str = "local"
    timeout: float = 60
    approval_policy: str = "never"
    guard: bool = False
    env: dict[str, str] = field(default_factory=dict)


def _scenarios() -> dict[str, Scenario]:
    raw = misbehaving_server
    quoted = "say \"$$\" '$&'\nsecond line é"
    return {
        "success": Scenario(["echo hello", VERBATIM, "printf 'a\\nb'"]),
        "guard": Scenario(["bash scripts/spec-guard.sh --dry-run"], guard=True),
        "failing": Scenario(["echo before; exit 2", "bash scripts/spec-guard.sh"], guard=True),
        "timeout": Scenario(["echo $$ > pgid; sleep 30 & sleep 31"], timeout=3),
        "no-json": Scenario(["true", "true"], raw("no-json")),
        "exit-string": Scenario(["true", "true"], raw("exit-string")),
        "exit-bool": Scenario(["true", "true"], raw("exit-bool")),
        "exit-float": Scenario(["true"], raw("exit-float")),
        "is-error": Scenario(["true"], raw("is-error")),
        "rpc-error": Scenario(["true"], raw("rpc-error")),
        "crash": Scenario(["true"], raw("crash")),
        "exit-at-once": Scenario(["true", "true"], raw("exit-at-once")),
        "missing": Scenario(["true", "true"], "/nonexistent/mcp-server --stdio"),
        "stray-line": Scenario(["true"], raw("stray-line")),
        "storm": Scenario(["true"], raw("storm")),
        "hang": Scenario(["true"], raw("hang"), timeout=1),
        "args-hyphen": Scenario([quoted], raw("echo-args", "hyphen"), approval_policy="on-request"),
        "args-underscore": Scenario([quoted], raw("echo-args", "underscore"), approval_policy="on-request"),
        "env": Scenario(["true"], raw("env"), env={"OPENAI_API_KEY": "sk-test-123"}),
        "big-failure": Scenario(["true"], raw("big-failure")),
        "huge-summary": Scenario(["true", "true"], raw("huge-summary")),
    }


@dataclass
class Finished:
    run: Run
    exit_status: int
    repo: Path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finished]:
    """Every non-interactive scenario, each a real worker on its own repository,
    a few at a time (each worker spends ~1 s of CPU importing the SDK)."""
    pending: list[tuple[str, Run, Path]] = []
    for name, scenario in _scenarios().items():
        repo = tmp_path_factory.mktemp(name) / "repo"
        repo.mkdir()
        if scenario.guard:
            write_guard(repo)
        env = dict(scenario.env)
        if name == "hang":
            env["RAWSERVER_PID_FILE"] = str(repo / "pids")
        run = create_run(
            repo,
            scenario.commands,
            server=scenario.server,
            timeout=scenario.timeout,
            approval_policy=scenario.approval_policy,
            **env,
        )
        pending.append((name, run, repo))
    results: dict[str, Finished] = {}
    running: list[tuple[str, Run, Path, subprocess.Popen[bytes]]] = []
    deadline = time.monotonic() + 120 * len(pending)  # generous: each worker ends in seconds
    try:
        while pending or running:
            if time.monotonic() > deadline:
                raise AssertionError(f"workers still running: {[name for name, *_ in running]}")
            while pending and len(running) < PARALLEL_WORKERS:
                name, run, repo = pending.pop(0)
                running.append((name, run, repo, launch_worker(run)))
            for entry in list(running):
                name, run, repo, worker = entry
                if worker.poll() is not None:
                    results[name] = Finished(run, worker.returncode, repo)
                    running.remove(entry)
            time.sleep(0.05)
    finally:
        for _, _, _, worker in running:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
    return results


PARALLEL_WORKERS = 4


def test_success_through_the_local_executor(finished: dict[str, Finished]) -> None:
    run = finished["success"].run
    assert finished["success"].exit_status == 0
    manifest = run.manifest()
    assert manifest["status"] == "succeeded"
    assert manifest["status_detail"] is None
    assert manifest["completed_at"] is not None
    assert manifest["metrics_recorded"] is True
    assert manifest["runner_pid"] != os.getpid()
    assert isinstance(manifest["runner_start_ticks"], int)
    assert manifest["mcp_server"]["mode"] == "local"
    # New keys go after the contract's keys.
    keys = list(manifest)
    assert keys.index("metrics_recorded") < keys.index("runner_start_ticks") < keys.index("mcp_server")
    for command in manifest["commands"]:
        assert command["status"] == "succeeded"
        assert command["exit_code"] == 0
        assert command["error_file"] is None
        assert command["started_at"] <= command["completed_at"]
    first = manifest["commands"][0]
    assert first["response_file"] == f"{manifest['artifact_root']}/01-echo-hello.json"
    answer = json.loads(response_text(run, 1))
    assert list(answer) == ["exit_code", "summary", "manifest_path"]
    assert answer["exit_code"] == 0 and answer["manifest_path"] is None
    assert "hello" in first["summary"]
    # The command reached bash verbatim: $$ expanded by bash only, the rest literal.
    log = run.log_text()
    assert "\n$$\n$&\n$`\nit's\né ü ✓\nback\\slash\n" in log
    assert len(run.metrics_lines()) == 1
    entry = json.loads(run.metrics_lines()[0])
    assert entry["status"] == "succeeded" and entry["commands_passed"] == 3
    assert entry["guardrails_present"] is False
    assert manifest["summary"] == manifest_mod.GUARDRAIL_MISSING
    assert manifest_mod.GUARDRAIL_MISSING in log
    assert (run.run_dir / ".heartbeat").read_text() == manifest["heartbeat_at"] + "\n"


def test_a_succeeded_guardrail_adds_no_sentence(finished: dict[str, Finished]) -> None:
    run = finished["guard"].run
    assert finished["guard"].exit_status == 0
    manifest = run.manifest()
    assert manifest["status"] == "succeeded"
    assert "summary" not in manifest
    assert json.loads(run.metrics_lines()[0])["guardrails_present"] is True
    assert "Guardrail command" not in run.log_text()


def test_failing_command_ends_the_run_with_an_artifact(finished: dict[str, Finished]) -> None:
    run = finished["failing"].run
    assert finished["failing"].exit_status == 1
    manifest = run.manifest()
    assert (manifest["status"], manifest["status_detail"]) == ("failed", "command-failed")
    failed, guard = manifest["commands"]
    assert (failed["status"], failed["exit_code"]) == ("failed", 2)
    assert failed["summary"].startswith("Command exited with status 2")
    assert failed["error_file"] == f"{manifest['artifact_root']}/errors/01-echo-before-exit-2.json"
    artifact = error_artifact(run, 1)
    assert list(artifact) == ["run_id", "task_id", "command_index", "command", "created_at", "reason", "details"]
    assert artifact["reason"] == "command-failed"
    assert artifact["command"] == "echo before; exit 2"
    assert list(artifact["details"]) == ["exit_code", "summary", "normalized_response"]
    assert artifact["details"]["exit_code"] == 2
    assert guard["status"] == "pending" and guard["started_at"] is None
    # The guardrail never ran: it counts as missing, not failed.
    assert manifest["summary"] == manifest_mod.GUARDRAIL_MISSING
    assert len(run.metrics_lines()) == 1


def test_command_past_its_timeout_is_killed_with_exit_124(finished: dict[str, Finished]) -> None:
    # The executor's own deadline is a little shorter than the client's request
    # timeout, so the answer is exit 124 (command-failed), not a client timeout.
    run, repo = finished["timeout"].run, finished["timeout"].repo
    assert finished["timeout"].exit_status == 1
    manifest = run.manifest()
    assert (manifest["status"], manifest["status_detail"]) == ("failed", "command-failed")
    command = manifest["commands"][0]
    assert command["exit_code"] == 124
    assert "timed out" in command["summary"]
    assert error_artifact(run, 1)["details"]["exit_code"] == 124
    assert group_members(int((repo / "pgid").read_text())) == []
    assert not pid_alive(manifest["mcp_server"]["pid"])


@pytest.mark.parametrize(("name", "exit_code"), [("no-json", None), ("exit-string", "0"), ("exit-bool", False)])
def test_malformed_answers(finished: dict[str, Finished], name: str, exit_code: object) -> None:
    run = finished[name].run
    assert finished[name].exit_status == 1
    manifest = run.manifest()
    assert (manifest["status"], manifest["status_detail"]) == ("failed", "malformed-tool-response")
    command = manifest["commands"][0]
    assert command["status"] == "failed"
    assert command["exit_code"] == exit_code and type(command["exit_code"]) is type(exit_code)
    artifact = error_artifact(run, 1)
    assert artifact["reason"] == "malformed-tool-response"
    assert list(artifact["details"]) == ["note", "raw_summary", "normalized_response"]
    assert artifact["details"]["note"] == "Expected JSON object with numeric exit_code."
    assert artifact["details"]["normalized_response"][0]["type"] == "text"
    assert command["summary"] == artifact["details"]["raw_summary"]
    assert manifest["commands"][1]["status"] == "pending"
    assert len(run.metrics_lines()) == 1


def test_a_float_exit_code_is_a_number(finished: dict[str, Finished]) -> None:
    manifest = finished["exit-float"].run.manifest()
    assert manifest["status_detail"] == "command-failed"
    assert manifest["commands"][0]["exit_code"] == 2.5


@pytest.mark.parametrize(
    ("name", "message", "code"),
    [
        ("is-error", "approval-policy: unknown field", None),
        ("rpc-error", "internal boom", -32603),
        ("crash", "Connection closed", -32000),
        ("hang", "The MCP server gave no answer within", -32001),
    ],
)
def test_tool_invocation_errors(finished: dict[str, Finished], name: str, message: str, code: int | None) -> None:
    run = finished[name].run
    assert finished[name].exit_status == 1
    manifest = run.manifest()
    assert (manifest["status"], manifest["status_detail"]) == ("failed", "tool-invocation-error")
    command = manifest["commands"][0]
    assert command["exit_code"] is None
    assert command["summary"].startswith("Tool invocation failed: " + message)
    artifact = error_artifact(run, 1)
    assert artifact["reason"] == "tool-invocation-error"
    assert artifact["details"]["message"].startswith(message)
    # The server's own message, as the old runner kept it; a JSON-RPC code only as its own field.
    assert "MCP error" not in command["summary"] + artifact["details"]["message"]
    if code is None:
        assert list(artifact["details"]) == ["message", "stack"]
    else:
        assert list(artifact["details"]) == ["message", "stack", "code"] and artifact["details"]["code"] == code
    assert len(run.metrics_lines()) == 1


def test_a_hanging_server_has_its_group_killed(finished: dict[str, Finished]) -> None:
    # The server ignores SIGTERM and a closed stdin: only SIGKILL to its group ends it.
    server_pid, child_pid = (int(n) for n in (finished["hang"].repo / "pids").read_text().split())
    assert not pid_alive(server_pid)
    assert not pid_alive(child_pid)
    assert group_members(server_pid) == []
    assert "Connection closed" not in finished["hang"].run.log_text()


@pytest.mark.parametrize("name", ["exit-at-once", "missing"])
def test_a_server_that_cannot_start_fails_the_run_at_once(finished: dict[str, Finished], name: str) -> None:
    run = finished[name].run
    assert finished[name].exit_status == 1
    manifest = run.manifest()
    assert (manifest["status"], manifest["status_detail"]) == ("failed", "tool-invocation-error")
    first, second = manifest["commands"]
    assert first["status"] == "failed" and first["summary"].startswith("Tool invocation failed: ")
    assert error_artifact(run, 1)["reason"] == "tool-invocation-error"
    assert second["status"] == "pending"
    assert manifest["mcp_server"]["mode"] == "custom"
    assert len(run.metrics_lines()) == 1


@pytest.mark.parametrize("name", ["stray-line", "storm"])
def test_noise_on_the_channel_is_tolerated_and_logged(finished: dict[str, Finished], name: str) -> None:
    run = finished[name].run
    assert finished[name].exit_status == 0
    assert run.manifest()["status"] == "succeeded"
    log = run.log_text()
    if name == "stray-line":
        assert "not JSON-RPC: this line is not JSON-RPC" in log
    else:
        assert log.count(": codex event delta\n") == 2000


@pytest.mark.parametrize(
    ("name", "expected"), [("args-hyphen", ["approval-policy", "cwd"]), ("args-underscore", ["approval_policy"])]
)
def test_tool_arguments_follow_the_advertised_schema(
    finished: dict[str, Finished], name: str, expected: list[str]
) -> None:
    run, repo = finished[name].run, finished[name].repo
    assert finished[name].exit_status == 0
    arguments = json.loads(run.manifest()["commands"][0]["summary"])
    assert sorted(arguments) == sorted(["prompt", *expected])
    assert arguments[expected[0]] == "on-request"
    if "cwd" in expected:
        assert arguments["cwd"] == str(repo)
    command = run.manifest()["commands"][0]["command"]
    assert arguments["prompt"].endswith("\nRun the exact shell command: " + command)


def test_the_server_gets_the_whole_environment(finished: dict[str, Finished]) -> None:
    assert finished["env"].run.manifest()["commands"][0]["summary"] == "sk-test-123"


def test_error_artifacts_cut_huge_strings(finished: dict[str, Finished]) -> None:
    run = finished["big-failure"].run
    details = error_artifact(run, 1)["details"]
    assert len(details["summary"].encode()) < MAX_STRING_BYTES + 100
    assert details["summary"].endswith(f"[truncated: 100000 bytes, first {MAX_STRING_BYTES} kept]")
    # The response file keeps the whole answer.
    assert len(response_text(run, 1)) > 100_000


def test_a_huge_summary_is_stored_cut_and_the_run_goes_on(finished: dict[str, Finished]) -> None:
    """A server's summary larger than a run file may be: the manifest keeps its
    start, stays readable, and the next command runs."""
    run = finished["huge-summary"].run
    manifest = run.manifest()
    assert manifest["status"] == "succeeded"
    assert [c["status"] for c in manifest["commands"]] == ["succeeded", "succeeded"]
    summary = manifest["commands"][0]["summary"]
    assert summary.startswith("yyyy") and len(summary.encode()) < STORED_TEXT_BYTES + 100
    assert summary.endswith(f"[truncated: {17 * 1024 * 1024} bytes, first {STORED_TEXT_BYTES} kept]")
    assert run.manifest_path.stat().st_size < 4 * STORED_TEXT_BYTES


@pytest.mark.slow
def test_sigterm_cancels_the_run_and_leaves_no_process(repo: Path) -> None:
    run = create_run(repo, ["echo one", "echo $$ > pgid; sleep 30 & sleep 30", "echo three"])
    worker = launch_worker(run)
    try:
        wait_for(lambda: (repo / "pgid").exists() and (repo / "pgid").read_text().strip())
        pgid = int((repo / "pgid").read_text())
        server_pid = run.manifest()["mcp_server"]["pid"]
        assert group_members(pgid)
        os.kill(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=30) == 1
    finally:
        stop_worker(worker)
    manifest = run.manifest()
    assert manifest["status"] == "cancelled"
    assert manifest["metrics_recorded"] is True
    first, second, third = manifest["commands"]
    assert first["status"] == "succeeded"
    assert second["status"] == "failed" and "SIGTERM" in second["summary"]
    assert error_artifact(run, 2)["reason"] == "cancelled"
    assert third["status"] == "pending"
    assert "SIGTERM" in manifest["summary"]
    assert len(run.metrics_lines()) == 1
    assert json.loads(run.metrics_lines()[0])["status"] == "cancelled"
    assert group_members(pgid) == []
    assert not pid_alive(server_pid)
    assert group_members(server_pid) == []


@pytest.mark.slow
def test_sigkill_then_relaunch_continues_without_rerunning(repo: Path) -> None:
    counts = repo / "counts"
    first_time = f"[ ! -e {repo}/second ] && touch {repo}/second && echo $$ > {repo}/pgid && sleep 60"
    commands = [f"echo one >> {counts}", f"echo two >> {counts}; {first_time}; true", f"echo three >> {counts}"]
    run = create_run(repo, commands)
    worker = launch_worker(run)
    wait_for(lambda: (repo / "pgid").exists() and (repo / "pgid").read_text().strip())
    old_server = run.manifest()["mcp_server"]["pid"]
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    # The orphaned server notices (closed stdin, parent-death signal) and
    # takes the command's process group with it.
    wait_for(lambda: not pid_alive(old_server) and not group_members(int((repo / "pgid").read_text())))
    interrupted = run.manifest()
    assert interrupted["status"] == "in_progress"
    assert [c["status"] for c in interrupted["commands"]] == ["succeeded", "running", "pending"]
    first_done = interrupted["commands"][0]

    assert run_worker(run) == 0
    manifest = run.manifest()
    assert manifest["status"] == "succeeded"
    assert [c["status"] for c in manifest["commands"]] == ["succeeded"] * 3
    assert manifest["commands"][0] == first_done  # not run again, not touched
    assert counts.read_text().splitlines() == ["one", "two", "two", "three"]
    assert len(run.metrics_lines()) == 1


@pytest.mark.slow
def test_heartbeat_clears_only_its_own_details(repo: Path) -> None:
    run = create_run(repo, ["until [ -e release ]; do sleep 0.05; done"])

    def fast_heartbeat(manifest: dict) -> None:
        manifest["heartbeat_interval_seconds"] = 0.1

    def mark(detail: str):
        return lambda manifest: manifest.__setitem__("status_detail", detail)

    run_record.update(run.manifest_path, fast_heartbeat)
    worker = launch_worker(run)
    try:
        wait_for(lambda: run.manifest()["commands"][0]["status"] == "running")
        run_record.update(run.manifest_path, mark("stale-heartbeat"))
        wait_for(lambda: run.manifest()["status_detail"] is None)
        run_record.update(run.manifest_path, mark("resuming"))
        wait_for(lambda: run.manifest()["status_detail"] is None)
        run_record.update(run.manifest_path, mark("command-failed"))
        for _ in range(2):  # two more beats
            beat = run.manifest()["heartbeat_at"]
            wait_for(lambda: run.manifest()["heartbeat_at"] > beat)  # noqa: B023
        manifest = run.manifest()
        assert manifest["status_detail"] == "command-failed"
        # .heartbeat is rewritten just after the manifest is saved (docs/interface.md section 5)
        wait_for(lambda: (run.run_dir / ".heartbeat").read_text() >= manifest["heartbeat_at"])
        (repo / "release").touch()
        assert worker.wait(timeout=30) == 0
    finally:
        stop_worker(worker)


def test_a_terminal_run_only_gets_its_pending_metrics(repo: Path) -> None:
    run = create_run(repo, ["true"], server=str(repo / "never-started"))

    def ended(manifest: dict) -> None:
        manifest["status"] = "failed"
        manifest["completed_at"] = iso_now()

    run_record.update(run.manifest_path, ended)
    assert run_worker(run) == 1
    assert run.manifest()["metrics_recorded"] is True
    assert len(run.metrics_lines()) == 1
    assert run_worker(run) == 1
    assert len(run.metrics_lines()) == 1


def test_a_cancel_tells_the_server_and_lets_its_turn_end_before_stopping_it(tmp_path: Path) -> None:
    cancel_file = tmp_path / "cancelled.jsonl"
    run = create_run(
        tmp_path, ["true"], server=misbehaving_server("hang-reporting", "codex"), RAWSERVER_CANCEL_FILE=str(cancel_file)
    )
    worker = launch_worker(run)
    try:
        wait_for(lambda: "Reconnecting... waiting for network" in run.log_text())
        os.kill(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=60) == 1
    finally:
        stop_worker(worker)
    assert run.manifest()["status"] == "cancelled"
    [cancelled] = [json.loads(line) for line in cancel_file.read_text().splitlines()]
    assert cancelled["reason"] == "caller cancelled"  # the MCP notifications/cancelled for the call
    lines = run.log_text().splitlines()
    aborted = next(n for n, line in enumerate(lines) if line.endswith("codex event turn_aborted: interrupted"))
    stopped = next(n for n, line in enumerate(lines) if "the MCP server has stopped" in line)
    assert aborted < stopped  # the turn ended before the server's stdin was closed and its group stopped
