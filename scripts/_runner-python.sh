#!/usr/bin/env bash
# Runs one runner command in Python: _runner-python.sh <command> [args...]
# The checkout is the folder above scripts/ (also in a consumer's repo the
# scripts were copied into): its .venv when there is one, else python3 on PATH
# with the mcp-runner package installed.
# Wrappers may source this file instead of running it (one bash fewer). poll
# must stay within ~8 ms of a bare interpreter's start and a fork costs ~3 ms
# here (BENCHMARKS.md), so no $(...) on the way: parameter expansion, and cd -P
# there and back for the physical folder above scripts/.
set -euo pipefail
scripts_dir="${BASH_SOURCE[0]}"
if [[ "$scripts_dir" == */* ]]; then scripts_dir="${scripts_dir%/*}"; else scripts_dir=.; fi
[[ "$scripts_dir" == /* ]] || scripts_dir="./$scripts_dir"  # never looked up in CDPATH
here="$PWD"
if cd -P -- "$scripts_dir/.." 2>/dev/null; then
  checkout="$PWD"
  cd -- "$here" || exit 1  # the directory we were started in is gone: nothing would work there
else
  checkout="$(cd -P -- "$scripts_dir/.." && pwd -P)"  # fails here, with cd's message
fi
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
