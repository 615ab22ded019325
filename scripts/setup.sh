#!/usr/bin/env bash
# scripts/setup.sh: everything needed before Cost Guard can run, in one idempotent step:
#   1. npm dependencies (npm ci, only when node_modules is missing or stale)
#   2. PostgreSQL + Redis reachable, database created          (scripts/services.sh)
#   3. the Temporal CLI (dev server) found or built once       (scripts/temporal-cli.sh)
#   4. the deployment checkers: promtool (Debian package prometheus) and docker-compose, installed
#      with apt-get when missing and we are root; otherwise a hint, and their tests skip themselves
#   5. npm run build (tsc -> dist/)
#
#   bash scripts/setup.sh
#   . scripts/setup.sh; costguard_prepare   # steps 1-4 only, exports TEMPORAL_CLI_PATH
#   . scripts/setup.sh; costguard_setup     # steps 1-5, exports TEMPORAL_CLI_PATH
# test.sh, run.sh and bench.sh source this file so that TEMPORAL_CLI_PATH ends up in THEIR
# environment (a child process could not export it back to them).

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/services.sh
. "$COSTGUARD_ROOT/scripts/services.sh"
# shellcheck source=scripts/temporal-cli.sh
. "$COSTGUARD_ROOT/scripts/temporal-cli.sh"

# ensure_check_tools: the tests validate our metrics output with `promtool check metrics` and the
# compose file with `docker-compose config` (which needs no Docker engine). Install the Debian
# packages that carry them when they are missing and apt-get is usable (root); never fail setup over
# them: without them, print how to install and let those two checks skip with a message.
ensure_check_tools() {
  local missing=() tool pkg
  for tool in promtool:prometheus docker-compose:docker-compose; do
    have "${tool%%:*}" || missing+=("${tool#*:}")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ "$(id -u)" == 0 ]] && have apt-get; then
    log "installing ${missing[*]} (Debian packages, for promtool and docker-compose config in the tests)..."
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; }; then
      log "installed ${missing[*]}"
      return 0
    fi
    warn "apt-get could not install ${missing[*]}"
  fi
  for pkg in "${missing[@]}"; do
    warn "$pkg is not installed: its check will be skipped. Install it with: sudo apt-get install $pkg"
  done
}

costguard_prepare() {
  local cli
  ensure_node_modules
  ensure_services
  ensure_check_tools
  # Separate assignment and export: `export X="$(cmd)"` would hide a failure of cmd from set -e.
  cli="$(temporal_cli_path)"
  TEMPORAL_CLI_PATH="$cli"
  export TEMPORAL_CLI_PATH
  log "Temporal CLI: $TEMPORAL_CLI_PATH"
}

costguard_build() {
  log "building (npm run build)..."
  # npm's stdout goes to stderr so that nothing but requested values ever reaches our stdout.
  npm run build >&2 || die "npm run build failed (see the TypeScript errors above)"
}

costguard_setup() {
  costguard_prepare
  costguard_build
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  costguard_setup
  log "setup complete"
fi
