#!/usr/bin/env bash
# Starts `codex -C <repo> mcp-server` as a stdio MCP server pinned to one repository.
# stdout is the MCP channel: every message of this script goes to stderr.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/run-local-mcp.sh [--repo PATH] [--no-log] [--dry-run] [--help] [-- CMD...]

Starts the Codex MCP server (`codex -C <repo> mcp-server`) on stdin/stdout, pinned to
one repository. Unless --no-log is given it records the session under
.runs/local-mcp/<timestamp>/: manifest.json, the server's output in mcp-server.log,
and result.json with the exit code when the server ends.

Options:
  --repo PATH   Repository root (default: the git top level, else the current directory)
  --no-log      Record nothing; only start the server
  --dry-run     Check the prerequisites (codex CLI with mcp-server, repository root) and exit
  --help        Show this message

Arguments after a lone `--` are passed to `codex mcp-server`.
Needs a Codex CLI that still has `mcp-server` (up to @openai/codex 0.153.4).
EOF
}

# A JSON string literal for $1 (what jq --arg would write), with no jq needed.
json_string() {
  local text="$1" out="" char code i
  text="${text//\\/\\\\}"
  text="${text//\"/\\\"}"
  text="${text//$'\n'/\\n}"
  text="${text//$'\r'/\\r}"
  text="${text//$'\t'/\\t}"
  if [[ "$text" == *[[:cntrl:]]* ]]; then
    for ((i = 0; i < ${#text}; i++)); do
      char="${text:i:1}"
      if [[ "$char" == [[:cntrl:]] ]]; then
        printf -v code '%d' "'$char"
        printf -v char '\\u%04x' "$code"
      fi
      out+="$char"
    done
    text="$out"
  fi
  printf '"%s"' "$text"
}

# Write $2 to $1 whole or not at all (readers never see a partial file).
write_whole() {
  local tmp="$1.tmp-$$"
  printf '%s\n' "$2" >"$tmp" && mv -f "$tmp" "$1"
}

repo_root=""
repo_given=false
log_enabled=true
dry_run=false
extra_args=()

while (($#)); do
  case "$1" in
    --repo)
      repo_root="${2:-}"
      if [[ -z "$repo_root" ]]; then
        echo "Error: --repo requires a path." >&2
        exit 2
      fi
      repo_given=true
      shift
      ;;
    --no-log)
      log_enabled=false
      ;;
    --dry-run)
      dry_run=true
      ;;
    --help | -h)
      usage
      exit 0
      ;;
    --)
      shift
      extra_args=("$@")
      break
      ;;
    *)
      echo "Unknown option: $1" >&2
      usage >&2
      exit 2
      ;;
  esac
  shift
done

codex_path="$(command -v codex || true)"
if [[ -z "$codex_path" ]]; then
  echo "Error: codex CLI not found in PATH. Install the Codex CLI before running the MCP server." >&2
  exit 2
fi

if [[ "$repo_given" == false ]]; then
  repo_root="$(git rev-parse --show-toplevel 2>/dev/null || pwd)"
fi
if [[ ! -d "$repo_root" ]]; then
  echo "Error: repository root '$repo_root' does not exist." >&2
  exit 2
fi
# Absolute, so the recorded paths and `codex -C` do not depend on where this ran.
repo_root="$(cd -- "$repo_root" && pwd)"

if [[ "$dry_run" == true ]]; then
  echo "codex CLI available: $codex_path"
  echo "Repository root: $repo_root"
  # Codex 0.154.0 on has no mcp-server: say so (one line on stderr, exit 1),
  # by the same rule the runner picks its server with.
  scripts_dir="${BASH_SOURCE[0]%/*}"
  [[ "$scripts_dir" != "${BASH_SOURCE[0]}" ]] || scripts_dir=.
  if [[ -f "$scripts_dir/_runner-python.sh" ]]; then
    python="$(bash "$scripts_dir/_runner-python.sh" --python)" || exit 1
    "$python" -m mcp_core.commands.codex_check || exit 1
  fi
  exit 0
fi

cmd=(codex -C "$repo_root" mcp-server ${extra_args[@]+"${extra_args[@]}"})
# Codex 0.153.4 ignores -C and works in its current directory: start it in the root.
cd -- "$repo_root"

if [[ "$log_enabled" == false ]]; then
  echo "Launching Codex MCP server..." >&2
  exec "${cmd[@]}"
fi

started_at="$(date -u +%Y-%m-%dT%H-%M-%SZ)"
run_dir="${repo_root%/}/.runs/local-mcp/${started_at}"
log_file="${run_dir}/mcp-server.log"
mkdir -p -- "$run_dir"
printf -v command_line '%q ' "${cmd[@]}"
write_whole "${run_dir}/manifest.json" "{
  \"mode\": \"mcp\",
  \"started_at\": $(json_string "$started_at"),
  \"repo\": $(json_string "$repo_root"),
  \"command\": $(json_string "${command_line% }")
}"
: >"$log_file"
echo "Launching Codex MCP server (logs: ${log_file})..." >&2

# The server runs in the background so a signal to this script reaches it and
# result.json is still written. A background job's stdin would be /dev/null:
# hand it this script's stdin (the MCP channel) explicitly.
exec 3<&0
set +e
"${cmd[@]}" <&3 3<&- > >(tee -a -- "$log_file") 2> >(tee -a -- "$log_file" >&2) &
server_pid=$!
exec 3<&-
forward() { kill "-$1" "$server_pid" 2>/dev/null; }
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward HUP' HUP
while kill -0 "$server_pid" 2>/dev/null; do
  wait "$server_pid" # returns early when a trapped signal arrives
done
wait "$server_pid" # bash keeps the status of a reaped job
exit_code=$?
set -e
trap - TERM INT HUP

write_whole "${run_dir}/result.json" "{
  \"mode\": \"mcp\",
  \"started_at\": $(json_string "$started_at"),
  \"finished_at\": $(json_string "$(date -u +%Y-%m-%dT%H-%M-%SZ)"),
  \"exit_code\": ${exit_code}
}"
exit "$exit_code"
