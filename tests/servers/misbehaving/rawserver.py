"""A small real MCP stdio server that misbehaves on purpose (raw JSON-RPC, no SDK).

    python rawserver.py <mode> [schema]

It answers ``initialize``, ``tools/list`` (one ``codex`` tool) and ``ping``
properly; ``tools/call`` goes as ``mode`` says:

    ok           {"exit_code":0,...}
    echo-args    exit_code 0, summary = the call's arguments as JSON
    env          exit_code 0, summary = $OPENAI_API_KEY as the server sees it
    no-json      plain prose, no JSON
    exit-string  {"exit_code":"0",...}
    exit-bool    {"exit_code":false,...}
    exit-float   {"exit_code":2.5,...}
    big-failure  exit_code 3 with a 100 KB summary
    is-error     an isError result with a message
    rpc-error    a JSON-RPC error response
    hang         never answers; ignores SIGTERM and stdin EOF; a child `sleep`
                 in its process group (pid written to $RAWSERVER_PID_FILE)
    hang-reporting  like hang, after the codex/events a Codex turn sends
                 (task_started, then stream_error "Reconnecting... waiting for
                 network"); a notifications/cancelled is written to
                 $RAWSERVER_CANCEL_FILE and answered with a turn_aborted event
    crash        exits with status 3 mid-call
    stray-line   a non-JSON line on stdout before each answer
    storm        2000 codex/event notifications (and a log message) before answering
    chatter      codex/event notifications without end; never answers
    exit-at-once exits before reading anything

``schema`` is ``hyphen`` (``approval-policy`` and ``cwd``, no additional
properties), ``codex`` (the Codex 0.153.4 form: ``hyphen`` plus ``sandbox``) or
``underscore`` (the old form, the default).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
SCHEMA = sys.argv[2] if len(sys.argv) > 2 else "underscore"


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def text_result(request_id: object, text: str, is_error: bool = False) -> None:
    result: dict = {"content": [{"type": "text", "text": text}]}
    if is_error:
        result["isError"] = True
    send({"jsonrpc": "2.0", "id": request_id, "result": result})


def input_schema() -> dict:
    if SCHEMA in ("hyphen", "codex"):
        properties: dict = {
            "prompt": {"type": "string"},
            "approval-policy": {"type": "string"},
            "cwd": {"type": "string"},
        }
        if SCHEMA == "codex":
            properties["sandbox"] = {"type": "string", "enum": ["read-only", "workspace-write", "danger-full-access"]}
        return {"type": "object", "properties": properties, "required": ["prompt"], "additionalProperties": False}
    return {
        "type": "object",
        "properties": {"prompt": {"type": "string"}, "approval_policy": {"type": "string"}},
        "required": ["prompt"],
    }


def codex_event(msg: dict) -> None:
    send({"jsonrpc": "2.0", "method": "codex/event", "params": {"id": "1", "msg": msg}})


def answer_call(request_id: object, arguments: dict) -> None:
    ok = {"exit_code": 0, "summary": "ran", "manifest_path": None}
    if MODE == "ok":
        text_result(request_id, json.dumps(ok))
    elif MODE == "echo-args":
        text_result(request_id, json.dumps({**ok, "summary": json.dumps(arguments, sort_keys=True)}))
    elif MODE == "env":
        text_result(request_id, json.dumps({**ok, "summary": os.environ.get("OPENAI_API_KEY", "<unset>")}))
    elif MODE == "no-json":
        text_result(request_id, "I ran the command and it went fine.")
    elif MODE == "exit-string":
        text_result(request_id, json.dumps({**ok, "exit_code": "0"}))
    elif MODE == "exit-bool":
        text_result(request_id, json.dumps({**ok, "exit_code": False}))
    elif MODE == "exit-float":
        text_result(request_id, json.dumps({**ok, "exit_code": 2.5}))
    elif MODE == "big-failure":
        text_result(request_id, json.dumps({**ok, "exit_code": 3, "summary": "x" * 100_000}))
    elif MODE == "huge-summary":  # more than a run file may hold, in a success
        text_result(request_id, json.dumps({**ok, "summary": "y" * (17 * 1024 * 1024)}))
    elif MODE == "is-error":
        text_result(request_id, "approval-policy: unknown field", is_error=True)
    elif MODE == "rpc-error":
        send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32603, "message": "internal boom"}})
    elif MODE in ("hang", "hang-reporting"):
        if MODE == "hang-reporting":
            codex_event({"type": "task_started"})
            codex_event({"type": "stream_error", "message": "Reconnecting... waiting for network"})
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
        pid_file = os.environ.get("RAWSERVER_PID_FILE")
        if pid_file:
            with open(pid_file, "w") as handle:
                handle.write(f"{os.getpid()} {child.pid}\n")
    elif MODE == "crash":
        sys.stderr.write("rawserver: crashing mid-call\n")
        sys.stderr.flush()
        os._exit(3)
    elif MODE == "stray-line":
        sys.stdout.write("this line is not JSON-RPC\n")
        text_result(request_id, json.dumps(ok))
    elif MODE == "storm":
        for n in range(2000):
            send({"jsonrpc": "2.0", "method": "codex/event", "params": {"msg": {"type": "delta", "n": n}}})
        send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "busy"}})
        text_result(request_id, json.dumps(ok))
    elif MODE == "chatter":
        n = 0
        while True:  # until the client stops reading (a broken pipe ends the process)
            send({"jsonrpc": "2.0", "method": "codex/event", "params": {"msg": {"type": "delta", "n": n}}})
            n += 1
    else:
        sys.exit(f"unknown mode {MODE}")


def main() -> None:
    if MODE == "exit-at-once":
        sys.exit(0)
    for raw in sys.stdin:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        method = message.get("method")
        request_id = message.get("id")
        if method == "initialize":
            if MODE == "stray-line":
                sys.stdout.write("Launching server (a banner on stdout)\n")
            send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "result": {
                        "protocolVersion": message["params"]["protocolVersion"],
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": f"rawserver-{MODE}", "version": "0"},
                    },
                }
            )
        elif method == "tools/list":
            tool = {"name": "codex", "description": "test", "inputSchema": input_schema()}
            send({"jsonrpc": "2.0", "id": request_id, "result": {"tools": [tool]}})
        elif method == "tools/call":
            answer_call(request_id, message["params"].get("arguments") or {})
        elif method == "notifications/cancelled" and MODE == "hang-reporting":
            with open(os.environ["RAWSERVER_CANCEL_FILE"], "a") as handle:
                handle.write(json.dumps(message["params"]) + "\n")
            codex_event({"type": "turn_aborted", "reason": "interrupted"})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": request_id, "result": {}})
        elif request_id is not None:
            send({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "no such method"}})
    if MODE == "hang":  # like Codex: a closed stdin does not end it
        while True:
            time.sleep(60)


if __name__ == "__main__":
    main()
