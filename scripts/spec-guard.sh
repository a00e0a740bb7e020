#!/usr/bin/env bash
# This repository's guardrail (the default diagnostics run ends with it).
# Checks that every entry point CONTRACT.md names is present and executable,
# that each wrapper's Python command exists, and that the package compiles.
# --dry-run checks without writing anything (compiles in memory); without it,
# the package is also byte-compiled into __pycache__ as a normal import would.
set -euo pipefail

usage="Usage: scripts/spec-guard.sh [--dry-run]"
dry_run=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help) echo "$usage"; echo "Check that the runner's entry points are in place and its package compiles."; exit 0 ;;
    *) echo "Unknown option: $arg" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$root"
failures=0
checks=0
fail() { echo "spec-guard: FAIL: $*" >&2; failures=$((failures + 1)); }

# The entry points of CONTRACT.md section 1 (the .js names run directly too).
for entry in scripts/mcp-runner-start.sh scripts/mcp-runner-poll.sh scripts/mcp-runner-cancel.sh \
  scripts/run-mcp-diagnostics.sh scripts/mcp-runner-metrics.js scripts/mcp-runner-migrate.js \
  scripts/run-local-mcp.sh scripts/spec-guard.sh scripts/_runner-python.sh; do
  checks=$((checks + 1))
  if [[ ! -f "$entry" ]]; then
    fail "$entry is missing"
  elif [[ ! -x "$entry" ]]; then
    fail "$entry is not executable"
  fi
done

# Every wrapper that hands over to _runner-python.sh <command> needs that command.
for wrapper in scripts/*.sh scripts/*.js; do
  [[ -f "$wrapper" ]] || continue
  for command_name in $(sed -n 's/.*_runner-python\.sh"\{0,1\} \([a-z][a-z-]*\).*/\1/p' "$wrapper"); do
    checks=$((checks + 1))
    module="mcp_core/commands/${command_name//-/_}.py"
    if [[ ! -f "bin/mcp-runner-$command_name" && ! -f "$module" ]]; then
      fail "$wrapper runs '$command_name', but neither bin/mcp-runner-$command_name nor $module exists"
    elif [[ -f "bin/mcp-runner-$command_name" && ! -x "bin/mcp-runner-$command_name" ]]; then
      fail "bin/mcp-runner-$command_name is not executable"
    fi
  done
done

python="$root/.venv/bin/python"
[[ -x "$python" ]] || python="$(command -v python3)"
checks=$((checks + 1))
if ! "$python" - "$dry_run" <<'PY'
import pathlib, sys
dry_run = sys.argv[1] == "1"
bad = 0
for path in sorted(pathlib.Path("mcp_core").rglob("*.py")):
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        print(f"spec-guard: FAIL: {path} does not compile: {exc}", file=sys.stderr)
        bad += 1
if not dry_run and not bad:
    import compileall
    bad += not compileall.compile_dir("mcp_core", quiet=1)
sys.exit(1 if bad else 0)
PY
then
  failures=$((failures + 1))
fi

if [[ $failures -gt 0 ]]; then
  echo "spec-guard: $failures of $checks checks failed." >&2
  exit 1
fi
mode="dry run, nothing written"
[[ $dry_run -eq 1 ]] || mode="package byte-compiled"
echo "spec-guard: all $checks checks passed ($mode)."
