"""A tiny stdio MCP server for the soak test (raw JSON-RPC, standard library only).

    python tiny_server.py [--gate FILE]

It offers the same ``codex`` tool as the bundled local executor and runs the
command after the prompt's ``Run the exact shell command:`` marker with
``bash -c`` in the current directory, in a session of its own, answering
``{"exit_code", "summary", "manifest_path"}``. It exists because the soak needs
many servers at once on a small machine: it starts in ~30 ms where a server
built on the SDK needs over a second of CPU. With ``--gate FILE`` it reads
nothing until FILE exists, so the test decides when the workers connect.
SIGTERM (also the worker's death, through its parent-death signal) kills the
running command's group and exits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

MARKER = "Run the exact shell command: "
running: list[int] = []


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def on_sigterm(signum: int, frame: object) -> None:
    for pgid in running:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(128 + signum)


def run(prompt: str) -> dict:
    found = prompt.find("\n" + MARKER)
    if found == -1:
        return {"content": [{"type": "text", "text": "no command on the prompt"}], "isError": True}
    command = prompt[found + 1 + len(MARKER) :]
    child = subprocess.Popen(
        ["bash", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    running.append(child.pid)
    output, _ = child.communicate()
    try:
        os.killpg(child.pid, signal.SIGKILL)  # whatever it left in its group
    except OSError:
        pass
    running.remove(child.pid)
    code = child.returncode if child.returncode >= 0 else 128 - child.returncode
    tail = output.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    summary = f"Command exited with status {code}; {tail[0][:100]}"
    answer = {"exit_code": code, "summary": summary, "manifest_path": None}
    return {"content": [{"type": "text", "text": json.dumps(answer)}]}


def main() -> None:
    signal.signal(signal.SIGTERM, on_sigterm)
    if len(sys.argv) == 3 and sys.argv[1] == "--gate":
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.02)
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method, ident = message.get("method"), message.get("id")
        if ident is None:
            continue  # a notification
        if method == "initialize":
            version = message.get("params", {}).get("protocolVersion", "2025-06-18")
            result: dict = {
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "chaos-tiny-server", "version": "1"},
            }
        elif method == "tools/list":
            schema = {
                "type": "object",
                "properties": {"prompt": {"type": "string"}, "approval_policy": {"type": "string"}},
                "required": ["prompt"],
            }
            result = {"tools": [{"name": "codex", "description": "run a command", "inputSchema": schema}]}
        elif method == "tools/call":
            result = run(message["params"]["arguments"]["prompt"])
        elif method == "ping":
            result = {}
        else:
            send({"jsonrpc": "2.0", "id": ident, "error": {"code": -32601, "message": f"no method {method}"}})
            continue
        send({"jsonrpc": "2.0", "id": ident, "result": result})


if __name__ == "__main__":
    main()
