#!/usr/bin/env bash
# Start a run, or resume one: scripts/mcp-runner-start.sh --resume <run-id> [resume flags].
# --resume counts only as the first argument; the word after it is always the run id.
set -euo pipefail
if [[ "${1-}" == "--resume" ]]; then
  if [[ -z "${2-}" ]]; then
    echo "Usage: scripts/mcp-runner-start.sh --resume <run-id> [options]" >&2
    exit 2
  fi
  run_id="$2"
  shift 2
  exec "$(dirname "$0")/_runner-python.sh" resume --run-id "$run_id" "$@"
fi
exec "$(dirname "$0")/_runner-python.sh" start "$@"
