#!/usr/bin/env bash
# The runs of a task as a table or JSON (docs/interface.md section 13); the work is done by bin/mcp-runner-list.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/_runner-python.sh" list "$@"
