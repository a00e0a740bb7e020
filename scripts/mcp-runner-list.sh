#!/usr/bin/env bash
# The runs of a task as a table or JSON (CONTRACT section 10); the work is done by bin/mcp-runner-list.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/_runner-python.sh" list "$@"
