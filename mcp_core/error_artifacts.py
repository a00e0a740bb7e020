"""Error artifacts: ``<run dir>/errors/<NN>-<slug>.json``, one per failed command.

Shape (docs/interface.md section 5): ``{run_id, task_id, command_index, command,
created_at, reason, details}``. The command and every string inside
``details`` longer than 8 KiB are cut, and the cut says so (section 10), so a
huge output or command cannot bloat them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_core import store
from mcp_core.paths import Locations, command_file_name

MAX_STRING_BYTES = 8 * 1024
ERRORS_DIR = "errors"


def cut_long_strings(value: Any, limit: int = MAX_STRING_BYTES) -> Any:
    """A copy of ``value`` in which every string over ``limit`` UTF-8 bytes keeps
    its first ``limit`` bytes and ends with a note giving the original size."""
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogateescape")
        if len(data) <= limit:
            return value
        head = data[:limit].decode("utf-8", "ignore")  # never split a character
        return f"{head}\n[truncated: {len(data)} bytes, first {limit} kept]"
    if isinstance(value, dict):
        return {key: cut_long_strings(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [cut_long_strings(item, limit) for item in value]
    return value


def write_error_artifact(
    loc: Locations,
    run_dir: Path,
    manifest: dict[str, Any],
    command: dict[str, Any],
    reason: str,
    details: dict[str, Any],
    created_at: str,
) -> str:
    """Write the artifact for ``command`` and return its path relative to the repo root."""
    index = command.get("index")
    text = command.get("command")
    errors_dir = run_dir / ERRORS_DIR
    store.refuse_linked(errors_dir)  # never written through a link
    errors_dir.mkdir(exist_ok=True)
    path = errors_dir / command_file_name(index if isinstance(index, int) else 0, text if isinstance(text, str) else "")
    store.write_json(
        path,
        {
            "run_id": manifest.get("run_id"),
            "task_id": manifest.get("task_id"),
            "command_index": index,
            "command": cut_long_strings(text),
            "created_at": created_at,
            "reason": reason,
            "details": cut_long_strings(details),
        },
    )
    return loc.rel(path)
