#!/usr/bin/env bash
# Retention: remove old finished runs (docs/interface.md section 13); the work is done by bin/mcp-runner-prune.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/_runner-python.sh" prune "$@"
