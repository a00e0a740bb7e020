#!/bin/sh
# Show a run's status (docs/interface.md section 6); the work is done by bin/mcp-runner-poll.
# POSIX sh, not bash: poll is called in loops, and /bin/sh starts in a third of
# the time `env bash` takes (~0.7 ms against ~2 ms here, BENCHMARKS.md). The
# Python wrapper is sourced rather than exec'd (no second shell), and no $(dirname).
set -eu
if [ $# -eq 0 ]; then
  echo 'Usage: scripts/mcp-runner-poll.sh <run-id> [--watch] [--interval N] [--format text|json]' >&2
  exit 2
fi
case $0 in
  */*) here=${0%/*} ;;
  *) here=. ;;
esac
set -- poll "$@"  # sh's `.` takes no arguments: what `_runner-python.sh poll <args>` is given
. "$here/_runner-python.sh"
