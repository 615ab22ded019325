# shellcheck shell=bash
# scripts/lib.sh: shared helpers for the Cost Guard scripts. It is SOURCED, never executed:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It sets strict mode, moves to the repository root (so every script behaves the same from any
# working directory, including `npm run` which already starts there) and exports the default
# connection settings, without overriding anything the caller already exported.

set -euo pipefail

# Sourcing twice (setup.sh sources temporal-cli.sh, which sources this file) is harmless, but skip
# the work the second time.
if [[ -n "${COSTGUARD_LIB_LOADED:-}" ]]; then
  cd "$COSTGUARD_ROOT"
  return 0
fi
COSTGUARD_LIB_LOADED=1

# Everything human-readable goes to stderr, so that stdout stays clean for values that callers
# capture (temporal-cli.sh prints only the binary path on stdout).
log() { printf '[costguard] %s\n' "$*" >&2; }
warn() { printf '[costguard] warning: %s\n' "$*" >&2; }
die() {
  printf '[costguard] error: %s\n' "$*" >&2
  exit 1
}

# The repository root is the parent of this file's directory; -P resolves symlinks so that paths
# we print and export (COSTGUARD_DATA_DIR, ...) are absolute and stable.
COSTGUARD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export COSTGUARD_ROOT
cd "$COSTGUARD_ROOT"

# Defaults match the README and the local services described there. `: "${X:=default}"` only assigns
# when X is unset or empty, so a value from the environment or CI always wins.
: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/costguard}"
: "${REDIS_URL:=redis://127.0.0.1:6379}"
: "${TEMPORAL_ADDRESS:=127.0.0.1:7233}"
: "${COSTGUARD_DATA_DIR:=$COSTGUARD_ROOT/.data}"
export DATABASE_URL REDIS_URL TEMPORAL_ADDRESS COSTGUARD_DATA_DIR

# Where one-off build artefacts live (outside the repo, shared by all checkouts). The Temporal CLI
# build takes minutes, so it must survive `git clean` and fresh clones.
: "${COSTGUARD_CACHE_DIR:=${XDG_CACHE_HOME:-$HOME/.cache}/costguard}"
export COSTGUARD_CACHE_DIR

# have CMD: true when CMD is an executable on PATH (we never assume optional tools exist).
have() { command -v "$1" >/dev/null 2>&1; }

# with_timeout SECONDS CMD...: run CMD, bounded by coreutils `timeout` when it is available (it is
# part of coreutils, but keep working without it rather than failing).
with_timeout() {
  local secs="$1"
  shift
  if have timeout; then
    timeout "$secs" "$@"
  else
    "$@"
  fi
}

# tcp_listening HOST PORT: true when something accepts TCP connections on HOST:PORT. Uses bash's
# /dev/tcp pseudo-device so that neither nc nor any other tool is needed; the connection attempt
# runs in a child bash bounded by a timeout so a filtered port cannot hang us.
tcp_listening() {
  local host="$1" port="$2"
  # /dev/tcp wants a bare IPv6 address, not the [::1] URL form.
  host="${host#[}"
  host="${host%]}"
  with_timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null
}

# is_local_host HOST: the hosts we are allowed to start services for.
is_local_host() {
  case "$1" in
    127.0.0.1 | localhost | ::1 | '[::1]') return 0 ;;
    *) return 1 ;;
  esac
}

# url_decode STR: %XX decoding for user names / database names in URLs (e.g. my%2Ddb).
url_decode() {
  local s="$1"
  printf "%b" "${s//%/\\x}"
}

# parse_url URL DEFAULT_PORT: split a service URL (postgres://user:pw@host:port/db?opts,
# redis://:pw@host:port/0) into the globals URL_HOST, URL_PORT and URL_PATH (path without the
# leading slash and without ?query, %-decoded). Pure bash so no external parser is needed.
parse_url() {
  local url="$1" default_port="$2" rest authority hostport
  rest="${url#*://}"
  authority="${rest%%[/?]*}"
  hostport="${authority##*@}"
  if [[ "$hostport" == \[* ]]; then
    # IPv6 literal: [::1]:5432
    URL_HOST="${hostport%%]*}]"
    hostport="${hostport#"$URL_HOST"}"
    URL_PORT="${hostport#:}"
  elif [[ "$hostport" == *:* ]]; then
    URL_HOST="${hostport%%:*}"
    URL_PORT="${hostport#*:}"
  else
    URL_HOST="$hostport"
    URL_PORT=""
  fi
  # libpq treats an empty host as "Unix socket"; we only do TCP here, so use the loopback address.
  [[ -n "$URL_HOST" ]] || URL_HOST=127.0.0.1
  [[ -n "$URL_PORT" ]] || URL_PORT="$default_port"
  URL_PATH=""
  if [[ "${rest#"$authority"}" == /* ]]; then
    URL_PATH="${rest#"$authority"/}"
    URL_PATH="$(url_decode "${URL_PATH%%\?*}")"
  fi
  [[ "$URL_PORT" =~ ^[0-9]+$ ]] || die "cannot parse the port in '$url' (got '$URL_PORT')"
}

# ensure_node_modules: install exactly what package-lock.json pins, but only when needed, because
# `npm ci` deletes node_modules first and takes a while. node_modules/.package-lock.json is npm's own
# record of what is installed; when the lockfile is newer, someone changed dependencies.
ensure_node_modules() {
  have npm || die "npm is not installed: install Node.js >= 20.3 (which ships npm)."
  [[ -f package-lock.json ]] || die "package-lock.json is missing in $COSTGUARD_ROOT: run 'npm install' once to create it."
  if [[ ! -d node_modules || ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    log "installing npm dependencies (npm ci)..."
    # stdout of npm goes to stderr too: callers may capture our stdout.
    npm ci --no-audit --no-fund >&2 || die "npm ci failed (see the output above)."
  fi
}
