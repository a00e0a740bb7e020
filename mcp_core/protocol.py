"""The prompt/answer protocol between the worker and the MCP tool, in one place.

The worker asks the ``codex`` tool to run one shell command with a prompt whose
last line is ``Run the exact shell command: <command>``; the tool answers with
a JSON object ``{exit_code, summary, manifest_path}`` (docs/interface.md section 5, "The
worker"). The bundled servers read the command back with
``command_from_prompt`` and build their answer with ``answer``; the worker
reads an answer with ``interpret``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mcp_core.jsfmt import dumps_compact
from mcp_core.jsonparse import JSON_PARSE

TOOL_NAME = "codex"
COMMAND_MARKER = "Run the exact shell command: "
MISSING_PAYLOAD = "Tool response missing JSON payload."
MALFORMED_NOTE = "Expected JSON object with numeric exit_code."


def build_prompt(command: str) -> str:
    """The prompt for one command. The marker line comes last and the command
    follows it verbatim, so everything after the marker is the command."""
    return (
        "You are the executor of the MCP runner. Run the shell command given at the end of this "
        "message exactly once, exactly as written, from the repository root. Do not change it and "
        "do not run anything else.\n"
        "When it has finished, answer with only a JSON object, no other text: "
        '{"exit_code": <the exit status, an integer>, "summary": "<a short summary of the outcome>", '
        '"manifest_path": <a path string, or null>}.\n'
        "Everything after the marker below, to the end of this message, is the command.\n"
        f"{COMMAND_MARKER}{command}"
    )


def command_from_prompt(prompt: str) -> str | None:
    """The command on the prompt's marker line: everything after the marker to the
    end of the prompt (the worker puts that line last, so a command may hold
    newlines). None when no line starts with the marker."""
    if prompt.startswith(COMMAND_MARKER):
        start = 0
    else:
        found = prompt.find("\n" + COMMAND_MARKER)
        if found == -1:
            return None
        start = found + 1
    return prompt[start + len(COMMAND_MARKER) :]


def is_number(value: object) -> bool:
    """A JSON number as the contract counts one: int or finite float, never a bool."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (isinstance(value, int) or math.isfinite(value))
    )


@dataclass(frozen=True)
class Interpretation:
    outcome: str  # "succeeded", "command-failed" or "malformed-tool-response"
    exit_code: Any
    summary: str
    manifest_path: str | None
    joined_text: str


def joined_text(content: list[dict[str, Any]]) -> str:
    texts = [
        item["text"].strip() for item in content if item.get("type") == "text" and isinstance(item.get("text"), str)
    ]
    return "\n".join(text for text in texts if text)


def interpret(content: list[dict[str, Any]]) -> Interpretation:
    """docs/interface.md section 5: a JSON object with a numeric ``exit_code``
    (booleans and strings do not count) or the answer is malformed."""
    joined = joined_text(content)
    parsed: Any = None
    if joined.startswith("{"):
        try:
            parsed = JSON_PARSE.decode(joined)
        except ValueError:
            parsed = None
    if isinstance(parsed, dict) and is_number(parsed.get("exit_code")):
        summary = parsed.get("summary")
        manifest_path = parsed.get("manifest_path")
        exit_code = parsed["exit_code"]
        return Interpretation(
            "succeeded" if exit_code == 0 else "command-failed",
            exit_code,
            summary if isinstance(summary, str) and summary else joined,
            manifest_path if isinstance(manifest_path, str) else None,
            joined,
        )
    exit_code = parsed.get("exit_code") if isinstance(parsed, dict) else None
    return Interpretation("malformed-tool-response", exit_code, joined or MISSING_PAYLOAD, None, joined)


def answer(exit_code: int, summary: str, manifest_path: str | None = None) -> str:
    """The tool's answer text: compact JSON ``{exit_code, summary, manifest_path}``."""
    return dumps_compact({"exit_code": exit_code, "summary": summary, "manifest_path": manifest_path})
