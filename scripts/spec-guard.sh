#!/usr/bin/env bash
# The guardrail the default command list ends with. It checks the repository it
# lives in (the folder above scripts/, whether that is the runner's checkout or a
# repository the wrappers were copied into):
#   - the runner's entry points are in scripts/ and executable;
#   - every command a wrapper hands to Python exists: bin/mcp-runner-<command>
#     here, else in the mcp-runner package the wrappers' Python imports;
#   - the repository's own spec, from "spec_guard" in mcp-runner.json (optional):
#     {"required": [paths or globs that must exist], "compile": [Python folders that must compile]}.
# --dry-run writes nothing (compiles in memory); without it the "compile"
# folders are also byte-compiled into __pycache__, as a normal import would.
set -euo pipefail

usage="Usage: scripts/spec-guard.sh [--dry-run]"
dry_run=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help)
      echo "$usage"
      echo "Check that this repository's runner entry points are in place and that its spec (mcp-runner.json) holds."
      exit 0
      ;;
    *) echo "Unknown option: $arg" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$root"
# The Python the wrappers run (same rule, from _runner-python.sh), else python3.
python="$(scripts/_runner-python.sh --python 2>/dev/null || command -v python3 || true)"
if [[ -z "$python" ]]; then
  echo "spec-guard: FAIL: no Python found: run 'make setup' or install python3." >&2
  exit 1
fi

exec "$python" - "$dry_run" <<'PY'
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

dry_run = sys.argv[1] == "1"
root = Path.cwd()
checks = failures = 0


def check(ok: bool, message: str) -> bool:
    global checks, failures
    checks += 1
    if not ok:
        failures += 1
        print(f"spec-guard: FAIL: {message}", file=sys.stderr)
    return ok


# The entry points of the runner's interface (docs/interface.md); the .js names run directly too.
ENTRY_POINTS = [
    "scripts/mcp-runner-start.sh", "scripts/mcp-runner-poll.sh", "scripts/mcp-runner-cancel.sh",
    "scripts/run-mcp-diagnostics.sh", "scripts/mcp-runner-metrics.js", "scripts/mcp-runner-migrate.js",
    "scripts/run-local-mcp.sh", "scripts/spec-guard.sh", "scripts/_runner-python.sh",
]
for entry in ENTRY_POINTS:
    path = root / entry
    if check(path.is_file(), f"{entry} is missing"):
        check(os.access(path, os.X_OK), f"{entry} is not executable")

# Every wrapper that hands over to `_runner-python.sh <command>` needs that command.
HAND_OVER = re.compile(r'_runner-python\.sh"? ([a-z][a-z-]*)')
package_commands = None


def in_package(command: str) -> bool:
    global package_commands
    if package_commands is None:
        try:
            from mcp_core.cli import COMMANDS
        except ImportError:
            package_commands = {}
        else:
            package_commands = {
                name: importlib.util.find_spec(f"mcp_core.commands.{module}") is not None
                for name, (module, _) in COMMANDS.items()
            }
    return package_commands.get(command, False)


for wrapper in sorted([*root.glob("scripts/*.sh"), *root.glob("scripts/*.js")]):
    for command in dict.fromkeys(HAND_OVER.findall(wrapper.read_text(errors="replace"))):
        script = root / "bin" / f"mcp-runner-{command}"
        if script.is_file():
            check(os.access(script, os.X_OK), f"bin/mcp-runner-{command} is not executable")
        else:
            check(
                in_package(command),
                f"scripts/{wrapper.name} runs '{command}', but neither bin/mcp-runner-{command} nor the "
                f"mcp-runner package of {sys.executable} has it",
            )

# The repository's own spec.
config_file = root / "mcp-runner.json"
spec: dict = {}
if config_file.is_file():
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        check(False, f"mcp-runner.json cannot be read: {exc}")
    else:
        spec = (config.get("spec_guard") or {}) if isinstance(config, dict) else {}
        shape_ok = isinstance(spec, dict) and all(
            isinstance(spec.get(key, []), list) and all(isinstance(item, str) and item for item in spec.get(key, []))
            for key in ("required", "compile")
        )
        if not check(shape_ok, 'mcp-runner.json: "spec_guard" must be {"required": [paths], "compile": [folders]}'):
            spec = {}
for pattern in spec.get("required", []):
    check(any(root.glob(pattern)), f"{pattern} is missing (required by mcp-runner.json)")
for folder in spec.get("compile", []):
    base = root / folder
    if not check(base.is_dir(), f"{folder} is missing (compiled by mcp-runner.json)"):
        continue
    for path in sorted(base.rglob("*.py")):
        try:
            compile(path.read_bytes(), str(path.relative_to(root)), "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            check(False, f"{path.relative_to(root)} does not compile: {exc}")
        else:
            checks += 1
    if not dry_run and failures == 0:
        import compileall

        check(compileall.compile_dir(str(base), quiet=1), f"{folder} could not be byte-compiled")

if failures:
    print(f"spec-guard: {failures} of {checks} checks failed.", file=sys.stderr)
    sys.exit(1)
mode = "dry run, nothing written" if dry_run else "byte-compiled" if spec.get("compile") else "nothing to compile"
print(f"spec-guard: all {checks} checks passed ({mode}).")
PY
