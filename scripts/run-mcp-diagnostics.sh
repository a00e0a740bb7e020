#!/usr/bin/env bash
# Start this repository's diagnostics run and watch it (docs/interface.md section 12);
# the work is done by bin/mcp-runner-diagnostics.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/_runner-python.sh" diagnostics "$@"
