#!/usr/bin/env bash
# Show a run's status (docs/interface.md section 6); the work is done by bin/mcp-runner-poll.
set -euo pipefail
if [[ $# -eq 0 ]]; then
  echo 'Usage: scripts/mcp-runner-poll.sh <run-id> [--watch] [--interval N] [--format text|json]' >&2
  exit 2
fi
# Sourced rather than exec'd, and no $(dirname): poll is called in loops and a
# second bash costs ~2 ms (see BENCHMARKS.md).
here="${BASH_SOURCE[0]}"
if [[ "$here" == */* ]]; then here="${here%/*}"; else here=.; fi
. "$here/_runner-python.sh" poll "$@"
