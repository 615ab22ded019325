#!/usr/bin/env bash
# scripts/temporal-server.sh: find (or build once) temporal-server and temporal-sql-tool v1.29.1, the
# binaries of a production-shaped Temporal cluster (scripts/cluster.sh), and print their directory.
#
#   bash scripts/temporal-server.sh       -> prints ONLY the directory on stdout (messages go to stderr)
#   . scripts/temporal-server.sh; d="$(temporal_server_dir)"
#
# Both come from the go.temporal.io/server module (the SQL schemas are embedded in it), built with
# `go install` from the module proxy into the same cache as the Temporal CLI ($COSTGUARD_CACHE_DIR),
# never into the repository. The first build compiles the whole server (several minutes on two
# cores, niced); later runs reuse it. TEMPORAL_SERVER_DIR=dir uses binaries built elsewhere.

# shellcheck source=scripts/temporal-cli.sh
. "$(dirname "${BASH_SOURCE[0]}")/temporal-cli.sh"

TEMPORAL_SERVER_VERSION="v1.29.1"
TEMPORAL_SERVER_MODULE="go.temporal.io/server"

temporal_server_cache_dir() { printf '%s\n' "$COSTGUARD_CACHE_DIR/temporal-server/$TEMPORAL_SERVER_VERSION"; }

# temporal_server_ok DIR: both binaries are there and the server reports the expected version.
temporal_server_ok() {
  local dir="$1" out
  [[ -x "$dir/temporal-server" && -x "$dir/temporal-sql-tool" ]] || return 1
  out="$(with_timeout 30 "$dir/temporal-server" --version 2>&1)" || return 1
  [[ "$out" == *"${TEMPORAL_SERVER_VERSION#v}"* ]]
}

# build_temporal_server: go install both commands into a temporary GOBIN, then rename into place (a
# crashed build never leaves a binary later runs would trust). The same mkdir lock as the CLI's build.
build_temporal_server() {
  local dir go lock tmp waited=0 holder
  dir="$(temporal_server_cache_dir)"
  go="$(find_go)" || die "temporal-server $TEMPORAL_SERVER_VERSION is not in $dir and Go is not installed to build it. Install Go >= 1.$TEMPORAL_MIN_GO_MINOR, or set TEMPORAL_SERVER_DIR to a directory holding temporal-server and temporal-sql-tool $TEMPORAL_SERVER_VERSION"
  go_version_ok "$go" || die "building temporal-server $TEMPORAL_SERVER_VERSION needs Go >= 1.$TEMPORAL_MIN_GO_MINOR; $go is $(GOTOOLCHAIN=local "$go" env GOVERSION 2>/dev/null || echo 'of unknown version')"
  mkdir -p "$dir" || die "cannot create the cache directory $dir (set COSTGUARD_CACHE_DIR to a writable directory)"
  lock="$dir/.build.lock"
  until mkdir "$lock" 2>/dev/null; do
    holder="$(cat "$lock/pid" 2>/dev/null || true)"
    if [[ -n "$holder" ]] && ! kill -0 "$holder" 2>/dev/null; then
      warn "removing a stale build lock left by process $holder"
      rm -rf "$lock" "$dir/.tmp.$holder"
      continue
    fi
    ((waited % 30 == 0)) && log "another process${holder:+ ($holder)} is building temporal-server; waiting for it..."
    sleep 2
    waited=$((waited + 2))
    temporal_server_ok "$dir" && return 0
    ((waited < 3600)) || die "gave up after 60 min waiting for the build lock $lock (remove it if no build is running)"
  done
  echo "$$" >"$lock/pid"
  # shellcheck disable=SC2064
  trap "rm -rf '$lock' '$dir/.tmp.$$'" EXIT
  if temporal_server_ok "$dir"; then
    rm -rf "$lock"
    trap - EXIT
    return 0
  fi
  tmp="$dir/.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "building temporal-server and temporal-sql-tool $TEMPORAL_SERVER_VERSION with $("$go" version | cut -d' ' -f3) into $dir"
  log "the first build compiles the whole Temporal server (several minutes); later runs reuse it"
  # nice: the machine stays usable while Go compiles; GOTOOLCHAIN=local: never download a toolchain.
  if ! GOBIN="$tmp" GOTOOLCHAIN=local nice -n 10 "$go" install \
    "$TEMPORAL_SERVER_MODULE/cmd/server@$TEMPORAL_SERVER_VERSION" \
    "$TEMPORAL_SERVER_MODULE/cmd/tools/sql@$TEMPORAL_SERVER_VERSION" >&2; then
    die "go install $TEMPORAL_SERVER_MODULE/cmd/server@$TEMPORAL_SERVER_VERSION failed (see above). It needs the Go module proxy (or a filled module cache)"
  fi
  mv -f "$tmp/server" "$dir/temporal-server"
  mv -f "$tmp/sql" "$dir/temporal-sql-tool"
  rm -rf "$tmp" "$lock"
  trap - EXIT
  temporal_server_ok "$dir" || die "the freshly built $dir/temporal-server does not report ${TEMPORAL_SERVER_VERSION#v} (it says: $("$dir/temporal-server" --version 2>&1 | head -n 1))"
  log "built $("$dir/temporal-server" --version 2>&1 | head -n 1)"
}

# temporal_server_dir: print the directory holding temporal-server and temporal-sql-tool.
# TEMPORAL_SERVER_BUILD=0 refuses to build (fails instead, saying so).
temporal_server_dir() {
  local dir
  if [[ -n "${TEMPORAL_SERVER_DIR:-}" ]]; then
    temporal_server_ok "$TEMPORAL_SERVER_DIR" || die "TEMPORAL_SERVER_DIR=$TEMPORAL_SERVER_DIR does not hold temporal-server and temporal-sql-tool $TEMPORAL_SERVER_VERSION"
    (cd "$TEMPORAL_SERVER_DIR" && pwd -P)
    return 0
  fi
  dir="$(temporal_server_cache_dir)"
  if ! temporal_server_ok "$dir"; then
    [[ "${TEMPORAL_SERVER_BUILD:-1}" != 0 ]] || die "temporal-server $TEMPORAL_SERVER_VERSION is not built in $dir and TEMPORAL_SERVER_BUILD=0 forbids building it (run: bash scripts/temporal-server.sh)"
    build_temporal_server
  fi
  (cd "$dir" && pwd -P)
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  temporal_server_dir
fi
