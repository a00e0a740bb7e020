#!/bin/sh
# Runs one runner command in Python: _runner-python.sh <command> [args...]
# (_runner-python.sh --python prints the Python it would run instead).
# The checkout is the folder above scripts/ (also in a consumer's repo the
# scripts were copied into): its .venv when there is one, else python3 on PATH
# with the mcp-runner package installed.
# POSIX sh, so that the wrappers beside it may source it from sh or bash instead
# of running it (one shell fewer): its folder is then that of $0, the wrapper.
# poll must stay within ~8 ms of a bare interpreter's start and a fork costs ~3 ms
# here (BENCHMARKS.md), so no $(...) on the way: parameter expansion, and cd -P
# there and back for the physical folder above scripts/.
set -eu
case $0 in
  */*) scripts_dir=${0%/*} ;;
  *) scripts_dir=. ;;
esac
case $scripts_dir in
  /*) ;;
  *) scripts_dir=./$scripts_dir ;;  # never looked up in CDPATH
esac
here=$PWD  # empty in sh when the directory we were started in is gone
if [ -z "$here" ]; then
  echo "The current directory no longer exists: nothing would work there." >&2
  exit 1
fi
if cd -P -- "$scripts_dir/.." 2>/dev/null; then
  checkout=$PWD
  cd -- "$here" || exit 1  # the directory we were started in is gone: nothing would work there
else
  checkout="$(cd -P -- "$scripts_dir/.." && pwd -P)"  # fails here, with cd's message
fi
export MCP_RUNNER_CHECKOUT="${MCP_RUNNER_CHECKOUT:-$checkout}"
command_name=$1
shift
if [ -x "$checkout/.venv/bin/python" ]; then
  python=$checkout/.venv/bin/python
else
  python="$(command -v python3 || true)"
  if [ -z "$python" ]; then
    printf '%s\n' "python3 not found: run 'make setup' in $checkout or install python3." >&2  # (sh's echo reads backslashes)
    exit 127
  fi
fi
if [ "$command_name" = --python ]; then  # which Python the wrappers run (scripts/spec-guard.sh asks)
  printf '%s\n' "$python"
  exit 0
fi
if [ -f "$checkout/bin/mcp-runner-$command_name" ]; then
  exec "$python" "$checkout/bin/mcp-runner-$command_name" "$@"
fi
# Copied into another repository: the installed package does the work (-c, not
# -m: runpy costs ~3 ms), and one line says so when it is not installed.
exec "$python" -c 'import sys
try:
    from mcp_core.cli import run_and_exit
except ImportError:
    sys.exit(f"mcp-runner is not set up: {sys.executable} cannot import it; "
             "install it with `pip install <mcp-runner checkout>` (or run `make setup` there and use its scripts/)")
run_and_exit(sys.argv[1], sys.argv[2:])' "$command_name" "$@"
