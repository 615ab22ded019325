#!/usr/bin/env bash
# scripts/temporal-cli.sh: find (or build once) the Temporal CLI that bundles the server version
# Cost Guard is developed and tested against, and print its absolute path.
#
#   bash scripts/temporal-cli.sh          -> prints ONLY the path on stdout (messages go to stderr)
#   . scripts/temporal-cli.sh; p="$(temporal_cli_path)"
#
# Why build it: the dev server ships inside the CLI and there is no binary download here. CLI v1.5.1
# is the last release `go install` accepts (later ones carry a `replace` directive in go.mod), and it
# bundles server 1.29.1, which the workflows and tests rely on (docs/architecture.md, "Temporal").
# Lookup order: $TEMPORAL_CLI_PATH, `temporal` on PATH, the cache; build into the cache as a last resort.

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEMPORAL_CLI_VERSION="v1.5.1"
TEMPORAL_CLI_MODULE="github.com/temporalio/cli/cmd/temporal"
# `temporal -v` prints e.g. "temporal version 0.0.0-DEV (Server 1.29.1, UI 2.42.1)": the CLI's own
# version is 0.0.0-DEV when built with go install, so the bundled server version is what we check.
TEMPORAL_SERVER_VERSION_MARK="Server 1.29."
TEMPORAL_MIN_GO_MINOR=25 # v1.5.1's go.mod says go 1.25.0

temporal_cli_cache_dir() { printf '%s\n' "$COSTGUARD_CACHE_DIR/temporal-cli/$TEMPORAL_CLI_VERSION"; }

# abs_path FILE: absolute, symlink-free directory + file name (no realpath/readlink -f needed).
abs_path() { printf '%s/%s\n' "$(cd "$(dirname "$1")" && pwd -P)" "$(basename "$1")"; }

# temporal_cli_version_ok BIN: true when BIN runs and bundles the expected server version.
temporal_cli_version_ok() {
  local bin="$1" out
  [[ -f "$bin" && -x "$bin" ]] || return 1
  out="$(with_timeout 30 "$bin" -v 2>&1)" || return 1
  [[ "$out" == *"$TEMPORAL_SERVER_VERSION_MARK"* ]]
}

# temporal_cli_version_of BIN: the version line for messages.
temporal_cli_version_of() { with_timeout 30 "$1" -v 2>&1 | head -n 1 || true; }

# find_go: print the go binary to use. /usr/local/go/bin is the standard tarball location and is often
# not on PATH in non-login shells, so look there too (appending keeps a user's own go first).
find_go() {
  if ! have go && [[ -x /usr/local/go/bin/go ]]; then
    PATH="$PATH:/usr/local/go/bin"
    export PATH
  fi
  command -v go 2>/dev/null || return 1
}

# go_version_ok GO: true when GO is >= 1.25 (GOVERSION looks like go1.26.8 or go1.25rc1).
go_version_ok() {
  local v major minor
  v="$(GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null)" || return 1
  v="${v#go}"
  major="${v%%.*}"
  minor="${v#*.}"
  minor="${minor%%[!0-9]*}"
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
  ((major > 1 || (major == 1 && minor >= TEMPORAL_MIN_GO_MINOR)))
}

