#!/usr/bin/env bash
# The static HTML report of a task's runs (docs/interface.md section 13); the work is done by bin/mcp-runner-report.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/_runner-python.sh" report "$@"
