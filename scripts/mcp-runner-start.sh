#!/usr/bin/env bash
# Start a run, or resume one: scripts/mcp-runner-start.sh --resume <run-id> [resume flags].
# --resume counts only as the first argument; the word after it is always the run id.
set -euo pipefail
# The Python wrapper is sourced, not exec'd, and no $(dirname): a second bash and
# a dirname process cost ~5 ms of start's 150 ms budget (see BENCHMARKS.md).
here="$0"
if [[ "$here" == */* ]]; then here="${here%/*}"; else here=.; fi
if [[ "${1-}" == "--resume" ]]; then
  if [[ -z "${2-}" ]]; then
    echo "Usage: scripts/mcp-runner-start.sh --resume <run-id> [options]" >&2
    exit 2
  fi
  run_id="$2"
  shift 2
  . "$here/_runner-python.sh" resume --run-id "$run_id" "$@"
fi
. "$here/_runner-python.sh" start "$@"
