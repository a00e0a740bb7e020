#!/usr/bin/env bash
# Show a run's status (CONTRACT section 4); the work is done by bin/mcp-runner-poll.
set -euo pipefail
if [[ $# -eq 0 ]]; then
  echo 'Usage: scripts/mcp-runner-poll.sh <run-id> [--watch] [--interval N] [--format text|json]' >&2
  exit 2
fi
exec "$(dirname "${BASH_SOURCE[0]}")/_runner-python.sh" poll "$@"
