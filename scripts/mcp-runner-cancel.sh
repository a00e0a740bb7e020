#!/usr/bin/env bash
# Cancel a run (docs/interface.md section 7); the work is done by bin/mcp-runner-cancel.
set -euo pipefail
if [[ $# -eq 0 ]]; then
  echo 'Usage: scripts/mcp-runner-cancel.sh <run-id> [--format text|json] [--wait SECONDS]' >&2
  exit 2
fi
exec "$(dirname "${BASH_SOURCE[0]}")/_runner-python.sh" cancel "$@"