# build_temporal_cli: go install into a temporary GOBIN inside the cache, then rename into place, so a
# crashed or interrupted build never leaves a half-written `temporal` that later runs would trust.
# A mkdir lock (atomic, no flock needed) stops two scripts (e.g. two terminals running npm test) from
# building at the same time; the loser waits for the winner's binary.
build_temporal_cli() {
  local dir go lock tmp waited=0 holder
  dir="$(temporal_cli_cache_dir)"
  go="$(find_go)" || die "the Temporal CLI ($TEMPORAL_CLI_VERSION, server 1.29) was not found and Go is not installed to build it. Install Go >= 1.$TEMPORAL_MIN_GO_MINOR (https://go.dev/dl/, e.g. into /usr/local/go) or set TEMPORAL_CLI_PATH to a temporal binary whose 'temporal -v' reports $TEMPORAL_SERVER_VERSION_MARK"
  go_version_ok "$go" || die "the Temporal CLI was not found and $go is $(GOTOOLCHAIN=local "$go" env GOVERSION 2>/dev/null || echo 'of unknown version'); building temporal $TEMPORAL_CLI_VERSION needs Go >= 1.$TEMPORAL_MIN_GO_MINOR. Install a newer Go or set TEMPORAL_CLI_PATH to a temporal binary whose 'temporal -v' reports $TEMPORAL_SERVER_VERSION_MARK"

  mkdir -p "$dir" || die "cannot create the cache directory $dir (set COSTGUARD_CACHE_DIR to a writable directory)"
  lock="$dir/.build.lock"
  until mkdir "$lock" 2>/dev/null; do
    holder="$(cat "$lock/pid" 2>/dev/null || true)"
    if [[ -n "$holder" ]] && ! kill -0 "$holder" 2>/dev/null; then
      warn "removing a stale build lock left by process $holder"
      rm -rf "$lock" "$dir/.tmp.$holder"
      continue
    fi
    if ((waited % 30 == 0)); then
      log "another process${holder:+ ($holder)} is building the Temporal CLI; waiting for it..."
    fi
    sleep 2
    waited=$((waited + 2))
    if temporal_cli_version_ok "$dir/temporal"; then
      return 0
    fi
    ((waited < 1800)) || die "gave up after 30 min waiting for the build lock $lock (remove it if no build is running)"
  done
  echo "$$" >"$lock/pid"
  # Release the lock however we leave this function (success, die, Ctrl-C).
  # shellcheck disable=SC2064
  trap "rm -rf '$lock' '$dir/.tmp.$$'" EXIT

  # Someone may have finished a build between our first check and taking the lock.
  if temporal_cli_version_ok "$dir/temporal"; then
    rm -rf "$lock"
    trap - EXIT
    return 0
  fi

  tmp="$dir/.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "building the Temporal CLI $TEMPORAL_CLI_VERSION with $("$go" version | cut -d' ' -f3) into $dir"
  log "this takes a few minutes the first time (it compiles the whole Temporal server); later runs reuse the binary"
  # GOTOOLCHAIN=local: we already checked the version; never let go try to download a toolchain.
  # Output goes to stderr: our stdout is reserved for the path.
  if ! GOBIN="$tmp" GOTOOLCHAIN=local "$go" install "$TEMPORAL_CLI_MODULE@$TEMPORAL_CLI_VERSION" >&2; then
    die "go install $TEMPORAL_CLI_MODULE@$TEMPORAL_CLI_VERSION failed (see above). It needs the module proxy (or a filled Go module cache); alternatively set TEMPORAL_CLI_PATH to an existing temporal binary with $TEMPORAL_SERVER_VERSION_MARK"
  fi
  mv -f "$tmp/temporal" "$dir/temporal"
  rm -rf "$tmp" "$lock"
  trap - EXIT
  temporal_cli_version_ok "$dir/temporal" || die "the freshly built $dir/temporal does not report $TEMPORAL_SERVER_VERSION_MARK (it says: $(temporal_cli_version_of "$dir/temporal"))"
  log "built $(temporal_cli_version_of "$dir/temporal")"
}

# temporal_cli_path: print the absolute path of a suitable temporal binary on stdout.
temporal_cli_path() {
  local candidate cached
  # 1. An explicit choice is honoured or rejected, never silently replaced by something else.
  if [[ -n "${TEMPORAL_CLI_PATH:-}" ]]; then
    [[ -f "$TEMPORAL_CLI_PATH" && -x "$TEMPORAL_CLI_PATH" ]] || die "TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH is not an executable file (unset it to let this script find or build the CLI)"
    temporal_cli_version_ok "$TEMPORAL_CLI_PATH" || die "TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH reports '$(temporal_cli_version_of "$TEMPORAL_CLI_PATH")', but Cost Guard needs a CLI bundling $TEMPORAL_SERVER_VERSION_MARK (temporal $TEMPORAL_CLI_VERSION); unset TEMPORAL_CLI_PATH to let this script find or build it"
    abs_path "$TEMPORAL_CLI_PATH"
    return 0
  fi

  # 2. A temporal on PATH (e.g. installed by the user) if it bundles the right server version; any
  #    other version would run a server with different defaults and limits, so skip it.
  if candidate="$(command -v temporal 2>/dev/null)" && [[ -n "$candidate" ]]; then
    if temporal_cli_version_ok "$candidate"; then
      abs_path "$candidate"
      return 0
    fi
    warn "ignoring $candidate on PATH: it reports '$(temporal_cli_version_of "$candidate")', not $TEMPORAL_SERVER_VERSION_MARK; using the Cost Guard cache instead"
  fi

  # 3. The cached build; 4. build it.
  cached="$(temporal_cli_cache_dir)/temporal"
  if ! temporal_cli_version_ok "$cached"; then
    if [[ -e "$cached" ]]; then
      warn "$cached does not report $TEMPORAL_SERVER_VERSION_MARK; rebuilding it"
    fi
    build_temporal_cli
  fi
  abs_path "$cached"
}

# Executed (not sourced): print the path and nothing else on stdout.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  temporal_cli_path
fi
