#!/usr/bin/env bash
# Runs one runner command in Python: _runner-python.sh <command> [args...]
# The checkout is the folder above scripts/ (also in a consumer's repo the
# scripts were copied into): its .venv when there is one, else python3 on PATH
# with the mcp-runner package installed.
set -euo pipefail
scripts_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
checkout="$(dirname "$scripts_dir")"
export MCP_RUNNER_CHECKOUT="${MCP_RUNNER_CHECKOUT:-$checkout}"
command_name="$1"
shift
if [[ -x "$checkout/.venv/bin/python" ]]; then
  python="$checkout/.venv/bin/python"
else
  python="$(command -v python3 || true)"
  if [[ -z "$python" ]]; then
    echo "python3 not found: run 'make setup' in $checkout or install python3." >&2
    exit 127
  fi
fi
module="mcp_core.commands.${command_name//-/_}"
if [[ -f "$checkout/bin/mcp-runner-$command_name" ]]; then
  exec "$python" "$checkout/bin/mcp-runner-$command_name" "$@"
fi
exec "$python" -m "$module" "$@"
