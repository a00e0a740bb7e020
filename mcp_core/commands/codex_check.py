"""``codex-check``: whether the ``codex`` on PATH can serve ``codex mcp-server``.

For ``scripts/run-local-mcp.sh --dry-run``: silent, exit 0 when it can (or
when there is no codex: the script says that itself); else the reason as one
line on stderr (the same line a run in codex mode fails with), exit 1.
"""

from __future__ import annotations

import os
import sys

from mcp_core.server_select import codex_mcp_server_problem


def main(argv: list[str] | None = None) -> int:
    problem = codex_mcp_server_problem(os.environ)
    if problem is None:
        return 0
    print(problem, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
